"""The host's rollout metrics (agent.metrics): the exact text of the .prom file node_exporter's textfile collector
reads, counters that persist across runs, the atomic write, and a disk that refuses them never failing a release."""

from __future__ import annotations

import json
import os
import stat
from functools import partial
from pathlib import Path

import pytest

from agent import metrics
from agent.metrics import Metrics
from agent.validate.report import read_traces

EXPECTED = """\
# HELP devtools_image_pull_duration_seconds Seconds each image pull of an activation took.
# TYPE devtools_image_pull_duration_seconds histogram
devtools_image_pull_duration_seconds_bucket{project="green",le="0.5"} 1
devtools_image_pull_duration_seconds_bucket{project="green",le="1"} 1
devtools_image_pull_duration_seconds_bucket{project="green",le="2.5"} 1
devtools_image_pull_duration_seconds_bucket{project="green",le="5"} 1
devtools_image_pull_duration_seconds_bucket{project="green",le="10"} 2
devtools_image_pull_duration_seconds_bucket{project="green",le="20"} 2
devtools_image_pull_duration_seconds_bucket{project="green",le="30"} 2
devtools_image_pull_duration_seconds_bucket{project="green",le="60"} 2
devtools_image_pull_duration_seconds_bucket{project="green",le="120"} 2
devtools_image_pull_duration_seconds_bucket{project="green",le="300"} 2
devtools_image_pull_duration_seconds_bucket{project="green",le="+Inf"} 3
devtools_image_pull_duration_seconds_sum{project="green"} 307.75
devtools_image_pull_duration_seconds_count{project="green"} 3
# HELP devtools_image_pull_last_seconds Seconds the last pull of each service's image took.
# TYPE devtools_image_pull_last_seconds gauge
devtools_image_pull_last_seconds{project="green",service="api"} 7.5
devtools_image_pull_last_seconds{project="green",service="web"} 300.25
devtools_image_pull_last_seconds{project="green",service="worker"} 7.5
# HELP devtools_rollout_failures_total Applies that failed (restored or not), failed gates and unconfirmed pool \
applies, by failing step.
# TYPE devtools_rollout_failures_total counter
devtools_rollout_failures_total{project="green",stage="pull"} 1
devtools_rollout_failures_total{project="green",stage="validate"} 2
# HELP devtools_rollout_last_timestamp_seconds Unix time of the last rollout ending with each outcome.
# TYPE devtools_rollout_last_timestamp_seconds gauge
devtools_rollout_last_timestamp_seconds{project="green",outcome="rolled_back"} 1700000100.5
devtools_rollout_last_timestamp_seconds{project="green",outcome="succeeded"} 1700000000
# HELP devtools_rollout_step_seconds Seconds each step of the last apply took.
# TYPE devtools_rollout_step_seconds gauge
devtools_rollout_step_seconds{project="green",step="pull"} 1.234
devtools_rollout_step_seconds{project="green",step="total"} 9
devtools_rollout_step_seconds{project="green",step="up"} 4.5
devtools_rollout_step_seconds{project="green",step="validate"} 3.25
# HELP devtools_rollouts_total Apply attempts (every hostagent apply).
# TYPE devtools_rollouts_total counter
devtools_rollouts_total{project="green"} 4
# HELP devtools_trace_probes_total Agents whose end-to-end probe ran in a validation with the trace phase on.
# TYPE devtools_trace_probes_total counter
devtools_trace_probes_total{project="green",agent="cicd"} 2
devtools_trace_probes_total{project="green",agent="rag"} 2
# HELP devtools_trace_probes_traced_total Agents whose end-to-end probe's trace was found.
# TYPE devtools_trace_probes_traced_total counter
devtools_trace_probes_traced_total{project="green",agent="cicd"} 1
devtools_trace_probes_traced_total{project="green",agent="rag"} 2
"""


def full_state() -> metrics.State:
    state = metrics.empty_state()
    for _ in range(4):
        metrics.count_attempt(state)
    for stage in ("validate", "pull", "validate"):
        metrics.count_failure(state, stage)
    metrics.set_steps(state, {"pull": 1.2344, "up": 4.5, "validate": 3.25, "total": 9.0, "other": 1.0})
    metrics.set_outcome(state, "succeeded", 1_700_000_000.0)
    metrics.set_outcome(state, "rolled_back", 1_700_000_100.5)
    metrics.observe_pull(state, ("api", "worker"), 7.5)
    metrics.observe_pull(state, ("web",), 0.0)
    metrics.observe_pull(state, ("web",), 300.25)
    metrics.count_traces(state, {"rag": True, "cicd": False})
    metrics.count_traces(state, {"rag": True, "cicd": True})
    return state


def test_the_rendering_is_exact_sorted_and_deterministic() -> None:
    """Families by name, series by label value, histogram buckets by bound (not as text), +Inf = count; only the
    contract's four steps. Risk: a name or label the SLO rules query drifting, or a file that differs run to run."""
    assert metrics.render("green", full_state()) == EXPECTED
    assert metrics.render("green", json.loads(json.dumps(full_state()))) == EXPECTED


def test_a_fresh_project_has_its_attempt_counter_and_an_empty_pull_histogram() -> None:
    """Families without a series are left out; the attempt counter and the pull histogram are there at 0 (increase()
    measures from a counter's first sample, so the first apply's pulls must not be that sample)."""
    buckets = "".join(f'devtools_image_pull_duration_seconds_bucket{{project="blue",le="{le}"}} 0\n'
                      for le in ("0.5", "1", "2.5", "5", "10", "20", "30", "60", "120", "300", "+Inf"))
    assert metrics.render("blue", metrics.empty_state()) == (
        "# HELP devtools_image_pull_duration_seconds Seconds each image pull of an activation took.\n"
        "# TYPE devtools_image_pull_duration_seconds histogram\n"
        + buckets
        + 'devtools_image_pull_duration_seconds_sum{project="blue"} 0\n'
        'devtools_image_pull_duration_seconds_count{project="blue"} 0\n'
        "# HELP devtools_rollouts_total Apply attempts (every hostagent apply).\n"
        "# TYPE devtools_rollouts_total counter\n"
        'devtools_rollouts_total{project="blue"} 0\n')


def test_label_values_are_escaped_as_the_exposition_format_asks() -> None:
    state = metrics.empty_state()
    metrics.count_failure(state, 'we"ird\\stage\nline')
    text = metrics.render("green", state)
    assert 'devtools_rollout_failures_total{project="green",stage="we\\"ird\\\\stage\\nline"} 1\n' in text
    assert metrics.escape_help("a\\b\nc") == "a\\\\b\\nc"


def test_an_unknown_outcome_is_refused() -> None:
    with pytest.raises(ValueError, match="outcome 'ok'"):
        metrics.set_outcome(metrics.empty_state(), "ok", 1.0)


def test_counters_persist_across_runs_and_the_file_is_written_atomically(tmp_path: Path) -> None:
    """Each job is a new process: the state beside the project carries the counters on. The .prom file is 0644 in
    a 0755 directory (read by the collector's user), replaced from a temp name the collector never reads."""
    logged: list[str] = []
    os.umask(0o077)
    try:
        for _ in range(3):
            assert Metrics(tmp_path, "green", logged.append).update(metrics.count_attempt)
    finally:
        os.umask(0o022)
    prom = tmp_path / "metrics" / "green.prom"
    assert 'devtools_rollouts_total{project="green"} 3\n' in prom.read_text()
    assert json.loads((tmp_path / "green" / "metrics.json").read_text())["rollouts"] == 3
    assert stat.S_IMODE(prom.stat().st_mode) == 0o644
    assert stat.S_IMODE(prom.parent.stat().st_mode) == 0o755
    assert sorted(p.name for p in prom.parent.iterdir()) == ["green.prom"]
    assert logged == []


def test_the_temp_file_never_ends_in_prom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    renamed: list[tuple[str, str]] = []
    real = os.replace

    def replace(a: Path, b: Path) -> None:
        renamed.append((str(a), str(b)))
        real(a, b)
    monkeypatch.setattr(os, "replace", replace)
    Metrics(tmp_path, "green", print).update(metrics.count_attempt)
    temps = [Path(a).name for a, b in renamed if b.endswith(".prom")]
    assert len(temps) == 1 and not temps[0].endswith(".prom") and temps[0].startswith(".green.prom.")


def test_a_damaged_state_starts_again_from_zero_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "green").mkdir()
    (tmp_path / "green" / "metrics.json").write_text("{not json")
    logged: list[str] = []
    assert Metrics(tmp_path, "green", logged.append).update(metrics.count_attempt)
    assert 'devtools_rollouts_total{project="green"} 1\n' in (tmp_path / "metrics" / "green.prom").read_text()
    assert len(logged) == 1 and "counting from zero" in logged[0]


def test_a_disk_that_refuses_is_logged_never_raised(tmp_path: Path) -> None:
    (tmp_path / "metrics").write_text("a file where the directory should be")
    logged: list[str] = []
    assert not Metrics(tmp_path, "green", logged.append).update(partial(metrics.count_failure, stage="up"))
    assert len(logged) == 1 and logged[0].startswith("metrics: not recorded (")


def test_the_traces_section_of_a_report_is_read_defensively(tmp_path: Path) -> None:
    """The trace phase's section (absent when the phase is off, or from an older validator) counts per agent."""
    report = tmp_path / "report.json"
    assert read_traces(report) == {}
    report.write_text(json.dumps({"passed": True, "phases": {}}))
    assert read_traces(report) == {}
    report.write_text(json.dumps({"traces": {"agents": "all"}}))
    assert read_traces(report) == {}
    report.write_text(json.dumps({"passed": False, "phases": {}, "traces": {
        "agents": {"rag": True, "cicd": False, "ops": "yes"}, "coverage": 0.33, "min": 0.9,
        "host": "http://127.0.0.1:9392"}}))
    assert read_traces(report) == {"rag": True, "cicd": False, "ops": False}
