"""After the agent's own apply, against a scripted runner: the Pulumi gate's verdict (a failed gate restores the
previous release and writes a bundle, like a failed apply) and a pool host's provisional release (confirmed, or
put back at its deadline by the worker or by the next job)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent import hostagent, jobs, pool
from agent.rollout import EXIT_FAILED, EXIT_INPUT, EXIT_OK, Options
from agent.validate.report import CheckResult, Report, to_json
from tests.unit.agent.rollout_fake import Rig, bundle, serving, state

CICD_E2E = CheckResult("e2e/cicd", "cicd", "e2e", False, 3, 20.0, "POST /e2e", "timed out after 20s")
HEALTH = CheckResult("health/cicd", "cicd", "health", True, 1, 0.1, "GET /health", "200")


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """fsync is durability against a power cut, which no test here exercises."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def validator(report: Path, *checks: CheckResult):
    """A validator run that writes `checks` as its report and exits as the real one would."""
    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        report.write_text(json.dumps(to_json(Report("2025-01-01T00:00:00Z", 0.5, checks))))
        passed = all(c.passed for c in checks)
        return subprocess.CompletedProcess(argv, 0 if passed else 1, "CHECK  RESULT\n", "")
    return run


def gate_job(r: Rig, job: str, release_id: str, **options: Any) -> str:
    r.store.ensure()
    spec = {"action": "gate", "release": release_id, "report": None,
            "options": {**Options().__dict__, "validate_deadline": 20, **options}}
    r.store.write_job_file(f"{job}.spec.json", json.dumps(spec))
    return job


def run(r: Rig, job: str) -> tuple[int, dict[str, Any]]:
    code = jobs.run_job(r.store, job, runner=r.host, clock=r.clock, sleep=r.clock.sleep, now=r.clock,
                        diagnose=r.diagnose)
    return code, json.loads((r.store.jobs / f"{job}.result.json").read_text())


def test_a_gate_that_passes_records_its_summary_and_changes_nothing(tmp_path, capsys):
    r = serving(tmp_path, "r1", "r2")
    report = r.store.base / "reports" / "gate-r2.json"
    r.host.on("validate", "r2", validator(report, HEALTH))
    code, result = run(r, gate_job(r, "20250101T000000-aaaaaa", "r2"))
    assert code == EXIT_OK
    assert result["summary"] == {"passed": True, "release": "r2", "checks": 1, "failed": [], "duration_s": 0.5}
    assert r.host.calls == [("validate", "r2")]
    argv = r.host.argvs[0]
    assert argv[argv.index("--json") + 1] == str(report)
    assert "gate=pulumi" in argv and argv[argv.index("--deadline") + 1] == "20"
    assert state(r) == ("r2", "r1", "r2", None)
    assert r.new_events() == ["gate.passed"]


def test_a_gate_that_fails_after_a_good_apply_restores_the_previous_release(tmp_path, capsys):
    """The agent's own validation passed, the gate's did not: the host must not stay on the new release without a
    bundle. The same restore path as a failed apply runs (bundle, previous release up and validated, audit after
    the restore); current and previous swap; the job fails, its summary still the last thing printed."""
    r = serving(tmp_path, "r1", "r2")
    report = r.store.base / "reports" / "gate-r2.json"
    r.host.on("validate", "r2", validator(report, HEALTH, CICD_E2E))
    job = gate_job(r, "20250101T000000-bbbbbb", "r2")
    code, result = run(r, job)
    assert code == EXIT_FAILED
    assert result["summary"] == {"passed": False, "release": "r2", "checks": 2, "failed": ["e2e/cicd"],
                                 "duration_s": 0.5}
    bundle = r.store.base / "diagnostics" / f"r2-{job}"
    assert result["message"] == "\n".join([
        f"gate of r2 failed at validate: validation gate failed: e2e/cicd (report {report})",
        "failing services: cicd",  # (the scripted `logs` prints nothing: no log lines follow)
        f"debug bundle: {bundle}",
        "previous release r1 restored and serving",
    ])
    assert r.bundles == [(f"r2-{job}", ["cicd"])]
    assert r.host.calls == [("validate", "r2"), ("logs", "r2"), ("info", None), ("pull", "r1"), ("up", "r1"),
                            ("validate", "r1")]
    assert state(r) == ("r1", "r2", "r1", None)
    assert r.new_events() == ["gate.failed", "rollback.succeeded"]
    failed = r.store.audit_entries()[r.seen]
    assert (failed["release"], failed["previous"], failed["stage"], failed["services"]) == ("r2", "r1", "validate",
                                                                                          ["cicd"])
    follow_out = capsys.readouterr().out
    assert jobs.follow(r.store, job) == EXIT_FAILED
    assert capsys.readouterr().out.splitlines()[-1] == (
        '{"checks":2,"duration_s":0.5,"failed":["e2e/cicd"],"passed":false,"release":"r2"}')
    assert "FAILED: gate of r2 failed at validate" in follow_out


def test_rerunning_a_failed_gate_activates_its_release_again(tmp_path, capsys):
    """Re-running `pulumi up` after a failed gate re-runs the gate only (the apply is recorded as done): the gate
    activates its release again before it validates, so the retry really retries instead of validating the
    previous release's containers against the new release's config."""
    r = serving(tmp_path, "r1", "r2")
    r.store.set_pointer("current", "r1")
    r.store.set_pointer("previous", "r2")
    r.store.point_run_at("r1")
    r.forget()
    r.host.on("validate", "r2", 0, validator(r.store.base / "reports" / "gate-r2.json", HEALTH))
    code, result = run(r, gate_job(r, "20250101T000000-cccccc", "r2"))
    assert code == EXIT_OK, result
    assert r.host.calls == [("info", None), ("pull", "r2"), ("up", "r2"), ("validate", "r2"), ("validate", "r2")]
    assert state(r) == ("r2", "r1", "r2", None)
    assert r.new_events() == ["apply.started", "apply.succeeded", "gate.passed"]


def test_a_gate_for_a_release_the_host_does_not_have_is_refused(tmp_path, capsys):
    r = serving(tmp_path, "r1")
    code, result = run(r, gate_job(r, "20250101T000000-dddddd", "r9"))
    assert (code, result["message"]) == (EXIT_INPUT, "release r9 is not on this host (kept: r1)")
    assert r.host.calls == []


def test_a_pool_hosts_apply_is_provisional_and_confirm_keeps_it(tmp_path):
    r = serving(tmp_path, "r1")
    rollout = r.rollout(Options(confirm_within=600))
    message = rollout.apply(_bundle(tmp_path, "r2"))
    assert message == "apply of r2 succeeded in 0.0s (previous: r1); provisional: back to r1 unless confirmed " \
                      "within 600s"
    marker = r.store.read_provisional()
    assert marker is not None
    assert (marker["release"], marker["previous"], marker["deadline"]) == ("r2", "r1", r.clock.now + 600)
    assert pool.confirm(r.rollout(job="c1"), "r2").startswith("release r2 confirmed: it stays")
    assert r.store.read_provisional() is None
    assert r.new_events()[-1] == "apply.confirmed"
    assert pool.confirm(r.rollout(job="c2"), "r2") == "release r2 is current and not provisional: nothing to confirm"


def test_an_unconfirmed_release_is_put_back_by_the_worker_that_applied_it(tmp_path, capsys):
    """Host 1 passed, host 2 failed: no confirm ever reaches host 1. Its worker waits out the deadline, then puts
    the release before back (same restore path, `apply.unconfirmed`): the pool does not stay mixed."""
    r = serving(tmp_path, "r1")
    r.store.write_job_file("20250101T000000-eeeeee.spec.json", json.dumps({
        "action": "apply", "bundle": str(_bundle(tmp_path, "r2")), "release": "r2",
        "options": {**Options().__dict__, "confirm_within": 900}}))
    code, _ = run(r, "20250101T000000-eeeeee")
    assert code == EXIT_OK
    assert r.clock.now >= 1000.0 + 900  # the worker slept until the deadline
    assert state(r) == ("r1", "r2", "r1", None)
    assert r.store.read_provisional() is None
    assert r.new_events() == ["apply.started", "apply.succeeded", "apply.unconfirmed", "rollback.succeeded"]
    unconfirmed = r.store.audit_entries()[r.seen + 2]
    assert unconfirmed["reason"] == "not confirmed within 900s (another host of the pool failed, or the update " \
                                    "stopped)"
    assert "putting r1 back" in capsys.readouterr().out


def test_an_overdue_provisional_release_is_put_back_by_the_next_job_and_a_late_confirm_wins(tmp_path, capsys):
    """The worker that would have put it back is gone (a reboot): the next job does it first. A confirm of that
    very release arriving late keeps it instead (the pool passed), and a confirm of a release the host already
    left activates it again (the retry of the whole update)."""
    r = serving(tmp_path, "r1")
    r.rollout(Options(confirm_within=60)).apply(_bundle(tmp_path, "r2"))
    r.clock.now += 61
    late = r.rollout(job="late")
    assert pool.overdue(late, keep="r2") is None
    assert pool.overdue(late) is not None
    assert state(r) == ("r1", "r2", "r1", None)
    r.forget()
    assert pool.confirm(r.rollout(job="retry"), "r2").endswith("release r2 confirmed")
    assert state(r) == ("r2", "r1", "r2", None)
    assert r.new_events() == ["apply.started", "apply.succeeded", "apply.confirmed"]


def test_any_other_activation_ends_a_provisional_state(tmp_path):
    """An operator's rollback (or a plain apply) supersedes the pool's pending verdict: no later revert."""
    r = serving(tmp_path, "r1")
    r.rollout(Options(confirm_within=60)).apply(_bundle(tmp_path, "r2"))
    r.rollout().rollback(None)
    assert r.store.read_provisional() is None


def _bundle(tmp: Path, release_id: str) -> Path:
    return bundle(tmp, release_id)


def test_stopping_the_project_ends_a_provisional_release(tmp_path, monkeypatch, capsys):
    """Destroying a pool's stack mid-rollout runs `hostagent stop`: the worker waiting for its deadline must not
    start the previous release's containers afterwards."""
    r = serving(tmp_path, "r1")
    r.rollout(Options(confirm_within=600)).apply(bundle(tmp_path, "r2"))
    downs: list[list[str]] = []

    def compose_down(argv: list[str], **_kw: Any) -> subprocess.CompletedProcess[str]:
        downs.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(subprocess, "run", compose_down)
    assert hostagent.main(["--root", str(r.store.root), "--project", "green", "stop"]) == EXIT_OK
    assert r.store.read_provisional() is None
    assert "provisional release r2 ended" in capsys.readouterr().out
    assert downs[0][-4:-2] == ["down", "--remove-orphans"]
    assert r.store.audit_entries()[-1]["provisional"]["release"] == "r2"
