"""Trace coverage over real SSH on the stand-in: the example agents' probes send their traces from their
containers to the Langfuse stand-in (host.docker.internal), with the keys that reach the app's secrets file the
normal way (`hostagent secrets`, from the stand-in's key file), and the host validator's trace phase writes the
report's `traces` section: 6/6 for the release, 4/6 below 0.9 naming both agents built BROKEN=notrace, and the
keys named, never shown, when they are wrong.

The tests share one compose project and run in file order.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from standin import localenv
from tests.e2e.conftest import Host, build_release
from tests.e2e.releases import FAST

PROJECT, PREFIX = "traces", "94"
AGENTS = ["cicd", "code-review", "documentation", "feature-dev", "infrastructure", "orchestrator"]


def ship(host: Host, env: localenv.LocalEnv, pins: dict[str, Any], secrets: Path) -> tuple[str, dict[str, Any]]:
    """Apply `pins` with the trace phase on; (the run's output, its validation report)."""
    proc = host.ship(pins, PROJECT, *FAST, f"--validate-arg=--langfuse-host={env.langfuse_url}",
                     "--validate-arg=--trace-min=0.9", "--validate-arg=--trace-deadline=20",
                     env={"HOST_PORT_PREFIX": PREFIX}, secrets_file=secrets)
    reports = sorted((Path(host.root) / PROJECT / "reports").glob(f"{pins['release']}-*.json"),
                     key=lambda p: p.stat().st_mtime)
    assert reports, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr, json.loads(reports[-1].read_text())


@pytest.fixture(scope="module")
def base(local_env: localenv.LocalEnv) -> dict[str, Any]:
    return build_release(local_env, "traces-base")


def test_every_agent_of_a_release_is_traced(local_env: localenv.LocalEnv, host: Host, base: dict[str, Any]) -> None:
    out, report = ship(host, local_env, base, local_env.langfuse_keys)
    assert report["passed"], out
    assert report["traces"] == {"agents": dict.fromkeys(AGENTS, True), "coverage": 1.0, "min": 0.9,
                                "host": local_env.langfuse_url}


def test_two_agents_without_traces_fail_the_phase_naming_both(local_env: localenv.LocalEnv, host: Host,
                                                              base: dict[str, Any]) -> None:
    built = build_release(local_env, "traces-notrace", "--services", "cicd,documentation",
                          "--broken", "cicd=notrace", "--broken", "documentation=notrace")
    pins = {**base, "release": "traces-notrace", "images": {**base["images"], **built["images"]}}
    _, report = ship(host, local_env, pins, local_env.langfuse_keys)
    assert not report["passed"]
    assert report["traces"]["coverage"] == 0.6667 and report["traces"]["min"] == 0.9
    assert [a for a, seen in report["traces"]["agents"].items() if not seen] == ["cicd", "documentation"]
    [check] = report["phases"]["traces"]["checks"]
    assert check["detail"].endswith("no trace from cicd, documentation")
    assert host.status(PROJECT)["current"] == base["release"]  # the failed validation restored the release


def test_wrong_keys_are_named_never_shown(local_env: localenv.LocalEnv, host: Host, base: dict[str, Any],
                                          tmp_path: Path) -> None:
    wrong = {"LANGFUSE_HOST": f"http://host.docker.internal:{local_env.langfuse_port}",
             "LANGFUSE_PUBLIC_KEY": f"pk-lf-{uuid.uuid4().hex}", "LANGFUSE_SECRET_KEY": f"sk-lf-{uuid.uuid4().hex}"}
    secrets = tmp_path / "secrets.env"
    secrets.write_text("".join(f"{k}={v}\n" for k, v in wrong.items()))
    secrets.chmod(0o600)
    pins = {**base, "release": "traces-wrongkeys"}
    out, report = ship(host, local_env, pins, secrets)
    assert not report["passed"]
    [check] = report["phases"]["traces"]["checks"]
    assert check["detail"].startswith(f"Langfuse at {local_env.langfuse_url} refused the keys (HTTP 401): check "
                                       "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY")
    text = out + json.dumps(report)
    assert wrong["LANGFUSE_PUBLIC_KEY"] not in text and wrong["LANGFUSE_SECRET_KEY"] not in text
