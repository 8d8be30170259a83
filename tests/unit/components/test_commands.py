"""Every command string the rollout sends to a host, pinned exactly; the payloads are reproducible."""

import base64
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi_command import remote

from agent import remote as host
from agent.remote import upload_command
from components import commands
from components.config_slices import AgentPlace, ValidatorSettings
from tests.ssh_test_keys import HOST_PUBLIC_KEY
from tests.unit.agent.validate_peers import PeerServer, Route, resolved, service
from tests.unit.components import stack_configs as sc
from tests.unit.components.program_harness import is_secret, run_components

DIGEST = "registry.example/devtools/cicd@sha256:" + "d" * 64
SHA = "5" * 64
UPLOAD_TAIL = upload_command("/opt/devtools", "green", "r1", SHA, decode="base64 -d | gzip -dc")


def _manifest(**images: str) -> dict[str, Any]:
    return commands.manifest("r1", images or {"cicd": DIGEST}, {"HOST_PORT_PREFIX": "80"}, "c0ffee")


def test_release_env_carries_port_prefix_and_profiles():
    """Droplets enable the edge profile; the local stand-in publishes on 81xx and runs no edge services."""
    assert commands.release_env(sc.make_config().release) == {"HOST_PORT_PREFIX": "80", "COMPOSE_PROFILES": "edge"}
    assert commands.release_env(sc.make_local_config().release) == {"HOST_PORT_PREFIX": "81"}


def test_manifest_has_no_clock():
    """Identical inputs must give identical bytes, or every `pulumi up` would re-run the rollout."""
    assert _manifest() == {
        "id": "r1", "images": {"cicd": DIGEST}, "env": {"HOST_PORT_PREFIX": "80"},
        "compose_files": ["docker-compose.yml"], "source": {"commit": "c0ffee"},
    }
    assert commands.manifest("r1", {"cicd": DIGEST}, {}, None)["source"] == {"commit": None}


def test_bundle_payload_is_the_gzipped_bundle_and_reproducible():
    """The upload's stdin decodes to exactly ops.ship's bundle; a different text each run would re-upload."""
    payload = commands.bundle_payload(_manifest())
    assert payload == commands.bundle_payload(_manifest())
    raw = gzip.decompress(base64.b64decode(payload, validate=True))
    assert raw == host.bundle_tar(_manifest(), commands.COMPOSE_DIR)
    assert commands.bundle_sha256(_manifest()) == hashlib.sha256(raw).hexdigest()  # what the upload verifies
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        member = tar.extractfile("bundle/release.json")
        assert member is not None
        assert json.loads(member.read())["images"] == {"cicd": DIGEST}


def test_content_hash_ignores_source_but_not_digests():
    """A new commit with the same digests is no new release; one changed digest is."""
    release = _manifest()
    content = {k: v for k, v in release.items() if k != "source"}
    assert commands.content_hash(release) == hashlib.sha256(
        host.bundle_tar(content, commands.COMPOSE_DIR, agent_dir=None)).hexdigest()
    assert commands.content_hash({**release, "source": {"commit": "other"}}) == commands.content_hash(release)
    assert commands.content_hash(_manifest(cicd=DIGEST.replace("d" * 64, "e" * 64))) != commands.content_hash(release)
    assert commands.content_hash({**release, "env": {"HOST_PORT_PREFIX": "81"}}) != commands.content_hash(release)


def test_content_hash_ignores_the_agent_code(tmp_path):
    """Only the release decides whether `hostagent apply` runs again: a change in agent/ code is not a new release
    (the next upload carries it); otherwise every unrelated agent edit would re-roll every host."""
    release = _manifest()
    with_agent = host.bundle_tar({k: v for k, v in release.items() if k != "source"}, commands.COMPOSE_DIR)
    assert b"code/agent/hostagent.py" in with_agent
    without = host.bundle_tar({k: v for k, v in release.items() if k != "source"}, commands.COMPOSE_DIR, agent_dir=None)
    assert b"code/agent/" not in without
    assert commands.content_hash(release) == hashlib.sha256(without).hexdigest()


CLOUD_INIT_WAIT = (
    "if command -v cloud-init >/dev/null 2>&1; then rc=0; timeout 900 cloud-init status --wait </dev/null "
    ">/dev/null 2>&1 || rc=$?; case \"$rc\" in 0|2) ;; 124) echo \"cloud-init is still running after 900 s:\" >&2; "
    "cloud-init status --long </dev/null >&2; echo 'last lines of /var/log/cloud-init-output.log:' >&2; "
    "tail -n 40 /var/log/cloud-init-output.log >&2 2>/dev/null; exit 1;; *) echo \"cloud-init failed (status exit "
    "$rc):\" >&2; cloud-init status --long </dev/null >&2; echo 'last lines of /var/log/cloud-init-output.log:' "
    ">&2; tail -n 40 /var/log/cloud-init-output.log >&2 2>/dev/null; exit 1;; esac; fi"
)


def test_upload_script_waits_for_cloud_init_then_unpacks_decoded_stdin():
    """On a fresh droplet cloud-init may still be installing docker and the venv: wait for it first, at most 15
    minutes. The wait used to have no bound and swallowed a failed bootstrap (`|| true`): the upload then failed
    later for a reason that hid the real one. Now a failed or stuck cloud-init fails the upload with cloud-init's
    own account (`status --long`) and the end of its output log; exit 2 (done with recoverable errors, such as a
    deprecated key, since cloud-init 23.4) goes on."""
    assert commands.upload_script("/opt/devtools", "green", "r1", SHA) == CLOUD_INIT_WAIT + " && " + UPLOAD_TAIL
    assert commands.CLOUD_INIT_WAIT == CLOUD_INIT_WAIT


FAKE_CLOUD_INIT = """#!/bin/sh
case "$*" in
  "status --wait") {wait} ;;
  "status --long") printf 'status: error\\nerrors:\\n\\t- (scripts_user) runcmd failed\\n'; exit 1 ;;
  *) exit 64 ;;
esac
"""


@pytest.mark.live
@pytest.mark.parametrize(("wait", "code", "stderr"), [
    ("exit 0", 0, []),
    ("exit 2", 0, []),
    ("exit 1", 1, ["cloud-init failed (status exit 1):", "status: error", "- (scripts_user) runcmd failed",
                   "last lines of {log}:", "pip: No matching distribution found for httpx==0.28.1"]),
    ("exec sleep 30", 1, ["cloud-init is still running after 1 s:", "status: error", "last lines of {log}:",
                          "pip: No matching distribution found for httpx==0.28.1"]),
], ids=["done", "done with recoverable errors", "error", "still running past the deadline"])
def test_cloud_init_wait_in_a_real_shell(tmp_path, wait, code, stderr):
    """The wait as a shell runs it, against a fake `cloud-init` on PATH: done goes on to the upload, an error or a
    bootstrap still running past the deadline stops it with what cloud-init says and its log's last lines."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "cloud-init").write_text(FAKE_CLOUD_INIT.format(wait=wait))
    (bin_dir / "cloud-init").chmod(0o755)
    log = tmp_path / "cloud-init-output.log"
    log.write_text("Collecting httpx==0.28.1\npip: No matching distribution found for httpx==0.28.1\n")
    script = commands.cloud_init_wait(timeout=1, log=str(log)) + " && echo uploading"
    proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=20, check=False,
                          env={**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == ("uploading\n" if code == 0 else "")
    for line in stderr:
        assert line.format(log=log) in proc.stderr, proc.stderr
    if code == 0:
        assert proc.stderr == ""


@pytest.mark.live
def test_upload_script_unpacks_the_payload_in_a_real_shell(tmp_path):
    """The decode pipeline and the unpack steps must agree with bundle_payload (no cloud-init on this machine)."""
    root = str(tmp_path / "host root")
    (tmp_path / "host root/venv/bin").mkdir(parents=True)
    (tmp_path / "host root/venv/bin/python").symlink_to(sys.executable)  # the host venv cloud-init makes
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    script = commands.upload_script(root, "green", "r1", commands.bundle_sha256(_manifest()))
    proc = subprocess.run(["sh", "-c", script],
                          input=commands.bundle_payload(_manifest()), text=True, capture_output=True, env=env,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    release = json.loads((tmp_path / "host root/green/incoming/r1/release.json").read_text())
    assert release["images"] == {"cicd": DIGEST}
    assert (tmp_path / "host root/code/agent/hostagent.py").is_file()
    assert (tmp_path / "host root/code/agent/validate/gate.py").is_file()
    tag = sys.implementation.cache_tag
    assert (tmp_path / f"host root/code/agent/validate/__pycache__/runner.{tag}.pyc").is_file()  # compiled on arrival
    assert sorted(p.name for p in (tmp_path / "host root/green/incoming").iterdir()) == ["r1"]


@pytest.mark.live
def test_two_projects_uploading_one_release_id_keep_their_own_bundles(tmp_path):
    """Two colors on one host (the stand-in, a pool) may upload the same release id with other settings (port
    prefix): each project's apply must read its own upload, never the one the other project wrote last."""
    root = str(tmp_path / "host")
    (tmp_path / "host/venv/bin").mkdir(parents=True)
    (tmp_path / "host/venv/bin/python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    for project, prefix in (("green", "81"), ("blue", "82")):
        release = commands.manifest("r1", {"cicd": DIGEST}, {"HOST_PORT_PREFIX": prefix}, "c0ffee")
        script = commands.upload_script(root, project, "r1", commands.bundle_sha256(release))
        proc = subprocess.run(["sh", "-c", script],
                              input=commands.bundle_payload(release), text=True, capture_output=True, env=env,
                              check=False)
        assert proc.returncode == 0, proc.stderr
    for project, prefix in (("green", "81"), ("blue", "82")):
        bundle = Path(host.apply_command(root, project, "r1", []).split("--bundle ")[1].split()[0])
        assert bundle == tmp_path / f"host/{project}/incoming/r1"
        assert json.loads((bundle / "release.json").read_text())["env"] == {"HOST_PORT_PREFIX": prefix}


def test_secrets_script_reads_stdin_only():
    """Secrets travel on stdin: argv is visible in `ps` and in Pulumi's state."""
    assert commands.secrets_script("/opt/devtools", "blue") == (
        "cd /opt/devtools/code && /opt/devtools/venv/bin/python -m agent.hostagent --root /opt/devtools "
        "--project blue secrets"
    )


def test_apply_script_on_a_droplet():
    """The content hash leads the command, so new compose content under the same id still re-runs the apply."""
    cfg = sc.make_config(keepReleases="7")
    assert commands.apply_script(cfg.agent_place, "r1", "ab" * 32, keep=cfg.release.keep,
                                 validator=cfg.release.validator) == (
        ": release-content=" + "ab" * 32 + " && cd /opt/devtools/code && /opt/devtools/venv/bin/python -m "
        "agent.hostagent --root /opt/devtools --project green apply --bundle /opt/devtools/green/incoming/r1 "
        "--keep 7 --validate-deadline 120"
    )


def test_apply_script_passes_the_prometheus_phase_to_the_validator():
    cfg = sc.make_local_config(validateDeadline="60")
    assert commands.apply_script(cfg.agent_place, "r1", "0" * 64, keep=cfg.release.keep,
                                 validator=cfg.release.validator) == (
        ": release-content=" + "0" * 64 + " && cd /opt/devtools/code && /opt/devtools/venv/bin/python -m "
        "agent.hostagent --root /opt/devtools --project green apply --bundle /opt/devtools/green/incoming/r1 "
        "--keep 5 --validate-deadline 60 --validate-arg=--prometheus=http://127.0.0.1:9390 "
        "'--validate-arg=--prom-selector=color=\"green\"'"
    )


def test_validate_script_on_a_droplet():
    """`hostagent gate` on the host: a fresh report per run (a stale pass must never count), one JSON line last,
    non-zero unless passed, and the previous release restored (with a debug bundle) when it fails."""
    cfg = sc.make_blue_config()
    assert commands.validate_script(cfg.agent_place, cfg.release.validator, "r1") == (
        "cd /opt/devtools/code && /opt/devtools/venv/bin/python -m agent.hostagent --root /opt/devtools --project blue "
        "gate --release r1 --report /opt/devtools/blue/reports/gate-r1.json --validate-deadline 120"
    )


def test_validate_script_with_prometheus_and_another_root():
    cfg = sc.make_local_config(hostRoot="/srv/dt", validateDeadline="45")
    assert commands.validate_script(cfg.agent_place, cfg.release.validator, "r1") == (
        "cd /srv/dt/code && /srv/dt/venv/bin/python -m agent.hostagent --root /srv/dt --project green gate "
        "--release r1 --report /srv/dt/green/reports/gate-r1.json --validate-deadline 45 "
        "--validate-arg=--prometheus=http://127.0.0.1:9390 '--validate-arg=--prom-selector=color=\"green\"'"
    )


def test_a_pool_hosts_apply_and_gate_are_provisional_and_confirm_ends_it():
    """Two hosts or more: each host's release stays provisional (longer for earlier hosts: the rest of the pool
    still has to roll) until the pool's confirm; a single host is final at once."""
    cfg = sc.make_blue_config()
    assert [commands.confirm_window(i, 3) for i in range(3)] == [2700, 1800, 900]
    assert commands.confirm_window(0, 1) == 0
    assert commands.apply_script(cfg.agent_place, "r1", "0" * 64, keep=5, validator=cfg.release.validator,
                                 confirm_within=1800).endswith(
        "apply --bundle /opt/devtools/blue/incoming/r1 --keep 5 --validate-deadline 120 --confirm-within 1800")
    assert commands.validate_script(cfg.agent_place, cfg.release.validator, "r1", 900).endswith(
        "--validate-deadline 120 --confirm-within 900")
    assert commands.confirm_script(cfg.agent_place, "r1") == (
        "cd /opt/devtools/code && /opt/devtools/venv/bin/python -m agent.hostagent --root /opt/devtools --project blue "
        "confirm --release r1")


def _fake_host(tmp_path: Path) -> Path:
    """A host root whose venv python is this interpreter and whose agent code is this checkout's agent/."""
    root = tmp_path / "host"
    (root / "venv/bin").mkdir(parents=True)
    python = root / "venv/bin/python"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    (root / "code").mkdir()
    (root / "code/agent").symlink_to(host.AGENT_PACKAGE)
    return root


GATE_PROJECT = "gatelive"  # a project of its own: the failure path reads containers (none) and writes a bundle


def _running(root: Path, release_id: str) -> Path:
    """The host agent's record of `release_id` as the running release (what an apply leaves)."""
    base = root / GATE_PROJECT
    release = base / "releases" / release_id
    release.mkdir(parents=True)
    release.joinpath("release.json").write_text(json.dumps({"id": release_id, "images": {},
                                                             "compose_files": ["docker-compose.yml"]}))
    (base / "current").write_text(f"{release_id}\n")
    (base / "run").symlink_to(Path("releases") / release_id)
    return release


def _gate(root: Path, release_id: str) -> subprocess.CompletedProcess[str]:
    validator = ValidatorSettings(deadline=10, prometheus_url=None, prometheus_selector="")
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "HOST_PORT_PREFIX")}
    script = commands.validate_script(AgentPlace(str(root), GATE_PROJECT), validator, release_id)
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                          env=env, check=False, timeout=120)


@pytest.mark.live
def test_validate_script_fails_in_a_real_shell_when_the_validator_cannot_run(tmp_path):
    """A release without resolved.json must stop Pulumi (exit non-zero) and still print one summary line."""
    root = _fake_host(tmp_path)
    _running(root, "r1")
    (root / GATE_PROJECT / "reports").mkdir(parents=True)
    (root / GATE_PROJECT / "reports/gate-r1.json").write_text(json.dumps({"passed": True, "phases": {}}))  # stale
    proc = _gate(root, "r1")
    assert proc.returncode == 1
    assert commands.parse_gate_summary(proc.stdout) == {
        "passed": False, "release": "r1", "checks": 0, "failed": [], "duration_s": 0.0,
        "error": "no report (agent.validate exited 2)"}
    assert "no previous release on this host: nothing to restore" in proc.stdout


@pytest.mark.live
@pytest.mark.parametrize("healthy", [True, False])
def test_validate_script_in_a_real_shell_against_live_peers(tmp_path, healthy):
    """The gate's exit status and its last line follow the real validator: a failed check stops `pulumi up`, after
    the host agent wrote a debug bundle and recorded the failure."""
    root = _fake_host(tmp_path)
    release = _running(root, "r2")
    routes = {"/health": Route(statuses=[200 if healthy else 503])}
    with PeerServer(routes) as peer:
        release.joinpath("resolved.json").write_text(json.dumps(resolved({"cicd": service(peer.port)})))
        proc = _gate(root, "r2")
    summary = commands.parse_gate_summary(proc.stdout)
    assert proc.returncode == (0 if healthy else 1), proc.stdout + proc.stderr
    assert (summary["passed"], summary["release"], summary["checks"]) == (healthy, "r2", 1)
    assert summary["failed"] == ([] if healthy else ["health/cicd"])
    report = json.loads((root / GATE_PROJECT / "reports/gate-r2.json").read_text())
    assert report["labels"] == {"release": "r2", "project": GATE_PROJECT, "gate": "pulumi"}
    events = [json.loads(line)["event"] for line in (root / GATE_PROJECT / "audit.jsonl").read_text().splitlines()]
    assert events == (["gate.passed"] if healthy else ["gate.failed"])
    bundles = list((root / GATE_PROJECT / "diagnostics").iterdir())
    assert len(bundles) == (0 if healthy else 1)
    assert all((b / "summary.json").is_file() and b.name.startswith("r2-") for b in bundles)


def test_parse_gate_summary_takes_the_last_line():
    out = "CHECK  RESULT\nhealth pass\n\n" + '{"passed": true, "release": "r1", "checks": 3}\n\n'
    assert commands.parse_gate_summary(out) == {"passed": True, "release": "r1", "checks": 3}


@pytest.mark.parametrize(("stdout", "message"), [
    ("", "printed nothing"),
    ("validation passed\n", "not JSON"),
    ('{"passed": "yes"}', "boolean 'passed'"),
    ("[true]", "boolean 'passed'"),
])
def test_parse_gate_summary_rejects_anything_else(stdout, message):
    """A gate whose output cannot be read must fail loudly, never count as passed."""
    with pytest.raises(ValueError, match=message):
        commands.parse_gate_summary(stdout)


def test_local_flip_command():
    assert commands.local_flip_command(Path("/work/dev tools"), "blue") == (
        "bash '/work/dev tools/scripts/local-env.sh' flip blue"
    )


def test_connection_args_for_fresh_droplets():
    """A droplet needs minutes before sshd answers; the key must stay a secret inside the connection."""
    held = {}

    def program():
        held["args"] = commands.connection_args("203.0.113.9", 22, sc.make_config().ssh.login, sc.SSH_PRIVATE_KEY)
        pulumi.export("key", held["args"].private_key)

    world = run_components(program)
    args = held["args"]
    assert isinstance(args, remote.ConnectionArgs)
    assert (args.host, args.port, args.user, args.host_key) == ("203.0.113.9", 22, "root", HOST_PUBLIC_KEY)
    assert (args.dial_error_limit, args.per_dial_timeout) == (60, 10)
    assert is_secret(world.exports["key"])
    assert world.exports_plain["key"] == sc.SSH_PRIVATE_KEY


def test_connection_args_pin_the_host_key_when_configured():
    host_key = HOST_PUBLIC_KEY
    cfg = sc.make_local_config(sshHostKey=host_key, sshUser="deploy")
    held = {}

    def program():
        held["args"] = commands.connection_args("127.0.0.1", 2222, cfg.ssh.login, "key")

    run_components(program)
    assert (held["args"].port, held["args"].user, held["args"].host_key) == (2222, "deploy", host_key)


def test_the_trace_phase_reaches_the_validator_with_its_minimum_and_no_keys():
    """langfuseHost turns the trace phase on; the threshold is the validator slice's; the keys stay on the host (the
    validator reads them from the project's secrets file)."""
    cfg = sc.make_local_config(validateDeadline="45", langfuseHost="http://127.0.0.1:9392")
    assert commands.validate_script(cfg.agent_place, cfg.release.validator, "r1") == (
        "cd /opt/devtools/code && /opt/devtools/venv/bin/python -m agent.hostagent --root /opt/devtools --project "
        "green gate --release r1 --report /opt/devtools/green/reports/gate-r1.json --validate-deadline 45 "
        "--validate-arg=--prometheus=http://127.0.0.1:9390 '--validate-arg=--prom-selector=color=\"green\"' "
        "--validate-arg=--langfuse-host=http://127.0.0.1:9392 --validate-arg=--trace-min=0.9"
    )
    alone = ValidatorSettings(deadline=10, prometheus_url=None, prometheus_selector="",
                              langfuse_host="https://cloud.langfuse.com", trace_coverage_min=0.75)
    assert commands.apply_script(cfg.agent_place, "r1", "0" * 64, keep=5, validator=alone).endswith(
        "--keep 5 --validate-deadline 10 --validate-arg=--langfuse-host=https://cloud.langfuse.com "
        "--validate-arg=--trace-min=0.75")
    assert "LANGFUSE" not in commands.validate_script(cfg.agent_place, cfg.release.validator, "r1")
