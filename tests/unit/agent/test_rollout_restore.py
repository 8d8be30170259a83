"""Bringing the previous release back after a failed activation, against a scripted runner (no process, no
socket, no wait): a restore that fails too is critical, the audit trail is written after the restore and never
stops it, and rollbacks take the same path. The host must end with one whole release running.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.rollout import EXIT_CRITICAL, EXIT_FAILED, Options, Outcome
from agent.store import Store
from tests.unit.agent.rollout_fake import Reply, exited, failing, rig, serving, state, timeout


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """fsync is durability against a power cut, which no test here exercises; on a busy disk it is most of their
    time (the fast tier's budget)."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def test_a_first_release_that_fails_stays_for_inspection(tmp_path: Path) -> None:
    """With nothing to restore the failed release keeps running (it is the only one) and nothing is recorded
    as current: a later rollback has no target it did not validate."""
    r = rig(tmp_path)
    r.host.on("validate", "r1", 1)
    message = failing(r, "r1", EXIT_FAILED)
    assert message.endswith("no previous release on this host: nothing to restore; the failed release stays for "
                            "inspection")
    assert state(r) == (None, None, "r1", None)
    assert r.events() == ["apply.started", "apply.failed"]


def test_the_current_release_failing_again_stays_current(tmp_path: Path) -> None:
    """Re-applying the running release: there is nothing else to restore, so it stays current and recorded."""
    r = serving(tmp_path, "r0", "r1")
    r.host.on("validate", "r1", 1)
    with pytest.raises(Outcome) as caught:
        r.rollout().apply(tmp_path / "incoming" / "r1")
    assert caught.value.code == EXIT_FAILED
    assert caught.value.message.endswith("\nr1 was already the current release; it stays current")
    assert state(r) == ("r1", "r0", "r1", None)
    assert r.new_events() == ["apply.started", "apply.failed"]


def test_restoring_rides_out_an_engine_that_is_settling(tmp_path: Path) -> None:
    """After a dockerd restart `up` of the previous release may meet the engine mid-restore; it is idempotent, so
    the restore waits for the engine and runs it again. A new release is not retried: it is rolled back."""
    r = serving(tmp_path, "r1")
    settling = exited(1, stderr="Error response from daemon: task 0123456789abcdef: already exists")
    r.host.on("up", "r2", settling)
    r.host.on("up", "r1", settling)
    failing(r, "r2", EXIT_FAILED)
    assert r.host.calls.count(("up", "r2")) == 1
    assert r.host.calls.count(("up", "r1")) == 2
    assert r.clock.now == 1000.0 + Options().engine_settle_s  # waited for the engine to settle, once
    assert r.new_events() == ["apply.started", "apply.failed", "rollback.succeeded"]
    assert state(r) == ("r1", None, "r1", None)


def test_restoring_pulls_again_once_the_engine_answers(tmp_path: Path) -> None:
    """The restore's pull (one per image since pulls are timed) may meet dockerd restarting too: it waits for the
    engine and pulls once more, as `up` does. A new release's pull is not retried: it is rolled back."""
    r = serving(tmp_path, "r1")
    settling = exited(1, stderr="Cannot connect to the Docker daemon at unix:///var/run/docker.sock.")
    r.host.on("up", "r2", exited(1, stderr="dependency failed to start: container api is unhealthy"))
    r.host.on("pull", "r1", settling)
    failing(r, "r2", EXIT_FAILED)
    assert r.host.calls.count(("pull", "r1")) == 2
    assert r.clock.now == 1000.0 + Options().engine_settle_s
    assert r.new_events() == ["apply.started", "apply.failed", "rollback.succeeded"]
    r.host.on("pull", "r3", settling)
    failing(r, "r3", EXIT_FAILED)
    assert r.host.calls.count(("pull", "r3")) == 1


def test_a_rollback_activates_the_previous_release(tmp_path: Path) -> None:
    """`rollback` is the same activation for a release already on the host; current and previous swap."""
    r = serving(tmp_path, "r1", "r2")
    assert r.rollout().rollback(None) == "rollback of r1 succeeded in 0.0s (previous: r2)"
    assert r.host.calls == [("info", None), ("pull", "r1"), ("up", "r1"), ("validate", "r1")]
    assert state(r) == ("r1", "r2", "r1", None)
    assert r.new_events() == ["rollback.started", "rollback.succeeded"]


def test_a_failed_rollback_brings_the_current_release_back(tmp_path: Path) -> None:
    """A rollback whose target no longer comes up restores what was running: the host is never left without
    a validated release because a rollback was asked for."""
    r = serving(tmp_path, "r1", "r2")
    r.host.on("up", "r1", exited(1, stderr="no such image"))
    with pytest.raises(Outcome) as caught:
        r.rollout().rollback(None)
    assert caught.value.code == EXIT_FAILED
    assert caught.value.message.endswith("previous release r2 restored and serving")
    assert state(r) == ("r2", "r1", "r2", None)
    assert r.new_events() == ["rollback.started", "rollback.failed", "rollback.succeeded"]


RESTORE_FAILURES: dict[str, tuple[str, Reply, str, str, str]] = {
    # id: (step, reply, stage, reason, where `run` is left)
    "pull-exit": ("pull", exited(1, stderr="toomanyrequests"), "pull",
                  "`docker compose pull` exited 1: toomanyrequests", "r2"),
    "up-exit": ("up", exited(1, stderr="port is already allocated"), "up",
                "`docker compose up` exited 1: port is already allocated", "r1"),
    "validate-exit-1": ("validate", 1, "validate", "validation failed (report {base}/reports/r1-j1.json)", "r1"),
    "pull-timeout": ("pull", timeout(seconds=600), "pull", "compose pull did not return within 600s", "r2"),
    "pull-oserror": ("pull", OSError(24, "Too many open files"), "pull",
                     "cannot run compose pull: [Errno 24] Too many open files", "r2"),
    "up-timeout": ("up", timeout(seconds=300), "up", "compose up did not return within 300s", "r1"),
    "up-oserror": ("up", OSError(12, "Cannot allocate memory"), "up",
                   "cannot run compose up: [Errno 12] Cannot allocate memory", "r1"),
    "validate-timeout": ("validate", timeout(seconds=180), "validate", "the validator did not return within 180s",
                         "r1"),
    "validate-oserror": ("validate", PermissionError(13, "Permission denied"), "validate",
                         "cannot run the validator: [Errno 13] Permission denied", "r1"),
}


@pytest.mark.parametrize("case", RESTORE_FAILURES, ids=str)
def test_a_restore_that_fails_too_is_critical(tmp_path: Path, case: str) -> None:
    """When the previous release cannot be brought back either, the job ends critical (exit 4) naming both
    failures; `current` still names the last validated release, the audit trail says both failed, and the
    activation is over (pending.json gone: a later apply must not report it as interrupted)."""
    step, reply, stage, reason, run = RESTORE_FAILURES[case]
    r = serving(tmp_path, "r0", "r1")
    r.host.on("up", "r2", exited(1, stderr="container green-api-1 is unhealthy"))
    r.host.on(step, "r1", reply)
    message = failing(r, "r2", EXIT_CRITICAL)
    reason = reason.format(base=r.store.base)
    assert message.splitlines()[0] == ("apply of r2 failed at up: `docker compose up` exited 1: "
                                       "container green-api-1 is unhealthy")
    assert message.splitlines()[-1] == f"CRITICAL: restoring r1 failed too at {stage}: {reason}"
    assert state(r) == ("r1", "r0", run, None)
    assert r.new_events() == ["apply.started", "apply.failed", "rollback.failed"]
    second = r.store.audit_entries()[-1]
    assert (second["release"], second["failed"], second["stage"], second["reason"]) == ("r1", "r2", stage, reason)


def test_a_missing_docker_binary_fails_the_docker_step_of_both_releases(tmp_path: Path) -> None:
    """`docker` that cannot be started is polled like an engine that does not answer, then fails the step: the
    job ends critical with the reason, never a crash that skips the restore and leaves pending.json."""
    r = serving(tmp_path, "r1")
    r.host.always["info"] = FileNotFoundError(2, "No such file or directory", "docker")
    with pytest.raises(Outcome) as caught:
        r.apply("r2", Options(docker_deadline=3))
    assert caught.value.code == EXIT_CRITICAL
    reason = ("docker engine did not answer within 3s: cannot run docker info: [Errno 2] No such file or directory: "
              "'docker'")
    assert caught.value.message.splitlines()[0] == f"apply of r2 failed at docker: {reason}"
    assert caught.value.message.splitlines()[-1] == f"CRITICAL: restoring r1 failed too at docker: {reason}"
    assert state(r) == ("r1", None, "r1", None)
    assert r.new_events() == ["apply.started", "apply.failed", "rollback.failed"]


@dataclass(frozen=True)
class WatchedAudit(Store):
    """A store that notes where `run` points at each audit write, and whose disk refuses the `refuse` events."""

    refuse: tuple[str, ...] = ()
    writes: list[tuple[str, str | None]] = field(default_factory=list)

    def audit(self, event: str, **fields: Any) -> dict[str, Any]:
        self.writes.append((event, self.run_target()))
        if event in self.refuse:
            raise OSError(5, "Input/output error")
        return super().audit(event, **fields)


def test_a_failure_is_audited_after_the_previous_release_is_back(tmp_path: Path) -> None:
    """The previous release is re-activated before anything else is written: a disk failing at that moment must
    not leave the failed release running. Risk: audit first, and an I/O error keeps the new release live."""
    store = WatchedAudit(tmp_path / "root", "green")
    r = rig(tmp_path, store)
    r.apply("r1")
    r.host.on("validate", "r2", 1)
    failing(r, "r2", EXIT_FAILED)
    assert store.writes[-3:] == [("apply.started", "r1"), ("apply.failed", "r1"), ("rollback.succeeded", "r1")]


AUDIT_IO_ERROR = "[Errno 5] Input/output error"


def test_an_audit_write_that_fails_does_not_stop_the_restore(tmp_path: Path) -> None:
    """The restore goes on when the audit log cannot be written; the operator's message still reports the failed
    release, its restore, and which audit entries are missing."""
    r = rig(tmp_path, WatchedAudit(tmp_path / "root", "green", refuse=("apply.failed", "rollback.succeeded")))
    r.apply("r1")
    r.host.on("up", "r2", exited(1, stderr="container green-api-1 is unhealthy"))
    message = failing(r, "r2", EXIT_FAILED)
    assert message.splitlines()[0] == ("apply of r2 failed at up: `docker compose up` exited 1: "
                                       "container green-api-1 is unhealthy")
    assert message.splitlines()[-3:] == [f"audit log: apply.failed not recorded: {AUDIT_IO_ERROR}",
                                         f"audit log: rollback.succeeded not recorded: {AUDIT_IO_ERROR}",
                                         "previous release r1 restored and serving"]
    assert state(r) == ("r1", None, "r1", None)
    assert r.events() == ["apply.started", "apply.succeeded", "apply.started"]


def test_an_audit_write_that_fails_during_a_critical_restore_is_reported(tmp_path: Path) -> None:
    """Exit 4 stays exit 4 when the audit log cannot take either failure; the message says both are missing."""
    r = rig(tmp_path, WatchedAudit(tmp_path / "root", "green", refuse=("apply.failed", "rollback.failed")))
    r.apply("r1")
    r.host.on("pull", None, exited(1, stderr="toomanyrequests"), exited(1, stderr="toomanyrequests"))
    message = failing(r, "r2", EXIT_CRITICAL)
    assert message.splitlines()[-3:] == [f"audit log: apply.failed not recorded: {AUDIT_IO_ERROR}",
                                         f"audit log: rollback.failed not recorded: {AUDIT_IO_ERROR}",
                                         "CRITICAL: restoring r1 failed too at pull: `docker compose pull` exited 1: "
                                         "toomanyrequests"]
    assert state(r) == ("r1", None, "r1", None)
