"""Every command line that reaches a host, pinned exactly, and the upload bundle: reproducible, and carrying the
agent package and nothing else of the checkout."""

import base64
import gzip
import hashlib
import io
import json
import shlex
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from agent import remote
from agent.release import release_manifest
from agent.remote import agent_command, apply_command, bundle_tar, diagnose_command, upload_command, validate_argv
from agent.store import Store

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "compose"


def test_upload_command():
    """bash with pipefail (a decode that fails mid-stream fails the upload) and umask 077; stdin goes to a staging
    file whose sha256 must match before anything is unpacked; the agent package is compiled in staging and swapped
    in whole (a module removed from the package leaves the host too) under the project's lock, with the bundle
    moved to <project>/incoming/<id>; the staging directory goes whatever happens."""
    sha = "ab" * 32
    assert upload_command("/opt/devtools", "green", "abc1234", sha) == "bash -c " + shlex.quote("\n".join([
        "set -euo pipefail",
        "umask 077",
        'trap "rm -rf /opt/devtools/green/incoming/.abc1234.upload" EXIT',
        "rm -rf /opt/devtools/green/incoming/.abc1234.upload",
        "mkdir -p /opt/devtools/code /opt/devtools/green/incoming",
        "chmod 700 /opt/devtools/green/incoming",
        "mkdir /opt/devtools/green/incoming/.abc1234.upload",
        "if ! cat > /opt/devtools/green/incoming/.abc1234.upload/bundle.tar; then echo \"upload of abc1234 to project "
        "green refused: the payload does not decode (truncated or corrupted on the way); nothing was replaced\" >&2; "
        "exit 1; fi",
        'if [ "$(sha256sum < /opt/devtools/green/incoming/.abc1234.upload/bundle.tar | cut -d " " -f 1)" != '
        f'{sha} ]; then echo "upload of abc1234 to project green refused: its sha256 is not {sha} (truncated or '
        'corrupted on the way); nothing was replaced" >&2; exit 1; fi',
        "tar -C /opt/devtools/green/incoming/.abc1234.upload -xf "
        "/opt/devtools/green/incoming/.abc1234.upload/bundle.tar",
        "/opt/devtools/venv/bin/python -m compileall -q /opt/devtools/green/incoming/.abc1234.upload/code/agent",
        "exec 9>>/opt/devtools/green/lock",
        "if ! flock -w 300 9; then cd /opt/devtools/green/incoming/.abc1234.upload/code && "
        "/opt/devtools/venv/bin/python -m agent.hostagent --root /opt/devtools --project green _upload-refused "
        "--release abc1234 --waited 300; exit 3; fi",
        "rm -rf /opt/devtools/code/.agent.old",
        "if [ -d /opt/devtools/code/agent ]; then mv /opt/devtools/code/agent /opt/devtools/code/.agent.old; fi",
        "mv /opt/devtools/green/incoming/.abc1234.upload/code/agent /opt/devtools/code/agent",
        "rm -rf /opt/devtools/code/.agent.old /opt/devtools/green/incoming/abc1234",
        "mv /opt/devtools/green/incoming/.abc1234.upload/bundle /opt/devtools/green/incoming/abc1234",
    ]))
    assert "if ! base64 -d | gzip -dc > /opt/devtools/green/incoming/.r1.upload/bundle.tar; then" in upload_command(
        "/opt/devtools", "green", "r1", sha, decode="base64 -d | gzip -dc")
    assert "flock -w 5 9" in upload_command("/opt/devtools", "green", "r1", sha, lock_timeout=5)


def test_diagnose_command_writes_a_private_bundle_named_after_the_run():
    assert diagnose_command("/opt/devtools", "green", "rel-20261202T140000Z") == (
        "cd /opt/devtools/code && umask 077 && /opt/devtools/venv/bin/python -m agent.diagnose all --project green "
        "--root /opt/devtools --out /opt/devtools/green/diagnostics/rel-20261202T140000Z")


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
    assert validate_argv("/v/python", "/r/resolved.json", "/r/report.json", deadline=60, labels={},
                         extra=["--langfuse-host=http://l:9392"], secrets_file="/opt/devtools/green/secrets.env") == [
        "/v/python", "-m", "agent.validate", "--config", "/r/resolved.json", "--json", "/r/report.json",
        "--deadline", "60", "--no-color", "--secrets-file", "/opt/devtools/green/secrets.env",
        "--langfuse-host=http://l:9392",
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
            "bundle/prometheus/slo-rules.yml", "code/agent/hostagent.py", "code/agent/rollout.py",
            "code/agent/validate/runner.py"} <= set(names)



def test_bundle_files_given_replace_the_compose_directorys():
    """The program ships its tier's compose file and its stack's SLO rules; any other name is a mistake."""
    manifest = release_manifest("r1", {}, {}, {})
    data = bundle_tar(manifest, COMPOSE, agent_dir=None, compose=b"services: {}\n",
                      files={"prometheus/slo-rules.yml": b"groups: []\n"})
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        read = {n: tar.extractfile(n).read() for n in tar.getnames()}  # type: ignore[union-attr]
    assert read["bundle/docker-compose.yml"] == b"services: {}\n"
    assert read["bundle/prometheus/slo-rules.yml"] == b"groups: []\n"
    assert read["bundle/prometheus/prometheus.yml"] == (COMPOSE / "prometheus" / "prometheus.yml").read_bytes()
    with pytest.raises(ValueError, match=r"not a bundle file: prometheus/alerts\.yml"):
        bundle_tar(manifest, COMPOSE, files={"prometheus/alerts.yml": b""})

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
        "bundle/prometheus/slo-rules.yml", "bundle/release.json"}


@pytest.mark.live
def test_upload_swaps_the_agent_package_whole_in_a_real_shell(tmp_path):
    """A module removed from the package must leave the host too (a merge would keep it, importable)."""
    root = tmp_path / "host"
    (root / "venv/bin").mkdir(parents=True)
    (root / "venv/bin/python").symlink_to(sys.executable)
    (root / "code/agent").mkdir(parents=True)
    (root / "code/agent/removed_module.py").write_text("X = 1\n")
    data = bundle_tar(release_manifest("r1", {}, {}, {}), COMPOSE)
    proc = subprocess.run(["sh", "-c", upload_command(str(root), "green", "r1", hashlib.sha256(data).hexdigest())],
                          input=data, capture_output=True, check=False, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert (root / "code/agent/hostagent.py").is_file()
    assert not (root / "code/agent/removed_module.py").exists()
    assert sorted(p.name for p in (root / "code").iterdir()) == ["agent"]
    assert sorted(p.name for p in (root / "green/incoming").iterdir()) == ["r1"]
    assert stat.S_IMODE((root / "green/incoming").stat().st_mode) == 0o700


def _old_host(tmp_path: Path) -> Path:
    """A host with an agent package and an upload of r1 in place: what a refused upload must leave alone."""
    root = tmp_path / "host"
    (root / "venv/bin").mkdir(parents=True)
    (root / "venv/bin/python").symlink_to(sys.executable)
    (root / "code/agent").mkdir(parents=True)
    (root / "code/agent/hostagent.py").write_text("OLD = 1\n")
    (root / "green/incoming/r1").mkdir(parents=True)
    (root / "green/incoming/r1/release.json").write_text('{"id": "r1", "old": true}\n')
    return root


def _unchanged(root: Path) -> None:
    assert (root / "code/agent/hostagent.py").read_text() == "OLD = 1\n"
    assert sorted(p.name for p in (root / "code").iterdir()) == ["agent"]
    assert (root / "green/incoming/r1/release.json").read_text() == '{"id": "r1", "old": true}\n'
    assert sorted(p.name for p in (root / "green/incoming").iterdir()) == ["r1"]  # no staging left behind


def _cut(data: bytes) -> bytes:
    """The tar cut at a member boundary half-way: tar unpacks the members before it and exits 0."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    return data[: members[len(members) // 2].offset]


def _gz64(data: bytes) -> bytes:
    return base64.b64encode(gzip.compress(data, mtime=0))


TRUNCATIONS = {
    "tar cut at a member": (_cut, ""),
    "encoded tar cut at a member": (lambda d: _gz64(_cut(d)), "base64 -d | gzip -dc"),
    "encoded payload cut": (lambda d: _gz64(d)[: len(_gz64(d)) * 2 // 3], "base64 -d | gzip -dc"),
}


@pytest.mark.live
@pytest.mark.parametrize("case", TRUNCATIONS)
def test_a_truncated_upload_is_refused_and_replaces_nothing(tmp_path, case):
    """A dropped SSH session or a short read cuts stdin: tar unpacks the members that arrived and exits 0, and the
    host's agent code was replaced by half a package. The sha256 check (and pipefail for the decoder) refuse it
    before anything is unpacked or replaced."""
    root = _old_host(tmp_path)
    data = bundle_tar(release_manifest("r1", {}, {}, {}), COMPOSE)
    truncate, decode = TRUNCATIONS[case]
    command = upload_command(str(root), "green", "r1", hashlib.sha256(data).hexdigest(), decode=decode)
    proc = subprocess.run(["sh", "-c", command], input=truncate(data), capture_output=True, check=False,
                          env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1, proc.stderr
    assert b"upload of r1 to project green refused: " in proc.stderr
    assert proc.stderr.endswith(b"(truncated or corrupted on the way); nothing was replaced\n")
    _unchanged(root)


@pytest.mark.live
def test_the_code_swap_waits_for_the_projects_lock(tmp_path):
    """The agent code is replaced while no job of the project runs (a worker that imports a module mid-swap, or
    a validator started from half-new code): the swap takes the project's lock, the agent's own flock."""
    root = _old_host(tmp_path)
    data = bundle_tar(release_manifest("r1", {}, {}, {}), COMPOSE)
    command = upload_command(str(root), "green", "r1", hashlib.sha256(data).hexdigest(), lock_timeout=1)
    holder = {"job": "j1", "action": "apply", "release": "r0", "pid": 4242, "since": "2025-01-01T00:00:00Z"}
    with Store(root, "green").lock(5, holder):
        proc = subprocess.run(["sh", "-c", command], input=data, capture_output=True, check=False,
                              env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr == (b"upload of r1 to project green refused: another rollout holds the lock of project green "
                           b"(job j1, apply of release r0, pid 4242, since 2025-01-01T00:00:00Z); waited 1s; nothing "
                           b"was replaced\n")
    _unchanged(root)
    audit = [json.loads(line) for line in (root / "green/audit.jsonl").read_text().splitlines()]
    assert [(e["event"], e["release"]) for e in audit] == [("upload.lock_timeout", "r1")]
