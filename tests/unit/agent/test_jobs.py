"""The detached worker's body and its follower against a scripted runner: every line the agent emits has the
project's secret values masked, a worker that dies is noticed within seconds, and the next job reconciles what it
left behind before it changes anything."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import pytest

from agent import jobs, process, retention, secretfile
from agent.rollout import EXIT_CRITICAL, EXIT_FAILED, EXIT_OK, Options
from tests.unit.agent.rollout_fake import UNHEALTHY_PS, Rig, bundle, exited, serving, state

PEM = ("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIHNlY3JldC1rZXktbGluZS1vbmUtMDEyMzQ1Njc4OWFi\n"
       "-----END PRIVATE KEY-----")
SECRETS = {
    "QDRANT_URL": "http://qdrant.internal:6333/?api_key=qd-7f3a9c1e5b",
    "ALERT_WEBHOOK": "https://hooks.example.com/services/T01/B02/wh-4d2c8e6a0f",
    "DATABASE_DSN": "postgres://app:dsn-pw-91ab@db:5432/app",
    "SIGNING_PEM": PEM,
}
HIDDEN = ["qd-7f3a9c1e5b", "wh-4d2c8e6a0f", "dsn-pw-91ab", "HNlY3JldC1rZXktbGluZS1vbmUtMDEyMzQ1Njc4OWFi"]


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """fsync is durability against a power cut, which no test here exercises."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def spec(r: Rig, job: str, action: str, **fields: Any) -> str:
    r.store.ensure()
    r.store.write_job_file(f"{job}.spec.json", json.dumps({"action": action, "options": Options().__dict__,
                                                            **fields}))
    return job


def run(r: Rig, job: str) -> int:
    return jobs.run_job(r.store, job, runner=r.host, clock=r.clock, sleep=r.clock.sleep, diagnose=r.diagnose)


def result(r: Rig, job: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((r.store.jobs / f"{job}.result.json").read_text())
    return data


def test_every_line_the_agent_emits_masks_the_secrets_files_values(tmp_path, capsys):
    """A failing service that prints its environment must not put QDRANT_URL's api_key, a webhook, a DSN or a PEM
    key into the job log (which the apply's follower streams into the Pulumi log and CI), the result, the audit
    log or the operator's message: their names look harmless, so only their values can be matched. The debug
    bundle is told every key of the file, so it masks them by name too."""
    r = serving(tmp_path, "r1")
    r.store.write_secrets(secretfile.render_secrets(SECRETS))
    dump = "".join(f"api-1  | {k}={v}\n" for k, v in SECRETS.items())
    r.host.on("up", "r2", exited(1, stderr=f"container green-api-1 exited (1): {SECRETS['DATABASE_DSN']}"))
    r.host.on("ps", "r2", exited(0, stdout=UNHEALTHY_PS))
    r.host.on("logs", "r2", exited(0, stdout=dump))
    job = spec(r, "20250101T000000-aaaaaa", "apply", bundle=str(bundle(tmp_path, "r2")), release="r2")
    assert run(r, job) == EXIT_FAILED
    printed = capsys.readouterr().out
    texts = {"job log": printed, "result": json.dumps(result(r, job)),
             "audit": (r.store.base / "audit.jsonl").read_text()}
    for where, text in texts.items():
        for value in HIDDEN:
            assert value not in text, f"{value} in the {where}"
    assert "api-1  | QDRANT_URL=***" in printed and "api-1  | QDRANT_URL=***" in result(r, job)["message"]
    assert "container green-api-1 exited (1): ***" in printed
    assert r.bundle_secrets == [SECRETS]
    assert state(r) == ("r1", None, "r1", None)


def test_a_worker_killed_by_sigkill_is_noticed_at_the_next_poll(tmp_path, capsys):
    """The worker is the follower's own child: dead, it is a zombie that `kill(pid, 0)` calls alive, and the apply
    used to poll forever. The follower reaps it (Popen.poll), says what happened and what to run, records the
    job's result and an audit entry."""
    r = serving(tmp_path, "r1")
    r.store.write_pending({"release": "r2", "previous": "r1", "action": "apply", "job": "j2"})
    job = spec(r, "20250101T000000-bbbbbb", "apply", release="r2")
    r.store.write_job_file(f"{job}.pid", "4242")

    class Killed:
        def poll(self) -> int:
            return -signal.SIGKILL

    assert jobs.follow(r.store, job, Killed(), poll=0) == EXIT_CRITICAL  # type: ignore[arg-type]
    message = (f"the worker of job {job} (pid 4242, apply of r2) died, killed by SIGKILL (as the OOM killer does); "
               "its apply of r2 did not finish: the host may run part of it. `hostagent recover` (or the next "
               "apply, rollback or gate, which recover first) kills what it left running and restores the recorded "
               "current release (r1)")
    assert capsys.readouterr().out == f"FAILED: {message}\n"
    assert result(r, job)["exit"] == EXIT_CRITICAL and result(r, job)["message"] == message
    lost = r.store.audit_entries()[-1]
    assert (lost["event"], lost["job"], lost["how"], lost["pending"]) == (
        "apply.worker_lost", job, "killed by SIGKILL (as the OOM killer does)", True)


def test_a_reattached_follower_sees_a_zombie_worker_as_dead(tmp_path, capsys):
    """`hostagent wait` follows a worker it did not start: a zombie, or a pid now running something else, is not
    the worker (read from /proc: state and command line)."""
    r = serving(tmp_path, "r1")
    job = spec(r, "20250101T000000-cccccc", "apply", release="r2")
    r.store.write_job_file(f"{job}.pid", "4242")
    fake = tmp_path / "proc"
    (fake / "4242").mkdir(parents=True)
    (fake / "4242" / "stat").write_text("4242 (python3) Z 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0\n")
    (fake / "4242" / "cmdline").write_bytes(b"")
    assert process.running(4242, marker=job, proc=fake) is False
    (fake / "4242" / "stat").write_text("4242 (python3) S 1 4242 4242 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0\n")
    (fake / "4242" / "cmdline").write_bytes(b"python3\0-m\0agent.hostagent\0_run\0other-job\0")
    assert process.running(4242, marker=job, proc=fake) is False
    (fake / "4242" / "cmdline").write_bytes(f"python3\0-m\0agent.hostagent\0_run\0{job}\0".encode())
    assert process.running(4242, marker=job, proc=fake) is True
    assert process.start_ticks(4242, proc=fake) == 99


def test_the_next_job_restores_the_recorded_release_before_its_own_action(tmp_path, capsys):
    """pending.json left by a dead worker: its release may be half up and unvalidated while `current` names the
    one before. The next job activates `current` again first (audited), then does what it was asked."""
    r = serving(tmp_path, "r1")
    r.store.point_run_at("r2-half")
    r.store.write_pending({"release": "r2-half", "previous": "r1", "action": "apply", "job": "dead"})
    r.forget()
    job = spec(r, "20250101T000000-dddddd", "apply", bundle=str(bundle(tmp_path, "r3")), release="r3")
    assert run(r, job) == EXIT_OK
    assert r.new_events() == ["recover.stale_pending", "recover.succeeded", "apply.started", "apply.succeeded"]
    assert r.host.calls[:4] == [("info", None), ("pull", "r1"), ("up", "r1"), ("validate", "r1")]
    assert state(r) == ("r3", "r1", "r3", None)
    assert result(r, job)["message"].splitlines()[:3] == [
        "an earlier apply of r2-half (job dead) did not finish",
        "recorded current release r1 restored and serving",
        "apply of r3 succeeded in 0.0s (previous: r1)",
    ]


def test_recover_alone_restores_and_says_so_or_that_there_was_nothing(tmp_path, capsys):
    r = serving(tmp_path, "r1")
    job = spec(r, "20250101T000000-eeeeee", "recover", release="current")
    assert run(r, job) == EXIT_OK
    assert result(r, job)["message"] == ("project green: nothing to recover (no unfinished activation, no process "
                                         "left running)")
    r.store.write_pending({"release": "r2", "previous": "r1", "action": "apply", "job": "dead"})
    job = spec(r, "20250101T000001-ffffff", "recover", release="current")
    assert run(r, job) == EXIT_OK
    assert result(r, job)["message"].endswith("recorded current release r1 restored and serving")
    assert state(r) == ("r1", None, "r1", None)


def test_a_recovery_whose_restore_fails_is_critical_and_the_next_job_goes_ahead(tmp_path, capsys):
    """The recorded release cannot come back: exit 4 naming why; pending.json is cleared (recover.failed says what
    happened), so a fix-forward apply is not blocked behind the same failure."""
    r = serving(tmp_path, "r1")
    r.store.write_pending({"release": "r2", "previous": "r1", "action": "apply", "job": "dead"})
    r.host.on("up", "r1", exited(1, stderr="no space left on device"))
    r.forget()
    job = spec(r, "20250101T000000-gggggg", "recover", release="current")
    assert run(r, job) == EXIT_CRITICAL
    assert result(r, job)["message"].endswith(
        "CRITICAL: restoring r1 failed at up: `docker compose up` exited 1: no space left on device")
    assert r.new_events() == ["recover.stale_pending", "recover.failed"]
    assert r.store.read_pending() is None


def test_nothing_recorded_as_current_means_nothing_to_restore(tmp_path, capsys):
    r = serving(tmp_path)
    r.store.write_pending({"release": "r1", "previous": None, "action": "apply", "job": "dead"})
    job = spec(r, "20250101T000000-hhhhhh", "recover", release="current")
    assert run(r, job) == EXIT_OK
    assert r.new_events() == ["recover.stale_pending", "recover.nothing_to_restore"]
    assert r.host.calls == []


def test_every_job_ends_by_trimming_old_bookkeeping(tmp_path, capsys):
    """jobs/, reports/, diagnostics/ and incoming/ grew forever; each job now trims them, failed ones too."""
    r = serving(tmp_path, "r1")
    for i in range(retention.KEEP_DIAGNOSTICS + 3):
        (r.store.base / "diagnostics" / f"old-{i:02d}").mkdir()
    r.host.on("up", "r2", exited(1, stderr="boom"))
    job = spec(r, "20250101T000000-iiiiii", "apply", bundle=str(bundle(tmp_path, "r2")), release="r2")
    assert run(r, job) == EXIT_FAILED
    assert len(list((r.store.base / "diagnostics").iterdir())) == retention.KEEP_DIAGNOSTICS
    assert "retention: removed 3 from diagnostics/" in capsys.readouterr().out
