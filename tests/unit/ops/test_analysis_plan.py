"""ops.analysis_plan: the analysis after a promotion as data — its queries, its dry run, the judgement of one
sample and the folding of measurements into a verdict (pure; tests/unit/ops/test_analysis_live.py runs it
against a real Prometheus)."""

from __future__ import annotations

import json
import math

import pytest

from ops.analysis_plan import (
    AnalysisSpec,
    Measurement,
    Metric,
    default_metrics,
    fold,
    judge,
    progress_line,
    query_failed,
    rate_window,
    render_plan,
    render_query,
    render_result,
    since,
    spec_from_config,
)

RATIO, P95, RESTARTS = default_metrics(0.01, 0.5, 0)
BLUE = 'color="blue"'
T0 = 1_800_000_000.0


def spec(count: int = 3, limit: int = 1, metrics: tuple[Metric, ...] = (RATIO, RESTARTS)) -> AnalysisSpec:
    return AnalysisSpec(metrics, 10.0, count, limit)


def test_the_default_queries_render_exactly_for_a_color_and_for_a_hosts_own_prometheus() -> None:
    """Rule: the color's matchers join each selector, and without a selector the placeholder leaves no `,}` or
    `{}` behind. Risk: a query that measures the other color (or both), or one Prometheus refuses to parse."""
    assert render_query(RATIO, BLUE) == (
        'max((sum by (service) (rate(http_requests_total{code=~"5..",color="blue"}[1m])) or 0 * sum by (service) '
        '(rate(http_requests_total{color="blue"}[1m]))) / sum by (service) '
        '(rate(http_requests_total{color="blue"}[1m])))')
    assert render_query(P95, "{" + BLUE + "}") == (
        'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{service="gateway-mcp",'
        'color="blue"}[1m])))')
    assert render_query(RESTARTS, BLUE) == 'sum(changes(process_start_time_seconds{color="blue"}[{since}]))'
    assert render_query(RATIO, "") == (
        'max((sum by (service) (rate(http_requests_total{code=~"5.."}[1m])) or 0 * sum by (service) '
        '(rate(http_requests_total[1m]))) / sum by (service) (rate(http_requests_total[1m])))')
    assert render_query(RESTARTS, "") == "sum(changes(process_start_time_seconds[{since}]))"
    assert render_query(RESTARTS, 'color="blue",job="devtools"') == (
        'sum(changes(process_start_time_seconds{color="blue",job="devtools"}[{since}]))')


def test_a_selector_that_is_not_label_matchers_is_refused() -> None:
    """Rule: only matchers of the prometheusSelector key's form reach a query. Risk: `}` or `or` in a selector
    rewriting the query into one that always passes."""
    for bad in ('color="blue"} or vector(0', "color=blue", 'Color="x"'):
        with pytest.raises(ValueError, match="is not allowed: label matchers such as"):
            render_query(RESTARTS, bad)


def test_the_p95_metric_is_left_out_at_zero_and_the_window_follows_the_interval() -> None:
    """Rule: max p95 0 means not measured; the rate window is the interval, at least a minute. Risk: a latency
    metric that fails every release at max 0, or a window shorter than the interval that lets requests between
    two measurements go unseen."""
    assert [m.name for m in default_metrics(0.01, 0.0, 0)] == ["error-ratio", "restarts"]
    assert [m.name for m in default_metrics(0.01, 0.2, 3)] == ["error-ratio", "p95-latency", "restarts"]
    assert default_metrics(0.01, 0.2, 3)[2].max == 3.0
    assert [rate_window(s) for s in (1, 30, 60, 61, 90.5, 120, 600)] == ["1m", "1m", "1m", "61s", "91s", "2m", "10m"]
    assert default_metrics(0.01, 0, 0, "2m")[1].query == \
        "sum(changes(process_start_time_seconds{{selector}}[{since}]))"


def test_the_dry_run_of_the_defaults_is_exact() -> None:
    """Rule: the dry run states every metric's exact query and maximum, the rounds, interval, bake window and
    failure limit. Risk: an operator approving a bake that differs from the one that runs."""
    assert render_plan(spec_from_config({}), BLUE) == "\n".join([
        'analysis of the live color, selector color="blue": 10 rounds, one every 30s (the first 30s after the '
        "start), bake window 300s",
        "fails as soon as one metric fails more than 1 of its measurements; a query Prometheus does not answer is a "
        "failed measurement, no data an inconclusive one",
        "  error-ratio <= 0.01",
        '    max((sum by (service) (rate(http_requests_total{code=~"5..",color="blue"}[1m])) or 0 * sum by '
        '(service) (rate(http_requests_total{color="blue"}[1m]))) / sum by (service) (rate(http_requests_total{color='
        '"blue"}[1m])))',
        "  restarts <= 0 restarts",
        '    sum(changes(process_start_time_seconds{color="blue"}[{since}]))',
        "  {since}: the time since the promotion, at least 30s",
    ])
    custom = spec_from_config({"analysisInterval": "90", "analysisCount": "4", "analysisFailureLimit": "0",
                               "analysisMaxP95Seconds": "0.75", "analysisMaxRestarts": "2", "other": "x"})
    assert render_plan(custom, "").splitlines()[0] == (
        "analysis of the live color, no selector (a Prometheus of that color alone): 4 rounds, one every 90s (the "
        "first 90s after the start), bake window 360s")
    assert render_plan(custom, "").splitlines()[1].startswith("fails as soon as one metric fails more than 0 of")
    assert render_plan(custom, "").splitlines()[4:] == [
        "  p95-latency <= 0.75s",
        '    histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{service="gateway-mcp"}'
        "[90s])))",
        "  restarts <= 2 restarts",
        "    sum(changes(process_start_time_seconds[{since}]))",
        "  {since}: the time since the promotion, at least 90s",
    ]


def test_a_bad_config_value_names_the_key_what_it_may_be_and_the_fix() -> None:
    """Rule: the key table's own checks, every problem at once, each with its fix. Risk: a bake of 0 rounds or
    a 5% ratio read as 5.0 passing every release."""
    with pytest.raises(ValueError) as err:
        spec_from_config({"analysisCount": "0", "analysisMaxErrorRatio": "5%", "analysisInterval": None})
    assert str(err.value).splitlines() == [
        "devtools:analysisCount: 0 is not allowed: an integer 1-360; set it with `pulumi config set "
        "devtools:analysisCount <value>`, or `pulumi config rm devtools:analysisCount` for the default 10",
        'devtools:analysisMaxErrorRatio: "5%" is not allowed: a number 0-1; set it with `pulumi config set '
        "devtools:analysisMaxErrorRatio <value>`, or `pulumi config rm devtools:analysisMaxErrorRatio` for the "
        "default 0.01",
    ]
    assert spec_from_config({"analysisInterval": None}).interval_s == 30.0  # None: not set, the default


def test_a_spec_refuses_what_cannot_run() -> None:
    """Risk: an analysis without metrics, rounds or a positive interval that passes having measured nothing."""
    for metrics, interval, count, limit in (((), 1.0, 1, 0), ((RATIO, RATIO), 1.0, 1, 0), ((RATIO,), 0.0, 1, 0),
                                            ((RATIO,), 1.0, 0, 0), ((RATIO,), 1.0, 1, -1)):
        with pytest.raises(ValueError, match="an analysis needs"):
            AnalysisSpec(metrics, interval, count, limit)
    assert spec(count=10).window_s == 100.0


def test_judge_passes_at_the_max_fails_above_and_calls_no_data_inconclusive() -> None:
    """Rule: value <= max passes; no series and NaN (0/0: no requests) are inconclusive, never failures; +Inf
    fails. Risk: a color without traffic failing its release, or one failing on every request passing."""
    assert judge(RATIO, 0.01, at=T0) == Measurement("error-ratio", T0, 0.01, 0.01, "passed")
    assert judge(RATIO, 0.0100001, at=T0).phase == "failed"
    assert judge(RATIO, None, at=T0) == Measurement("error-ratio", T0, None, 0.01, "inconclusive")
    nan = judge(RATIO, math.nan, at=T0)
    assert nan.phase == "inconclusive" and nan.value is not None and math.isnan(nan.value)
    assert judge(P95, math.inf, at=T0).phase == "failed"
    assert query_failed(RATIO, "connection refused", at=T0) == Measurement(
        "error-ratio", T0, None, 0.01, "failed", "connection refused")


def test_measurements_serialize_as_strict_json() -> None:
    """Risk: NaN or Infinity in a report that a strict JSON reader (jq, a dashboard) refuses."""
    rows = [judge(RATIO, math.nan, at=T0).to_json(), judge(P95, math.inf, at=T0).to_json(),
            judge(RATIO, 0.5, at=T0).to_json()]
    assert json.loads(json.dumps(rows, allow_nan=False)) == [
        {"metric": "error-ratio", "at": T0, "value": "NaN", "max": 0.01, "phase": "inconclusive", "error": ""},
        {"metric": "p95-latency", "at": T0, "value": "+Inf", "max": 0.5, "phase": "failed", "error": ""},
        {"metric": "error-ratio", "at": T0, "value": 0.5, "max": 0.01, "phase": "failed", "error": ""},
    ]


def rounds(*values: tuple[float | None, float | None]) -> list[Measurement]:
    """One (error-ratio, restarts) pair per round, ten seconds apart."""
    out: list[Measurement] = []
    for i, (ratio, restarts) in enumerate(values, start=1):
        out += [judge(RATIO, ratio, at=T0 + 10 * i), judge(RESTARTS, restarts, at=T0 + 10 * i + 0.5)]
    return out


def test_the_second_failure_of_one_metric_fails_the_analysis_where_it_happens() -> None:
    """Rule (Argo's failureLimit): failures of one metric beyond the limit fail the analysis at that
    measurement; what came after it is not part of the result. Risk: a bad release baking to the end, or
    first_failure_at/ended_at pointing at the wrong measurement when traffic is flipped back."""
    taken = rounds((0.0, 0), (0.3, 0), (0.0, 0), (0.4, 0), (0.0, 0))
    assert fold(spec(count=5), taken[:6]) is None  # one failure so far: within the limit
    result = fold(spec(count=5), taken)
    assert result is not None and result.phase == "failed"
    assert result.measurements == taken[:7]
    assert (result.failed_metric, result.first_failure_at, result.ended_at) == ("error-ratio", T0 + 20, T0 + 40)
    assert result.reason == ("error-ratio failed 2 of 4 measurements, more than the 1 allowed; the last: 0.4 > max "
                             "0.01")
    assert render_result(result) == f"analysis FAILED: {result.reason}"
    assert result.to_json()["measurements"][-1] == taken[6].to_json()


def test_failures_count_per_metric_and_a_limit_of_zero_fails_on_the_first() -> None:
    """Rule: the limit holds for each metric on its own, as in Argo. Risk: two metrics failing once each
    failing a release the limit allows, or a limit of 0 tolerating a failure."""
    one_each = rounds((0.5, 0), (0.0, 3), (0.0, 0))
    passed = fold(spec(), one_each)
    assert passed is not None and passed.phase == "passed"
    assert passed.reason == ("3 rounds within the limits (error-ratio failed 1 (allowed 1); restarts failed 1 "
                             "(allowed 1))")
    strict = fold(spec(limit=0), one_each[:1])
    assert strict is not None and strict.phase == "failed" and strict.first_failure_at == strict.ended_at == T0 + 10


def test_a_query_error_is_a_failure_and_no_data_is_not() -> None:
    """Rule: an unanswered query fails a measurement (an unreachable Prometheus must not pass a release); no data
    does not. Risk: a release promoted because nobody could look at it."""
    down = [query_failed(RATIO, "query x: no answer from Prometheus: ConnectError: refused", at=T0 + 10 * i)
            for i in (1, 2)]
    result = fold(spec(count=5, metrics=(RATIO,)), down)
    assert result is not None and result.phase == "failed"
    assert result.reason.endswith("the last: query failed: query x: no answer from Prometheus: ConnectError: refused")


def test_all_inconclusive_ends_inconclusive_and_partly_inconclusive_passes_saying_so() -> None:
    """Rule: only an analysis that never measured anything is inconclusive (the release flow passes it with a
    warning); one metric without data while another passed is a pass that names it. Risk: a silent pass of a
    color that served nothing, or a fail of a healthy color whose latency histogram is not exported yet."""
    nothing = fold(spec(count=2), rounds((None, None), (math.nan, None)))
    assert nothing is not None and nothing.phase == "inconclusive" and nothing.ended_at == T0 + 20.5
    assert nothing.reason == ("every measurement of error-ratio, restarts was inconclusive (no series or no requests "
                              "in 2 rounds): nothing was seen working or failing")
    assert render_result(nothing).endswith("(the release flow counts it as passed, with this warning)")
    partly = fold(spec(count=2), rounds((None, 0), (None, 0)))
    assert partly is not None and (partly.phase, partly.failed_metric, partly.first_failure_at) == (
        "passed", None, None)
    assert partly.reason == "2 rounds within the limits (error-ratio inconclusive throughout)"
    assert fold(spec(count=2), rounds((0.0, 0), (0.001, 0))).reason == "2 rounds within the limits"  # type: ignore[union-attr]


def test_fold_refuses_measurements_the_spec_does_not_have() -> None:
    """Risk: a verdict counted over a metric nobody configured, or over more rounds than the bake has."""
    with pytest.raises(ValueError, match="'p95-latency', which the analysis does not have"):
        fold(spec(), [judge(P95, 0.1, at=T0)])
    with pytest.raises(ValueError, match="more than 1 measurements of error-ratio"):
        fold(spec(count=1, metrics=(RATIO,)), [judge(RATIO, 0.0, at=T0), judge(RATIO, 0.0, at=T0)])
    assert fold(spec(), []) is None


def test_each_measurement_prints_one_exact_line() -> None:
    """Rule: round, value against max, the failure budget and the bake window left, as it is taken. Risk: an
    operator who cannot tell how close a release is to being failed, or why."""
    s = spec(count=10)
    taken = [*rounds((0.0, 0), (None, 0), (0.412, 0), (math.nan, 2)),
             query_failed(RESTARTS, "query sum(x): no answer from Prometheus: ConnectError: refused", at=T0 + 50)]
    lines = [progress_line(s, taken[:i], round_no=(i + 1) // 2, started_at=T0) for i in range(1, len(taken) + 1)]
    assert lines == [
        "  [1/10] error-ratio 0 <= max 0.01 ok · 90s of 100s left in the bake window",
        "  [1/10] restarts 0 restarts <= max 0 restarts ok · 90s of 100s left in the bake window",
        "  [2/10] error-ratio no data (no series: no traffic yet?) inconclusive · 80s of 100s left in the bake window",
        "  [2/10] restarts 0 restarts <= max 0 restarts ok · 80s of 100s left in the bake window",
        "  [3/10] error-ratio 0.412 > max 0.01 FAILED (1 of 1 allowed failures used) · 70s of 100s left in the bake "
        "window",
        "  [3/10] restarts 0 restarts <= max 0 restarts ok · 70s of 100s left in the bake window",
        "  [4/10] error-ratio NaN (nothing to measure in the window) inconclusive · 60s of 100s left in the bake "
        "window",
        "  [4/10] restarts 2 restarts > max 0 restarts FAILED (1 of 1 allowed failures used) · 60s of 100s left in "
        "the bake window",
        "  [5/10] restarts query failed: query sum(x): no answer from Prometheus: ConnectError: refused FAILED (2 "
        "failures, 1 allowed: the analysis fails) · 50s of 100s left in the bake window",
    ]


def test_restarts_count_only_what_happened_since_the_promotion():
    """The release recreates the color's containers (a new start time each) before traffic reaches it: a window
    reaching back before the promotion counted those as restarts and failed every good release."""
    assert since(0.4, 5) == "5s" and since(12.2, 5) == "13s" and since(300, 30) == "300s"

