"""ops.slo_plan: the report's queries, the error-budget arithmetic, the verdicts, and the exact table, Markdown and
JSON of a fixed set of measured values."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from components.slo import SloSpec, objectives
from ops import slo_plan as sp

OBJECTIVES = objectives(SloSpec())
BY_NAME = {o.name: o for o in OBJECTIVES}
AT = "2026-01-05T06:00:00Z"

MEASURED: sp.Measured = {
    ("error-ratio", "bad"): {"gateway-mcp": 5.0, "api": 30.0},
    ("error-ratio", "total"): {"gateway-mcp": 10000.0, "api": 1000.0, "idle": 0.0},
    ("rollout-success", "bad"): {"green": 1.0},
    ("rollout-success", "total"): {"green": 8.0, "blue": 4.0},
    ("pull-latency", "bad"): {"green": 1.0},
    ("pull-latency", "total"): {"green": 40.0},
    ("pull-latency", "p95"): {"green": 27.5},
    # trace-coverage: no series at all
}

TABLE = """\
stability report over 7d at http://127.0.0.1:9390 (2026-01-05T06:00:00Z)
objective        series               good     target  budget left  verdict  events
error-ratio      service=api          97 %     99 %    exhausted    missed   30 bad of 1000
error-ratio      service=gateway-mcp  99.95 %  99 %    95 %         met      5 bad of 10000
error-ratio      service=idle         -        99 %    -            no data  nothing happened in the window
rollout-success  project=blue         100 %    100 %   100 %        met      0 bad of 4
rollout-success  project=green        87.5 %   100 %   exhausted    missed   1 bad of 8
pull-latency     project=green        97.5 %   95 %    50 %         met      1 bad of 40, p95 27.5s
trace-coverage   agent=(no series)    -        90 %    -            no data  no series in the window
stability targets over 7d: MISSED error-ratio, rollout-success; met pull-latency; no data for trace-coverage \
(neither met nor missed)"""

MARKDOWN = """\
### Stability targets over 7d

stability targets over 7d: MISSED error-ratio, rollout-success; met pull-latency; no data for trace-coverage \
(neither met nor missed) (2026-01-05T06:00:00Z)

| objective | series | good | target | budget left | verdict | events |
|---|---|---|---|---|---|---|
| error-ratio | service=api | 97 % | 99 % | exhausted | missed | 30 bad of 1000 |
| error-ratio | service=gateway-mcp | 99.95 % | 99 % | 95 % | met | 5 bad of 10000 |
| error-ratio | service=idle | - | 99 % | - | no data | nothing happened in the window |
| rollout-success | project=blue | 100 % | 100 % | 100 % | met | 0 bad of 4 |
| rollout-success | project=green | 87.5 % | 100 % | exhausted | missed | 1 bad of 8 |
| pull-latency | project=green | 97.5 % | 95 % | 50 % | met | 1 bad of 40, p95 27.5s |
| trace-coverage | agent=(no series) | - | 90 % | - | no data | no series in the window |
"""


def report(measured: sp.Measured = MEASURED) -> sp.Report:
    return sp.evaluate(OBJECTIVES, measured, window="7d", source="http://127.0.0.1:9390", at=AT)


def test_the_table_of_fixed_measurements_is_exact():
    assert sp.render_table(report()) == TABLE


def test_the_markdown_of_fixed_measurements_is_exact():
    assert sp.render_markdown(report()) == MARKDOWN


def test_a_missed_target_exits_1_and_no_data_alone_exits_0():
    assert report().verdict == "missed" and report().exit_code == 1
    nothing = report({})
    assert nothing.verdict == "no data" and nothing.exit_code == 0
    assert [r.verdict for r in nothing.objectives] == ["no data"] * 4
    met_and_empty = report({("error-ratio", "bad"): {}, ("error-ratio", "total"): {"api": 100.0}})
    assert met_and_empty.verdict == "met" and met_and_empty.exit_code == 0
    assert sp.summary_line(met_and_empty) == ("stability targets over 7d: met error-ratio; no data for "
                                              "rollout-success, pull-latency, trace-coverage (neither met nor missed)")


def test_budget_arithmetic():
    errors = BY_NAME["error-ratio"]  # target 0.99: budget 1 %
    s = sp.judge_series(errors, "api", 5.0, 1000.0)
    assert (s.verdict, s.good_ratio) == ("met", 0.995) and s.budget_remaining == pytest.approx(0.5)
    at_edge = sp.judge_series(errors, "api", 10.0, 1000.0)  # exactly the budget: met, nothing left
    assert at_edge.verdict == "met" and at_edge.budget_remaining == pytest.approx(0.0)
    assert sp.budget_text(at_edge) == "exhausted"
    over = sp.judge_series(errors, "api", 20.0, 1000.0)
    assert over.verdict == "missed" and over.budget_remaining == pytest.approx(-1.0)
    assert sp.judge_series(errors, "api", None, 1000.0).budget_remaining == 1.0  # no 5xx series: no bad event


def test_a_target_of_100_percent_has_no_budget():
    rollouts = BY_NAME["rollout-success"]
    clean = sp.judge_series(rollouts, "green", 0.0, 12.0)
    assert (clean.verdict, clean.budget_remaining, sp.budget_text(clean)) == ("met", 1.0, "100 %")
    one = sp.judge_series(rollouts, "green", 1.0, 1000.0)
    assert (one.verdict, one.budget_remaining, sp.budget_text(one)) == ("missed", 0.0, "exhausted")


@pytest.mark.parametrize("total", [None, 0.0, math.nan])
def test_nothing_in_the_window_is_no_data_not_a_pass_or_a_failure(total):
    s = sp.judge_series(BY_NAME["trace-coverage"], "support", 3.0, total)
    assert s.verdict == "no data" and s.good_ratio is None and s.budget_remaining is None


def test_the_queries_are_the_objectives_own_and_the_measured_p95():
    asked = sp.queries(OBJECTIVES, "7d")
    assert [(q.objective, q.kind) for q in asked] == [
        ("error-ratio", "bad"), ("error-ratio", "total"), ("rollout-success", "bad"), ("rollout-success", "total"),
        ("pull-latency", "bad"), ("pull-latency", "total"), ("pull-latency", "p95"), ("trace-coverage", "bad"),
        ("trace-coverage", "total")]
    for q in asked:
        if q.kind != "p95":  # the objective's own, counted with increase() (the rules' error ratio takes rate())
            o = replace(BY_NAME[q.objective], fn="increase")
            assert q.promql == (o.bad("7d") if q.kind == "bad" else o.total("7d"))
    assert asked[:2] == [
        sp.Query("error-ratio", "bad", 'sum by (service) (increase(http_requests_total{code=~"5.."}[7d]))'),
        sp.Query("error-ratio", "total", "sum by (service) (increase(http_requests_total[7d]))")]
    assert asked[6].promql == ("histogram_quantile(0.95, sum by (le, project) "
                               "(increase(devtools_image_pull_duration_seconds_bucket[7d])))")


def test_the_json_document():
    doc = sp.to_json(report(), sp.queries(OBJECTIVES, "7d"))
    assert (doc["window"], doc["verdict"], doc["at"]) == ("7d", "missed", AT)
    pulls = doc["objectives"][2]
    assert {k: pulls[k] for k in ("name", "by", "target", "error_budget", "verdict")} == {
        "name": "pull-latency", "by": "project", "target": 0.95, "error_budget": 0.05, "verdict": "met"}
    assert sorted(pulls["queries"]) == ["bad", "p95", "total"]
    assert pulls["series"] == [{"key": "green", "bad": 1.0, "total": 40.0, "p95_seconds": 27.5, "good_ratio": 0.975,
                                "budget_remaining": 0.5, "verdict": "met"}]
    assert doc["objectives"][3]["series"] == [] and doc["objectives"][3]["verdict"] == "no data"


@pytest.mark.parametrize(("text", "seconds"), [("7d", 604800), ("1h30m", 5400), ("90s", 90), ("2w", 1209600)])
def test_durations(text, seconds):
    assert sp.duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["7 days", "", "d7", "0d", "7D"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError, match="window"):
        sp.duration_seconds(text)


def test_the_timelines_take_about_200_points():
    assert (sp.range_step(604800), sp.range_window(3024)) == (3024, "3024s")
    assert (sp.range_step(3600), sp.range_window(18)) == (18, "120s")


def test_targets_from_the_stack_values():
    assert sp.spec_from_values({}) == SloSpec()
    assert sp.spec_from_values({"sloErrorRatio": "0.05", "sloRolloutSuccess": None, "sloPullP95Seconds": "30",
                                "sloTraceCoverage": "0.8", "sloWindow": "30d"}) == \
        SloSpec(error_ratio_max=0.05, pull_p95_seconds=30.0, trace_coverage_min=0.8, window="30d")
    with pytest.raises(ValueError) as err:
        sp.spec_from_values({"sloTraceCoverage": "90", "sloWindow": "a week", "sloPullP95Seconds": "45"})
    assert str(err.value).splitlines() == [
        "devtools:sloPullP95Seconds: 45.0 is not allowed: one of the pull histogram's bucket bounds: 0.5, 1, 2.5, "
        "5, 10, 20, 30, 60, 120, 300",
        "devtools:sloTraceCoverage: 90.0 is not allowed: a number 0-1",
        'devtools:sloWindow: "a week" is not allowed: a Prometheus duration longer than 0 such as 7d, 30d or 1w']
