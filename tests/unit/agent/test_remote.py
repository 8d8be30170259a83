"""Every command line that reaches a host, pinned exactly, and the upload bundle: reproducible, and carrying the
agent package and nothing else of the checkout."""

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from agent import remote
from agent.release import release_manifest
from agent.remote import agent_command, apply_command, bundle_tar, upload_command, validate_argv

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "compose"


def test_upload_command():
    """Unpack into the project's own staging directory, compile the new agent package there, swap it in whole
    (a module removed from the package leaves the host too), then move the bundle to <project>/incoming/<id>."""
    assert upload_command("/opt/devtools", "green", "abc1234") == (
        "rm -rf /opt/devtools/green/incoming/.abc1234.upload && "
        "mkdir -p /opt/devtools/green/incoming/.abc1234.upload /opt/devtools/code && "
        "tar -C /opt/devtools/green/incoming/.abc1234.upload -xf - && "
        "/opt/devtools/venv/bin/python -m compileall -q /opt/devtools/green/incoming/.abc1234.upload/code/agent && "
        "rm -rf /opt/devtools/code/.agent.old && "
        "if [ -d /opt/devtools/code/agent ]; then mv /opt/devtools/code/agent /opt/devtools/code/.agent.old; fi && "
        "mv /opt/devtools/green/incoming/.abc1234.upload/code/agent /opt/devtools/code/agent && "
        "rm -rf /opt/devtools/code/.agent.old /opt/devtools/green/incoming/abc1234 && "
        "mv /opt/devtools/green/incoming/.abc1234.upload/bundle /opt/devtools/green/incoming/abc1234 && "
        "rm -rf /opt/devtools/green/incoming/.abc1234.upload"
    )


def test_apply_command_quotes_arguments():
    assert apply_command("/opt/devtools", "green", "r1", ["--validate-arg=--prom-selector=color=\"green\""]) == (
        "cd /opt/devtools/code && /opt/devtools/venv/bin/python -m agent.hostagent --root /opt/devtools "
        "--project green apply --bundle /opt/devtools/green/incoming/r1 "
        "'--validate-arg=--prom-selector=color=\"green\"'"
    )
    assert agent_command("/srv/d t", "blue", ["status", "--compact"]) == (
        "cd '/srv/d t/code' && '/srv/d t/venv/bin/python' -m agent.hostagent --root '/srv/d t' --project blue "
        "status --compact"
    )


def test_validate_argv_is_one_definition_for_agent_and_gate():
    """The host agent and the Pulumi ValidationGate run the validator through this one builder."""
    assert validate_argv("/v/python", "/r/resolved.json", "/r/report.json", deadline=60,
                         labels={"release": "r1", "project": "green"}, extra=["--prometheus=http://p:9090"]) == [
        "/v/python", "-m", "agent.validate", "--config", "/r/resolved.json", "--json", "/r/report.json",
        "--deadline", "60", "--no-color", "--prometheus=http://p:9090", "--label", "release=r1",
        "--label", "project=green",
    ]
    assert remote.gate_summary_argv("/v/python", "r1") == [
        "/v/python", "-m", "agent.validate.gate", "--release", "r1", "--exit-code"]


def test_bundle_is_reproducible_and_complete():
    """The same release must produce the same bytes: the host refuses a known id with other content."""
    manifest = release_manifest("r1", {"cicd": "x@sha256:" + "d" * 64}, {"HOST_PORT_PREFIX": "81"}, {"commit": "c"})
    first, second = bundle_tar(manifest, COMPOSE), bundle_tar(manifest, COMPOSE)
    assert first == second
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        member = tar.extractfile("bundle/release.json")
        assert member is not None
        assert json.loads(member.read()) == {
            "id": "r1", "images": {"cicd": "x@sha256:" + "d" * 64}, "env": {"HOST_PORT_PREFIX": "81"},
            "compose_files": ["docker-compose.yml"], "source": {"commit": "c"},
        }
        names = tar.getnames()
    assert {"bundle/docker-compose.yml", "bundle/caddy/Caddyfile", "bundle/prometheus/prometheus.yml",
            "code/agent/hostagent.py", "code/agent/rollout.py", "code/agent/validate/runner.py"} <= set(names)


def test_the_upload_carries_the_agent_package_and_nothing_else():
    """Hosts receive `agent/` only: no laptop tool (ops), no Pulumi program (components), no stand-in code."""
    with tarfile.open(fileobj=io.BytesIO(bundle_tar(release_manifest("r1", {}, {}, {}), COMPOSE))) as tar:
        names = set(tar.getnames())
    shipped = {n.removeprefix("code/agent/") for n in names if n.startswith("code/agent/")}
    package = ROOT / "agent"
    expected = {p.relative_to(package).as_posix() for p in package.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts}
    assert shipped == expected
    assert {n for n in names if not n.startswith("code/agent/")} == {
        "bundle/docker-compose.yml", "bundle/caddy/Caddyfile", "bundle/prometheus/prometheus.yml",
        "bundle/release.json"}


@pytest.mark.live
def test_upload_swaps_the_agent_package_whole_in_a_real_shell(tmp_path):
    """A module removed from the package must leave the host too (a merge would keep it, importable)."""
    root = tmp_path / "host"
    (root / "venv/bin").mkdir(parents=True)
    (root / "venv/bin/python").symlink_to(sys.executable)
    (root / "code/agent").mkdir(parents=True)
    (root / "code/agent/removed_module.py").write_text("X = 1\n")
    manifest = release_manifest("r1", {}, {}, {})
    proc = subprocess.run(["sh", "-c", upload_command(str(root), "green", "r1")], input=bundle_tar(manifest, COMPOSE),
                          capture_output=True, check=False, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert (root / "code/agent/hostagent.py").is_file()
    assert not (root / "code/agent/removed_module.py").exists()
    assert sorted(p.name for p in (root / "code").iterdir()) == ["agent"]
    assert sorted(p.name for p in (root / "green/incoming").iterdir()) == ["r1"]
