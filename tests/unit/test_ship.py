"""The laptop side of a rollout: exact ssh commands and a reproducible bundle."""

import io
import json
import tarfile
from pathlib import Path

from ops.ship import SshTarget, agent_command, apply_command, bundle_tar, release_manifest, upload_command

TARGET = SshTarget("127.0.0.1", 2222, "root", Path("/s/id_ed25519"), Path("/s/known_hosts"))


def test_ssh_argv_checks_host_keys_and_never_prompts():
    assert TARGET.argv("true") == [
        "ssh", "-p", "2222", "-i", "/s/id_ed25519", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
        "-o", "UserKnownHostsFile=/s/known_hosts", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5",
        "-o", "ServerAliveCountMax=3", "root@127.0.0.1", "true",
    ]


def test_upload_command():
    assert upload_command("/opt/devtools", "green", "abc1234") == (
        "rm -rf /opt/devtools/green/incoming/.abc1234.upload && "
        "mkdir -p /opt/devtools/green/incoming/.abc1234.upload /opt/devtools/agent && "
        "tar -C /opt/devtools/green/incoming/.abc1234.upload -xf - && "
        "cp -R /opt/devtools/green/incoming/.abc1234.upload/agent/ops /opt/devtools/agent/ && "
        "/opt/devtools/venv/bin/python -m compileall -q /opt/devtools/agent/ops && "
        "rm -rf /opt/devtools/green/incoming/abc1234 && "
        "mv /opt/devtools/green/incoming/.abc1234.upload/bundle /opt/devtools/green/incoming/abc1234 && "
        "rm -rf /opt/devtools/green/incoming/.abc1234.upload"
    )


def test_apply_command_quotes_arguments():
    assert apply_command("/opt/devtools", "green", "r1", ["--validate-arg=--prom-selector=color=\"green\""]) == (
        "cd /opt/devtools/agent && /opt/devtools/venv/bin/python -m ops.hostagent --root /opt/devtools "
        "--project green apply --bundle /opt/devtools/green/incoming/r1 "
        "'--validate-arg=--prom-selector=color=\"green\"'"
    )
    assert agent_command("/srv/d t", "blue", ["status", "--compact"]) == (
        "cd '/srv/d t/agent' && '/srv/d t/venv/bin/python' -m ops.hostagent --root '/srv/d t' --project blue "
        "status --compact"
    )


def test_bundle_is_reproducible_and_complete():
    """The same release must produce the same bytes: the host refuses a known id with other content."""
    manifest = release_manifest("r1", {"cicd": "x@sha256:" + "d" * 64}, {"HOST_PORT_PREFIX": "81"}, {"commit": "c"})
    first, second = bundle_tar(manifest), bundle_tar(manifest)
    assert first == second
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        names = tar.getnames()
        member = tar.extractfile("bundle/release.json")
        assert member is not None
        assert json.loads(member.read()) == {
            "id": "r1", "images": {"cicd": "x@sha256:" + "d" * 64}, "env": {"HOST_PORT_PREFIX": "81"},
            "compose_files": ["docker-compose.yml"], "source": {"commit": "c"},
        }
    assert {"bundle/docker-compose.yml", "bundle/caddy/Caddyfile", "bundle/prometheus/prometheus.yml",
            "agent/ops/hostagent.py", "agent/ops/rollout.py", "agent/ops/validate.py"} <= set(names)


def test_secrets_travel_on_stdin_not_argv():
    """The secrets command line must not carry a value: argv is visible in ps on both machines."""
    argv = TARGET.argv(agent_command("/opt/devtools", "green", ["secrets"]))
    assert argv[-1] == (
        "cd /opt/devtools/agent && /opt/devtools/venv/bin/python -m ops.hostagent --root /opt/devtools "
        "--project green secrets"
    )
