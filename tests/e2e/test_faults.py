"""Fault injection against the host agent over real SSH. Every fault must end with the previous release
serving, the state-persistence volume's data intact, an audit entry, and a clear error.

The tests share one compose project and run in file order; `serving` tracks what must be running.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from agent import process
from agent.containers import PROJECT_LABEL
from agent.release import release_manifest
from agent.remote import apply_command, bundle_tar, upload_command
from ops.ship import COMPOSE_DIR
from standin import localenv
from tests.e2e.conftest import ROOT, Host
from tests.e2e.releases import FAST, Serving, changed_app, drop_local_images, variant

PROJECT = "faults"
PREFIX = "85"


@pytest.fixture(scope="module")
def serving(local_env: localenv.LocalEnv, host: Host) -> Serving:
    return Serving.started(local_env, host, PROJECT, PREFIX, "faults-base")


def upload(s: Serving, pins: dict[str, Any], lock_timeout: int = 300) -> subprocess.CompletedProcess[bytes]:
    """Upload a release's bundle and the agent as ops.ship does (the upload waits for the project's lock)."""
    manifest = release_manifest(pins["release"], pins["images"], {"HOST_PORT_PREFIX": PREFIX}, {})
    data = bundle_tar(manifest, COMPOSE_DIR)
    command = upload_command(s.host.root, PROJECT, pins["release"], hashlib.sha256(data).hexdigest(),
                             lock_timeout=lock_timeout)
    return subprocess.run(s.host.target.argv(command), input=data, capture_output=True, timeout=lock_timeout + 120,
                          check=False)


def start_apply(s: Serving, pins: dict[str, Any], *args: str) -> subprocess.Popen[str]:
    """Upload a release, then start `hostagent apply` over SSH without waiting for it."""
    up = upload(s, pins)
    assert up.returncode == 0, up.stderr
    command = apply_command(s.host.root, PROJECT, pins["release"], [*FAST, *args])
    return subprocess.Popen(s.host.target.argv(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def read_until(proc: subprocess.Popen[str], needle: str, timeout: float = 120) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} never appeared in:\n{seen}")


def test_unhealthy_image_rolls_back(serving: Serving, local_env: localenv.LocalEnv) -> None:
    """A new image that never turns healthy must not stay: compose --wait fails and the previous one returns."""
    pins = variant(local_env, serving.pins, "faults-unhealthy", "feature-dev", "--broken", "feature-dev=unhealthy")
    n = len(serving.host.audit(PROJECT))
    proc = serving.ship(pins)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "apply of faults-unhealthy failed at up" in proc.stdout
    assert "failing services: feature-dev" in proc.stdout
    assert f"previous release {serving.pins['release']} restored and serving" in proc.stdout
    assert serving.last_events(n) == ["apply.started", "apply.failed", "rollback.succeeded"]
    serving.assert_serving()


def test_crash_looping_image_rolls_back(serving: Serving, local_env: localenv.LocalEnv) -> None:
    pins = variant(local_env, serving.pins, "faults-crash", "orchestrator", "--broken", "orchestrator=crash")
    n = len(serving.host.audit(PROJECT))
    proc = serving.ship(pins)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "apply of faults-crash failed at up" in proc.stdout
    assert "orchestrator" in proc.stdout.split("failing services:", 1)[1].splitlines()[0]
    failed = serving.host.audit(PROJECT)[n + 1]
    assert failed["event"] == "apply.failed" and Path(failed["diagnostics"]).is_dir()
    assert serving.last_events(n)[-1] == "rollback.succeeded"
    serving.assert_serving()


def test_digest_missing_from_registry_changes_nothing(serving: Serving) -> None:
    """A pin the registry does not have fails at pull, before any container is touched."""
    repo = serving.pins["images"]["cicd"].split("@", 1)[0]
    pins = {**serving.pins, "release": "faults-missing",
            "images": {**serving.pins["images"], "cicd": f"{repo}@sha256:{'0' * 63}1"}}
    n = len(serving.host.audit(PROJECT))
    proc = serving.ship(pins)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "apply of faults-missing failed at pull" in proc.stdout
    failed = serving.host.audit(PROJECT)[n + 1]
    assert (failed["event"], failed["stage"]) == ("apply.failed", "pull")
    serving.assert_serving()


def test_registry_stopped_fails_at_pull(serving: Serving, local_env: localenv.LocalEnv, tmp_path: Path) -> None:
    pins = variant(local_env, serving.pins, "faults-noregistry", "documentation",
                   app_root=changed_app(tmp_path, "documentation", "noregistry"))
    drop_local_images(pins, ["documentation"])
    subprocess.run(["bash", str(ROOT / "scripts/local-env.sh"), "stop", "registry"], check=True, timeout=60)
    try:
        n = len(serving.host.audit(PROJECT))
        proc = serving.ship(pins)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "apply of faults-noregistry failed at pull" in proc.stdout
        assert serving.last_events(n)[1] == "apply.failed"
        serving.assert_serving()
    finally:
        subprocess.run(["bash", str(ROOT / "scripts/local-env.sh"), "up"], check=True, timeout=600,
                       capture_output=True)


def test_validation_timing_out_rolls_back(serving: Serving, local_env: localenv.LocalEnv) -> None:
    """An agent whose end-to-end probe hangs passes docker's health check but must fail validation."""
    pins = variant(local_env, serving.pins, "faults-slow", "cicd", "--broken", "cicd=slow")
    n = len(serving.host.audit(PROJECT))
    started = time.monotonic()
    proc = serving.ship(pins)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "apply of faults-slow failed at validate" in proc.stdout
    assert "failing services: cicd" in proc.stdout
    assert time.monotonic() - started < 150
    assert serving.last_events(n) == ["apply.started", "apply.failed", "rollback.succeeded"]
    serving.assert_serving()


def test_two_concurrent_applies(serving: Serving, local_env: localenv.LocalEnv, tmp_path: Path) -> None:
    """The second rollout waits for the lock, then fails clearly; the first one completes. The second rollout's
    upload waits for the lock first (the agent code is replaced only between jobs) and is refused naming the holder;
    a second apply of a bundle already there is refused the same way."""
    first = variant(local_env, serving.pins, "faults-first", "infrastructure",
                    app_root=changed_app(tmp_path, "infrastructure", "first"))
    second = variant(local_env, serving.pins, "faults-second", "code-review",
                     app_root=changed_app(tmp_path, "code-review", "second"))
    n = len(serving.host.audit(PROJECT))
    a = start_apply(serving, first, "--lock-timeout", "2")
    read_until(a, "apply: ")
    b = subprocess.Popen(serving.host.target.argv(apply_command(serving.host.root, PROJECT, serving.pins["release"],
                                                                [*FAST, "--lock-timeout", "2"])),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    refused = upload(serving, second, lock_timeout=2)  # both wait for the lock at once
    out_b, _ = b.communicate(timeout=120)
    out_a, _ = a.communicate(timeout=300)
    holder = "another rollout holds the lock of project faults"
    assert refused.returncode == 3, refused.stderr
    assert refused.stderr.decode().startswith(f"upload of faults-second to project faults refused: {holder} (job ")
    assert "apply of release faults-first" in refused.stderr.decode()
    assert refused.stderr.decode().endswith("; nothing was replaced\n")
    assert not (Path(serving.host.root) / PROJECT / "incoming" / "faults-second").exists()
    assert b.returncode == 3, out_b
    assert holder in out_b and "apply of release faults-first" in out_b
    assert a.returncode == 0, out_a
    events = serving.last_events(n)
    assert "upload.lock_timeout" in events and "apply.lock_timeout" in events and "apply.succeeded" in events
    serving.pins = first
    serving.assert_serving()


def test_ssh_killed_mid_apply_finishes_whole(serving: Serving, local_env: localenv.LocalEnv, tmp_path: Path) -> None:
    """Losing the SSH connection must not leave half a release: the detached worker finishes the job."""
    pins = variant(local_env, serving.pins, "faults-sshkill", "rag-context",
                   app_root=changed_app(tmp_path, "rag-context", "sshkill"))
    n = len(serving.host.audit(PROJECT))
    proc = start_apply(serving, pins)
    read_until(proc, "pulled images of faults-sshkill")
    proc.kill()
    proc.wait(timeout=10)
    waited = serving.host.agent(PROJECT, "wait", timeout=300)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert "OK: apply of faults-sshkill succeeded" in waited.stdout
    assert serving.last_events(n)[:2] == ["apply.started", "apply.succeeded"]
    serving.pins = pins
    serving.assert_serving()


def test_dockerd_restarted_during_apply(serving: Serving, local_env: localenv.LocalEnv, tmp_path: Path) -> None:
    """The engine going away mid-rollout: the agent waits for it to return and restores the previous release."""
    pins = variant(local_env, serving.pins, "faults-dockerd", "documentation",
                   app_root=changed_app(tmp_path, "documentation", "dockerd"))
    n = len(serving.host.audit(PROJECT))
    proc = start_apply(serving, pins)
    read_until(proc, "pulled images of faults-dockerd")
    subprocess.run(["bash", str(ROOT / "scripts/local-env.sh"), "restart-docker"], check=True, timeout=300,
                   capture_output=True)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, out
    assert "apply of faults-dockerd failed" in out
    assert f"previous release {serving.pins['release']} restored and serving" in out
    assert serving.last_events(n)[-1] == "rollback.succeeded"
    serving.assert_serving()


def test_worker_killed_mid_apply_is_reported_and_the_host_recovered(serving: Serving,
                                                                   local_env: localenv.LocalEnv) -> None:
    """SIGKILL (what the OOM killer sends) of the worker while it validates a release whose containers are up: the
    follower must say so within seconds instead of polling a zombie forever, and `hostagent recover` must kill the
    validator the worker left running (its own process group) and restore the recorded release over the new,
    unvalidated containers, the audit log saying what happened."""
    pins = variant(local_env, serving.pins, "faults-oom", "cicd", "--broken", "cicd=slow")
    n = len(serving.host.audit(PROJECT))
    proc = start_apply(serving, pins)
    seen = read_until(proc, "compose up --wait: all services healthy")
    job = re.search(r"job (\S+): apply started", seen)
    assert job is not None, seen
    base = Path(serving.host.root) / PROJECT
    deadline = time.monotonic() + 30
    while not (left := [json.loads(p.read_text()) for p in (base / "children").glob("*.json")
                        if "agent.validate" in p.read_text()]):
        assert time.monotonic() < deadline, "the worker never started the validator"
        time.sleep(0.1)
    os.kill(int((base / "jobs" / f"{job[1]}.pid").read_text()), signal.SIGKILL)
    killed = time.monotonic()
    out, _ = proc.communicate(timeout=60)
    assert time.monotonic() - killed < 10, out
    assert proc.returncode == 4, out
    assert f"the worker of job {job[1]}" in out and "killed by SIGKILL (as the OOM killer does)" in out
    assert "its apply of faults-oom did not finish: the host may run part of it" in out
    assert process.group_alive(left[0]["pgid"])  # the validator outlived its worker
    recovered = serving.host.agent(PROJECT, "recover", timeout=300)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert "killed 1 process group(s) left running by a dead worker (" in recovered.stdout
    assert "-m agent.validate --config)" in recovered.stdout
    assert f"recorded current release {serving.pins['release']} restored and serving" in recovered.stdout
    assert not process.group_alive(left[0]["pgid"])
    assert serving.last_events(n) == ["apply.started", "apply.worker_lost", "recover.children_killed",
                                      "recover.stale_pending", "recover.succeeded"]
    assert list((base / "children").glob("*.json")) == []
    serving.assert_serving()


def test_stop_keeps_the_data_and_the_next_apply_brings_it_back(serving: Serving) -> None:
    """`hostagent stop` (what destroying the rollout runs) removes the containers only: the state volume, the
    images and the release history stay, and applying the same release again serves the same data."""
    n = len(serving.host.audit(PROJECT))
    stop = serving.host.agent(PROJECT, "stop")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert f"release {serving.pins['release']} stopped (volumes, images and releases kept)" in stop.stdout
    status = serving.host.status(PROJECT)
    assert status["services"] == {}  # no container of the project is left
    assert status["current"] == serving.pins["release"]  # the pointer stays: apply/rollback know where it was
    assert serving.last_events(n) == ["stopped"]
    volumes = subprocess.run(["docker", "volume", "ls", "--quiet", "--filter", f"label={PROJECT_LABEL}={PROJECT}"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert f"{PROJECT}_state-data" in volumes
    again = serving.ship(serving.pins)
    assert again.returncode == 0, again.stdout + again.stderr
    serving.assert_serving()  # same release, same marker in the state volume
