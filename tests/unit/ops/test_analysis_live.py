"""ops.analysis against a real Prometheus (Debian's, on a free loopback port) scraping loopback exporters every
second (tests/unit/ops/prometheus_peer.py): the default queries, the schedule, the stop at the failure limit, no
data, a query returning two series, and Prometheus going away mid-analysis."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ops.analysis import AnalysisError, query_scalar, run_analysis
from ops.analysis_plan import AnalysisSpec, Metric, default_metrics, rate_window

from .prometheus_peer import Exporter, Prometheus, has_rates, prometheus

pytestmark = pytest.mark.live  # a Prometheus process and loopback HTTP servers (tests/unit/conftest.py)

METRICS = default_metrics(0.01, 0.5, 0, rate_window(1))  # error-ratio, p95-latency, restarts over 1m
T0 = 1_800_000_000.0


@dataclass
class Stand:
    prom: Prometheus
    good: Exporter
    flaky: Exporter


@pytest.fixture(scope="module")
def stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stand]:
    """good: 200s only (no code="500" series at all); flaky: 200s until a test makes 500s appear; idle: no
    requests at all."""
    with Exporter() as good, Exporter() as flaky, Exporter(ok=0) as idle, \
            prometheus(tmp_path_factory.mktemp("prometheus"),
                       {"good": good.port, "flaky": flaky.port, "idle": idle.port}) as prom:
        for case in ("good", "flaky", "idle"):
            has_rates(prom, case)
        yield Stand(prom, good, flaky)


class VirtualTime:
    """A clock that only moves when the analysis sleeps: a 300 s bake runs at once against the real Prometheus."""

    def __init__(self) -> None:
        self.now = T0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def sleep_with(before_round: dict[int, Callable[[], None]]) -> Callable[[float], None]:
    """A real sleep that first runs the action given for its round (the Nth sleep precedes round N); an action's
    own time counts against the wait."""
    calls = [0]

    def sleep(seconds: float) -> None:
        calls[0] += 1
        started = time.monotonic()
        before_round.get(calls[0], lambda: None)()
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))

    return sleep


def test_a_good_color_passes_every_round_with_the_default_queries(stand: Stand) -> None:
    """Rule: the default queries (ratio, p95, restarts) give one number each for a healthy color, and it passes
    after `count` rounds, each printed as taken; no 5xx series at all is an error ratio of 0. Risk: queries that
    return nothing on a real Prometheus (the ratio of a gateway that never answered 5xx), so that every release
    bakes into `inconclusive`."""
    out = io.StringIO()
    before = time.time()
    result = run_analysis(AnalysisSpec(METRICS, 1.0, 3, 1), base_url=stand.prom.url, selector='case="good"', out=out,
                          deadline_note="the release's deadline is in 20 minutes")
    assert result.phase == "passed", out.getvalue()
    assert [(m.metric, m.phase) for m in result.measurements] == [
        (name, "passed") for _ in range(3) for name in ("error-ratio", "p95-latency", "restarts")]
    values = {m.metric: m.value for m in result.measurements}
    assert values["error-ratio"] == 0.0 and values["restarts"] == 0.0
    assert values["p95-latency"] == pytest.approx(0.4, abs=0.01)  # 80% <= 0.1 s, all <= 0.5 s
    assert 3.0 <= result.ended_at - before < 6.0  # the first round one interval after the start
    lines = out.getvalue().splitlines()
    assert lines[0] == ('analysis of case="good" at ' + stand.prom.url + ": error-ratio, p95-latency, restarts, 3 "
                        "rounds every 1s, at most 1 failed measurement(s) per metric; the release's deadline is in "
                        "20 minutes")
    assert re.fullmatch(r"  \[1/3\] p95-latency 0\.4\d*s <= max 0\.5s ok · [12]s of 3s left in the bake window",
                        lines[2]), lines[2]
    assert lines[-1] == "analysis passed: 3 rounds within the limits"
    assert len(lines) == 11


def test_5xx_appearing_mid_way_fail_at_the_second_failed_measurement(stand: Stand) -> None:
    """Rule (failure limit 1): the first failed measurement is tolerated, the second ends the analysis at once;
    first_failure_at and ended_at are the times of those two. Risk: a broken release baking on to the end of
    the window, or a flip-back that reports the wrong moment things went bad."""
    def errors_start() -> None:
        seen = stand.flaky.scraped()
        stand.flaky.bad = 10  # from now on a third of the gateway's answers are 5xx
        until = time.monotonic() + 10
        # rate() needs two samples of the new code="500" series; a third scrape means the second is stored
        while stand.flaky.scraped() < seen + 3 and time.monotonic() < until:
            time.sleep(0.05)

    out = io.StringIO()
    before = time.time()
    spec = AnalysisSpec(METRICS, 2.0, 6, 1)
    result = run_analysis(spec, base_url=stand.prom.url, selector='case="flaky"', out=out,
                          sleep=sleep_with({3: errors_start}))
    assert result.phase == "failed", out.getvalue()
    taken = [(m.metric, m.phase) for m in result.measurements]
    assert taken == [("error-ratio", "passed"), ("p95-latency", "passed"), ("restarts", "passed")] * 2 + [
        ("error-ratio", "failed"), ("p95-latency", "passed"), ("restarts", "passed"), ("error-ratio", "failed")]
    third, fourth = result.measurements[6], result.measurements[9]
    assert (result.failed_metric, result.first_failure_at, result.ended_at) == ("error-ratio", third.at, fourth.at)
    assert 8.0 <= result.ended_at - before < 12.0  # round 4 of 6: it did not bake on
    assert third.value is not None and 0.01 < third.value < fourth.value <= 0.5  # type: ignore[operator]
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"  \[3/6\] error-ratio 0\.\d+ > max 0\.01 FAILED \(1 of 1 allowed failures used\) · \d+s of "
                        r"12s left in the bake window", lines[7]), lines[7]
    assert re.fullmatch(r"  \[4/6\] error-ratio 0\.\d+ > max 0\.01 FAILED \(2 failures, 1 allowed: the analysis "
                        r"fails\) · \d+s of 12s left in the bake window", lines[10]), lines[10]
    assert lines[-1].startswith("analysis FAILED: error-ratio failed 2 of 4 measurements, more than the 1 allowed")


def test_no_series_is_inconclusive_and_the_schedule_follows_the_injected_clock(stand: Stand) -> None:
    """Rule: a selector without series (no traffic yet) measures nothing, which is inconclusive, not failed;
    the rounds come one interval apart, the first after one interval. Risk: a color that served nothing
    passing silently, or failing a release for want of traffic."""
    vt, out = VirtualTime(), io.StringIO()
    result = run_analysis(AnalysisSpec(METRICS, 30.0, 10, 1), base_url=stand.prom.url, selector='case="absent"',
                          clock=vt.clock, sleep=vt.sleep, out=out)
    assert result.phase == "inconclusive" and result.failed_metric is None
    assert vt.slept == [30.0] * 10 and result.ended_at == T0 + 300
    assert {(m.value, m.phase) for m in result.measurements} == {(None, "inconclusive")}
    assert len(result.measurements) == 30
    lines = out.getvalue().splitlines()
    assert lines[1] == ("  [1/10] error-ratio no data (no series: no traffic yet?) inconclusive · 270s of 300s left "
                        "in the bake window")
    assert lines[-2] == ("  [10/10] restarts no data (no series: no traffic yet?) inconclusive · 0s of 300s left in "
                         "the bake window")
    assert lines[-1] == ("analysis inconclusive: every measurement of error-ratio, p95-latency, restarts was "
                         "inconclusive (no series or no requests in 10 rounds): nothing was seen working or failing "
                         "(the release flow counts it as passed, with this warning)")


def test_a_color_without_requests_measures_restarts_and_calls_the_ratio_nan(stand: Stand) -> None:
    """Rule: series without requests give NaN (0/0) for the ratio and the p95, which is inconclusive, while
    restarts are measured; the analysis passes naming what it could not measure. Risk: an idle color failing
    on 0/0, or its pass hiding that the error ratio was never seen."""
    vt = VirtualTime()
    result = run_analysis(AnalysisSpec(METRICS, 5.0, 2, 0), base_url=stand.prom.url, selector='case="idle"',
                          clock=vt.clock, sleep=vt.sleep, out=io.StringIO())
    assert result.phase == "passed"
    ratio = [m for m in result.measurements if m.metric == "error-ratio"]
    assert all(m.phase == "inconclusive" and m.value != m.value for m in ratio)  # NaN
    assert [m.value for m in result.measurements if m.metric == "restarts"] == [0.0, 0.0]
    assert result.reason == "2 rounds within the limits (error-ratio, p95-latency inconclusive throughout)"


def test_a_query_of_two_series_or_bad_promql_is_a_clear_error_and_a_failed_measurement(stand: Stand) -> None:
    """Rule: an analysis metric is one number; several series or a PromQL error raise AnalysisError naming the
    query and Prometheus' own words, and count as a failed measurement. A scalar is one number. Risk: summing
    or picking one of several series silently, so a metric measures something else than it says."""
    per_case = 'sum by (case) (http_requests_total{code="200"})'
    with httpx.Client() as client:
        with pytest.raises(AnalysisError) as err:
            query_scalar(client, stand.prom.url, per_case, 5)
        assert str(err.value) == (f'query {per_case}: returned 3 series ({{case="flaky"}}, {{case="good"}}, '
                                  '{case="idle"}), not one: an analysis metric is one number; aggregate it (sum, max, '
                                  "…) or narrow the selector")
        buckets = 'http_request_duration_seconds_bucket{case="good"}'
        with pytest.raises(AnalysisError, match=r'returned 4 series \(\{__name__="http_request_duration_seconds_'
                                                r'bucket",.*, …\), not one'):
            query_scalar(client, stand.prom.url, f"{buckets} or vector(1)", 5)
        with pytest.raises(AnalysisError, match=r"^query sum\(rate\(x\[1m\]\): Prometheus answered HTTP 400: "
                                                r"bad_data: .*parse error"):
            query_scalar(client, stand.prom.url, "sum(rate(x[1m])", 5)
        assert query_scalar(client, stand.prom.url, "scalar(vector(2)) * 3", 5) == 6.0
    metric = Metric("per-case", "sum by (case) (http_requests_total{code=\"200\",{selector}})", 1e9, "")
    vt = VirtualTime()
    result = run_analysis(AnalysisSpec((metric,), 1.0, 5, 0), base_url=stand.prom.url, selector="",
                          clock=vt.clock, sleep=vt.sleep, out=io.StringIO())
    assert (result.phase, result.failed_metric, len(result.measurements)) == ("failed", "per-case", 1)
    assert result.measurements[0].error == str(err.value)


def test_prometheus_going_away_fails_the_analysis_with_its_error(stand: Stand, tmp_path: Path) -> None:
    """Rule: a query Prometheus does not answer is a failed measurement carrying the connection's error. Risk:
    an unreachable Prometheus (a dropped SSH tunnel, a stopped server) passing the release it could not see."""
    with prometheus(tmp_path, {"good": stand.good.port}) as own:
        has_rates(own, "good")
        out = io.StringIO()
        result = run_analysis(AnalysisSpec(METRICS, 1.0, 5, 1), base_url=own.url, selector='case="good"', out=out,
                              sleep=sleep_with({2: own.stop}))
    assert result.phase == "failed", out.getvalue()
    assert [m.phase for m in result.measurements] == ["passed"] * 3 + ["failed"] * 4
    assert result.failed_metric == "error-ratio" and result.first_failure_at == result.measurements[3].at
    error = result.measurements[-1].error
    assert error.startswith("query max((sum by (service) (rate(http_requests_total{") and \
        "no answer from Prometheus: ConnectError: [Errno 111] Connection refused" in error, error
    assert out.getvalue().splitlines()[-1] == ("analysis FAILED: error-ratio failed 2 of 3 measurements, more than "
                                               f"the 1 allowed; the last: query failed: {error}")
