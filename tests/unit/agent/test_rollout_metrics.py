"""What a rollout records in its metrics (agent.metrics), against a scripted runner: attempts, failures by stage
(an apply's, a gate's, an unconfirmed pool apply's), the last apply's steps, outcomes, each image's pull, the
trace probes of a validation. The release never depends on them: a refusing disk fails nothing."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from agent import pool
from agent.metrics import FAILURE_STAGES
from agent.rollout import EXIT_FAILED, EXIT_INPUT, Options, Outcome
from agent.steps import StepFailed
from agent.validate.report import CheckResult, Report, to_json
from tests.unit.agent.rollout_fake import Reply, Rig, bundle, exited, failing, rig, serving, state, timeout

HEALTH = CheckResult("health/rag", "rag", "health", True, 1, 0.1, "GET /health", "200")
A = "reg/devtools/api@sha256:" + "1" * 64
W = "reg/devtools/web@sha256:" + "2" * 64


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def prom(r: Rig) -> str:
    return (r.store.root / "metrics" / "green.prom").read_text()


def series(r: Rig) -> dict[str, str]:
    """The .prom file's samples: series → value."""
    return dict(line.rsplit(" ", 1) for line in prom(r).splitlines() if not line.startswith("#"))


def two_images(r: Rig, release_id: str) -> None:
    r.host.on("config", release_id, exited(0, stdout=json.dumps({"services": {
        "api": {"image": A}, "worker": {"image": A}, "web": {"image": W}}})))


def test_a_good_apply_then_one_rolled_back_at_validate(tmp_path: Path) -> None:
    """Every apply counts; the failing one counts under its stage; the last apply's steps replace the ones before
    (a step it never reached has none), and each outcome has its time."""
    r = rig(tmp_path)
    r.clock.now = 1_700_000_000.0
    r.apply("r1")
    assert series(r) == {
        'devtools_rollouts_total{project="green"}': "1",
        'devtools_rollout_last_timestamp_seconds{project="green",outcome="succeeded"}': "1700000000",
        'devtools_rollout_step_seconds{project="green",step="pull"}': "0",
        'devtools_rollout_step_seconds{project="green",step="up"}': "0",
        'devtools_rollout_step_seconds{project="green",step="validate"}': "0",
        'devtools_rollout_step_seconds{project="green",step="total"}': "0",
        **{f'devtools_rollout_failures_total{{project="green",stage="{s}"}}': "0" for s in FAILURE_STAGES},
        **{k: v for k, v in series(r).items() if k.startswith("devtools_image_pull_")}}

    def slow_failure(argv: list[str]) -> subprocess.CompletedProcess[str]:
        r.clock.now += 2.5
        return subprocess.CompletedProcess(argv, 1, "", "")
    r.host.on("validate", "r2", slow_failure)
    failing(r, "r2", EXIT_FAILED)
    got = series(r)
    assert got['devtools_rollouts_total{project="green"}'] == "2"
    assert got['devtools_rollout_failures_total{project="green",stage="validate"}'] == "1"
    assert got['devtools_rollout_last_timestamp_seconds{project="green",outcome="rolled_back"}'] == "1700000002.5"
    assert got['devtools_rollout_step_seconds{project="green",step="validate"}'] == "2.5"
    assert got['devtools_rollout_step_seconds{project="green",step="total"}'] == "2.5"


def test_while_a_first_apply_runs_its_counters_are_already_there_at_zero(tmp_path: Path) -> None:
    """increase() cannot see a counter's first sample: a scrape during the first apply must find the attempt and
    every failure stage at 0, so that the outcome's increment is measured (a first failed apply is not lost, nor
    does it give a failure ratio of 1/0)."""
    r = rig(tmp_path)
    during: dict[str, str] = {}

    def failing_validation(argv: list[str]) -> subprocess.CompletedProcess[str]:
        during.update(series(r))
        return subprocess.CompletedProcess(argv, 1, "", "")
    r.host.on("validate", "r1", failing_validation)
    failing(r, "r1", EXIT_FAILED)
    assert during['devtools_rollouts_total{project="green"}'] == "0"
    assert {k: v for k, v in during.items() if "failures" in k} == {
        f'devtools_rollout_failures_total{{project="green",stage="{s}"}}': "0" for s in FAILURE_STAGES}
    after = series(r)
    assert after['devtools_rollouts_total{project="green"}'] == "1"
    assert after['devtools_rollout_failures_total{project="green",stage="validate"}'] == "1"


def test_a_failure_at_up_leaves_no_validate_step_and_a_first_release_ends_failed(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.host.on("up", "r1", exited(1, stderr="dependency failed to start: container api is unhealthy"))
    failing(r, "r1", EXIT_FAILED)
    got = series(r)
    assert got['devtools_rollout_failures_total{project="green",stage="up"}'] == "1"
    assert 'devtools_rollout_last_timestamp_seconds{project="green",outcome="failed"}' in got
    assert sorted(k for k in got if "step_seconds" in k) == [
        'devtools_rollout_step_seconds{project="green",step="pull"}',
        'devtools_rollout_step_seconds{project="green",step="total"}',
        'devtools_rollout_step_seconds{project="green",step="up"}']


def test_a_refused_bundle_is_an_attempt_that_failed_at_prepare(tmp_path: Path) -> None:
    r = serving(tmp_path, "r1")
    r.host.on("config", "r2", exited(1, stderr="service web: image must be set"))
    failing(r, "r2", EXIT_INPUT)
    got = series(r)
    assert got['devtools_rollouts_total{project="green"}'] == "2"
    assert got['devtools_rollout_failures_total{project="green",stage="prepare"}'] == "1"


def test_each_image_is_pulled_at_once_and_timed_on_its_own(tmp_path: Path) -> None:
    """One `compose pull` per distinct image (its services named), concurrently, each under --pull-timeout; each
    image is one observation, each of its services gets its last pull time."""
    r = rig(tmp_path)
    two_images(r, "r1")

    def pulling(argv: list[str]) -> subprocess.CompletedProcess[str]:
        time.sleep(0.8 if argv[-1] == "web" else 0.05)
        return subprocess.CompletedProcess(argv, 0, "", "")
    r.host.on("pull", "r1", pulling, pulling)
    rollout = r.rollout(Options(pull_timeout=33))
    rollout.clock = time.monotonic
    t0 = time.monotonic()
    rollout.apply(bundle(tmp_path, "r1"))
    assert time.monotonic() - t0 < 1.5  # at once, not one after the other (0.85 s)
    pulls = sorted(argv[argv.index("pull"):] for argv in r.host.argvs if "pull" in argv)
    assert pulls == [["pull", "--quiet", "--policy", "missing", "api", "worker"],
                     ["pull", "--quiet", "--policy", "missing", "web"]]
    assert [t for t, argv in zip(r.host.timeouts, r.host.argvs, strict=True) if "pull" in argv] == [33, 33]
    got = series(r)
    assert got['devtools_image_pull_duration_seconds_count{project="green"}'] == "2"
    assert got['devtools_image_pull_duration_seconds_bucket{project="green",le="0.5"}'] == "1"
    assert got['devtools_image_pull_duration_seconds_bucket{project="green",le="1"}'] == "2"
    last = {k: float(v) for k, v in got.items() if k.startswith("devtools_image_pull_last_seconds")}
    assert last.keys() == {f'devtools_image_pull_last_seconds{{project="green",service="{s}"}}'
                           for s in ("api", "web", "worker")}
    assert last['devtools_image_pull_last_seconds{project="green",service="web"}'] >= 0.8


FAILS: dict[str, tuple[Reply, str]] = {"exit": (exited(1, stderr="Error response from daemon: manifest unknown"),
                  "`docker compose pull` exited 1: Error response from daemon: manifest unknown"),
         "timeout": (timeout(seconds=33), "compose pull did not return within 600s")}


@pytest.mark.parametrize("case", FAILS, ids=str)
def test_one_image_failing_fails_the_pull_step_as_before(tmp_path: Path, case: str) -> None:
    """The step's failure is the one a single `compose pull` had (stage `pull`, same reason); the other image's
    pull still ends and is counted, the failed one is not."""
    reply, reason = FAILS[case]

    def web_fails(argv: list[str]) -> subprocess.CompletedProcess[str]:
        if argv[-1] != "web":
            return subprocess.CompletedProcess(argv, 0, "", "")
        if isinstance(reply, BaseException):
            raise reply
        assert callable(reply)
        return reply(argv)
    r = serving(tmp_path, "r1")
    two_images(r, "r2")
    r.host.on("pull", "r2", web_fails, web_fails)
    message = failing(r, "r2", EXIT_FAILED)
    assert message.splitlines()[0] == f"apply of r2 failed at pull: {reason}"
    assert state(r) == ("r1", None, "r1", None)
    got = series(r)
    assert got['devtools_rollout_failures_total{project="green",stage="pull"}'] == "1"
    # r1's config names no image (nothing to time); of r2 only api+worker's image was pulled
    assert got['devtools_image_pull_duration_seconds_count{project="green"}'] == "1"
    assert 'devtools_image_pull_last_seconds{project="green",service="web"}' not in got
    assert 'devtools_image_pull_last_seconds{project="green",service="api"}' in got


def test_a_disk_refusing_the_metrics_fails_no_release(tmp_path: Path) -> None:
    r = rig(tmp_path)
    (r.store.root / "metrics").write_text("not a directory")
    assert r.apply("r1").startswith("apply of r1 succeeded")
    assert state(r) == ("r1", None, "r1", None)
    assert any(line.startswith("metrics: not recorded (") for line in r.logged)


def validator_with_traces(agents: dict[str, bool]) -> Reply:
    """A passing validator run whose report carries the trace phase's section (contract section 3)."""
    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        report = to_json(Report("2025-01-01T00:00:00Z", 0.5, (HEALTH,)))
        report["traces"] = {"agents": agents, "coverage": 0.5, "min": 0.9, "host": "http://127.0.0.1:9392"}
        Path(argv[argv.index("--json") + 1]).write_text(json.dumps(report))
        return subprocess.CompletedProcess(argv, 0, "", "")
    return run


def test_a_validation_with_traces_counts_each_agents_probe(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.host.on("validate", "r1", validator_with_traces({"rag": True, "cicd": False}))
    r.apply("r1")
    r.host.on("validate", "r1", validator_with_traces({"rag": True, "cicd": True}))
    pool.gate(r.rollout(job="g1"), "r1", r.store.base / "reports" / "gate-r1.json")
    got = series(r)
    assert got['devtools_trace_probes_total{project="green",agent="rag"}'] == "2"
    assert got['devtools_trace_probes_total{project="green",agent="cicd"}'] == "2"
    assert got['devtools_trace_probes_traced_total{project="green",agent="rag"}'] == "2"
    assert got['devtools_trace_probes_traced_total{project="green",agent="cicd"}'] == "1"


def test_a_validation_without_traces_records_none(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.apply("r1")
    assert "trace_probes" not in prom(r)


def test_a_failed_gate_and_an_unconfirmed_pool_apply_count_as_failures(tmp_path: Path) -> None:
    r = serving(tmp_path, "r1", "r2")
    r.host.on("validate", "r2", exited(1))
    with pytest.raises(Outcome):
        pool.gate(r.rollout(job="g1"), "r2", r.store.base / "reports" / "gate-r2.json")
    assert series(r)['devtools_rollout_failures_total{project="green",stage="validate"}'] == "1"
    r.rollout(Options(confirm_within=60)).apply(bundle(tmp_path, "r3"))
    r.clock.now += 61
    assert pool.overdue(r.rollout(job="late")) is not None
    got = series(r)
    assert got['devtools_rollout_failures_total{project="green",stage="confirm"}'] == "1"
    assert got['devtools_rollouts_total{project="green"}'] == "3"


def test_step_failed_is_what_the_pull_raises(tmp_path: Path) -> None:
    """A pull failure is the step's own exception (the restore path catches StepFailed only)."""
    r = serving(tmp_path, "r1")
    two_images(r, "r2")
    r.host.on("pull", "r2", exited(1), exited(1))
    rollout = r.rollout()
    rollout.prepare(bundle(tmp_path, "r2"))
    with pytest.raises(StepFailed) as caught:
        rollout.pull("r2")
    assert caught.value.stage == "pull"
