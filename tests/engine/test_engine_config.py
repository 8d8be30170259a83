"""The stack config checks on the real engine: the CLI hands the program its config and secret keys the way the
mock tests assume, and a rejected config creates nothing."""

from __future__ import annotations

import json

from tests.engine.conftest import Workspace


def _resources(ws: Workspace, stack: str) -> list[str]:
    exported = ws.pulumi("stack", "export", stack=stack)
    assert exported.returncode == 0, exported.stderr
    return [r["type"] for r in json.loads(exported.stdout)["deployment"].get("resources") or []]


def test_bad_value_stops_the_update_before_any_resource(workspace: Workspace) -> None:
    """`pulumi up` with a bad value must fail naming the key and what is allowed, and create nothing: not the
    stack's first resource, not a plugin's."""
    assert workspace.pulumi("stack", "init", stack="local").returncode == 0
    assert workspace.pulumi("config", "set", "devtools:hostPortPrefix", "700", stack="local").returncode == 0
    up = workspace.pulumi("up", "--yes", stack="local")
    assert up.returncode != 0
    assert "devtools:hostPortPrefix: 700 is not allowed: an integer 10-99" in up.stdout + up.stderr
    assert [t for t in _resources(workspace, "local") if t != "pulumi:pulumi:Stack"] == []


def test_engine_reports_secret_keys_and_plain_secrets_are_refused(workspace: Workspace) -> None:
    """The program learns which keys are secret from the engine: a key set with --secret passes, the same key
    set in plain text is refused by name (its value never printed)."""
    assert workspace.pulumi("stack", "init", stack="local").returncode == 0
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nengine-test-only\n-----END OPENSSH PRIVATE KEY-----\n"
    plain = workspace.pulumi("config", "set", "devtools:sshPrivateKey", stack="local", stdin=key)
    assert plain.returncode == 0, plain.stderr
    workspace.pulumi("config", "rm", "devtools:sshPrivateKeyPath", stack="local")
    up = workspace.pulumi("up", "--yes", stack="local")
    out = up.stdout + up.stderr
    assert up.returncode != 0
    assert "devtools:sshPrivateKey holds a secret but is stored in plain text" in out
    assert "engine-test-only" not in out
    secret = workspace.pulumi("config", "set", "--secret", "devtools:sshPrivateKey", stack="local", stdin=key)
    assert secret.returncode == 0, secret.stderr
    again = workspace.pulumi("preview", stack="local")
    assert "docker-build:index:Image" in again.stdout  # past the config checks: the program declares resources
    assert "holds a secret but is stored in plain text" not in again.stdout + again.stderr
    assert "engine-test-only" not in again.stdout + again.stderr
