"""The analysis after a promotion, as data (after Argo Rollouts' AnalysisTemplate): Prometheus queries evaluated
against the live color during a bake window, each with a maximum, `count` rounds `interval_s` apart and a failure
limit per metric. Pure: ops.analysis takes the measurements over HTTP and folds them here, so every query, every
printed line and every verdict has an exact test.

* A measurement passes when its value is at most the metric's `max`. No series (no traffic yet) or NaN (0/0: no
  request in the window) is `inconclusive`: recorded, never a failure. A query Prometheus does not answer, answers
  with an error or with more than one series is a `failed` measurement with the error text: an unreachable
  Prometheus must never pass a release.
* The analysis fails as soon as the failed measurements of one metric exceed `failure_limit` (Argo's
  failureLimit). After `count` rounds it has passed, unless every measurement of every metric was inconclusive:
  then it ends `inconclusive`, which the release flow treats as passed with a warning (nothing was seen failing,
  and nothing was seen working either).
* The first round is taken one interval after the start (Argo starts at once unless given an initialDelay): the
  rate windows then hold what the color served since its promotion.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from components.config_keys import BY_NAME, NAMESPACE, number_text
from components.config_read import Reader
from components.slo import SloSpec, objectives

Phase = Literal["passed", "failed", "inconclusive"]

SELECTOR = "{selector}"
SINCE = "{since}"
"""In a query: the time since the analysis started (the promotion), as a PromQL duration of whole seconds, at
least one interval. What happened to the color before it took traffic (the release recreating its containers)
is not in that window."""
"""The placeholder in a metric's query for the label matchers of the color under analysis."""
GATEWAY = "gateway-mcp"
MIN_WINDOW_S = 60
CONFIG_KEYS = ("analysisInterval", "analysisCount", "analysisFailureLimit", "analysisMaxErrorRatio",
               "analysisMaxP95Seconds", "analysisMaxRestarts")
"""The stack config keys spec_from_config reads (`pulumi config get devtools:<key>` of each)."""


@dataclass(frozen=True)
class Metric:
    name: str
    query: str  # PromQL; the literal {selector} is replaced by the color's label matchers (render_query)
    max: float  # a measurement passes when its value <= max
    unit: str


@dataclass(frozen=True)
class AnalysisSpec:
    metrics: tuple[Metric, ...]
    interval_s: float
    count: int
    failure_limit: int

    def __post_init__(self) -> None:
        names = [m.name for m in self.metrics]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"an analysis needs one metric or more, each name once (got {names})")
        if not self.interval_s > 0 or self.count < 1 or self.failure_limit < 0:
            raise ValueError(f"an analysis needs interval_s > 0, count >= 1 and failure_limit >= 0 (got "
                             f"{self.interval_s}, {self.count}, {self.failure_limit})")

    @property
    def window_s(self) -> float:
        """The bake window: interval_s * count."""
        return self.interval_s * self.count


@dataclass(frozen=True)
class Measurement:
    metric: str
    at: float  # unix seconds
    value: float | None  # None: the query returned no series
    max: float
    phase: Phase
    error: str = ""  # why the query failed (then phase is failed and value None)

    def to_json(self) -> dict[str, Any]:
        """Strict JSON: a value Prometheus writes as NaN or ±Inf is written as its text."""
        value: Any = self.value
        if value is not None and not math.isfinite(value):
            value = "NaN" if math.isnan(value) else "+Inf" if value > 0 else "-Inf"
        return {"metric": self.metric, "at": self.at, "value": value, "max": self.max, "phase": self.phase,
                "error": self.error}


@dataclass
class AnalysisResult:
    phase: Phase
    measurements: list[Measurement]
    failed_metric: str | None
    reason: str
    first_failure_at: float | None  # the first failed measurement of the metric that failed the analysis
    ended_at: float  # the measurement that decided it

    def to_json(self) -> dict[str, Any]:
        return {"phase": self.phase, "failed_metric": self.failed_metric, "reason": self.reason,
                "first_failure_at": self.first_failure_at, "ended_at": self.ended_at,
                "measurements": [m.to_json() for m in self.measurements]}


def rate_window(interval_s: float) -> str:
    """The range of rate() and changes(): the interval (no request falls between two measurements), at least a
    minute (rate() needs several scrapes: the edge's Prometheus scrapes every 5 s, others every 15-30 s). Not
    longer: a wider window would dilute a fresh regression in older good traffic and count one restart in
    several measurements."""
    seconds = max(MIN_WINDOW_S, math.ceil(interval_s))
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def _matchers(metric: str, *matchers: str) -> str:
    return metric + "{" + ",".join((*matchers, SELECTOR)) + "}"


def error_ratio_query(window: str) -> str:
    """The worst service's 5xx share over `window`: the error-ratio objective's own query (components.slo, the
    definition the SLO alerts and `ops.cli slo` use), reduced to one number with max()."""
    objective = next(o for o in objectives(SloSpec()) if o.name == "error-ratio")
    return f"max({objective.error_ratio(window, SELECTOR)})"


def default_metrics(max_error_ratio: float, max_p95_s: float, max_restarts: int,
                    window: str = "1m") -> tuple[Metric, ...]:
    """error-ratio (the worst service's 5xx share, error_ratio_query), p95-latency of the gateway (left out when
    max_p95_s is 0) and restarts (of every service of the color), each over `window` (rate_window). A service
    that answered without a 5xx has ratio 0; no request series at all is no data."""
    gateway = f'service="{GATEWAY}"'
    buckets = _matchers("http_request_duration_seconds_bucket", gateway)
    metrics = [Metric("error-ratio", error_ratio_query(window), max_error_ratio, "")]
    if max_p95_s > 0:
        metrics.append(Metric("p95-latency",
                              f"histogram_quantile(0.95, sum by (le) (rate({buckets}[{window}])))", max_p95_s, "s"))
    # since the promotion only: the release itself replaced the color's containers (a new start time each) before
    metrics.append(Metric("restarts", f"sum(changes({_matchers('process_start_time_seconds')}[{SINCE}]))",
                          float(max_restarts), "restarts"))
    return tuple(metrics)


def normalize_selector(selector: str) -> str:
    """Label matchers without braces (`{color="blue"}` and `color="blue"` are the same), checked with the
    prometheusSelector key's rule: nothing else reaches a query."""
    text = selector.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    key = BY_NAME["prometheusSelector"]
    if text and not re.fullmatch(str(key.pattern), text):
        raise ValueError(f"selector {selector!r} is not allowed: {key.allowed}")
    return text


def render_query(metric: Metric, selector: str) -> str:
    """The query with {selector} replaced by the matchers; with none, the placeholder goes with its comma (and
    `{}` with it), so a host's own Prometheus gets plain queries."""
    matchers = normalize_selector(selector)
    if matchers:
        return metric.query.replace(SELECTOR, matchers)
    return metric.query.replace("{" + SELECTOR + "}", "").replace("," + SELECTOR, "").replace(SELECTOR, "")


def since(elapsed_s: float, interval_s: float) -> str:
    """SINCE's value `elapsed_s` after the start: whole seconds, never less than one interval."""
    return f"{max(math.ceil(elapsed_s), math.ceil(interval_s))}s"


def _amount(value: float, unit: str) -> str:
    number = "NaN" if math.isnan(value) else f"{value:.4g}"
    return number + ("" if not unit else unit if unit == "s" else f" {unit}")


def _secs(value: float) -> str:
    return f"{round(value)}s" if value >= 1 or value == 0 else f"{value:g}s"


def _scope(selector: str) -> str:
    matchers = normalize_selector(selector)
    return f"selector {matchers}" if matchers else "no selector (a Prometheus of that color alone)"


def render_plan(spec: AnalysisSpec, selector: str) -> str:
    """The dry run: what will be measured, how often, and when the analysis fails."""
    lines = [f"analysis of the live color, {_scope(selector)}: {spec.count} rounds, one every "
             f"{_secs(spec.interval_s)} (the first {_secs(spec.interval_s)} after the start), bake window "
             f"{_secs(spec.window_s)}",
             f"fails as soon as one metric fails more than {spec.failure_limit} of its measurements; a query "
             f"Prometheus does not answer is a failed measurement, no data an inconclusive one"]
    for metric in spec.metrics:
        lines += [f"  {metric.name} <= {_amount(metric.max, metric.unit)}", f"    {render_query(metric, selector)}"]
    if any(SINCE in metric.query for metric in spec.metrics):
        lines.append(f"  {SINCE}: the time since the promotion, at least {_secs(spec.interval_s)}")
    return "\n".join(lines)


def judge(metric: Metric, value: float | None, *, at: float) -> Measurement:
    """One sample: no series or NaN is inconclusive, value <= max passes, anything else (+Inf too) fails."""
    if value is None or math.isnan(value):
        return Measurement(metric.name, at, value, metric.max, "inconclusive")
    return Measurement(metric.name, at, value, metric.max, "passed" if value <= metric.max else "failed")


def query_failed(metric: Metric, error: str, *, at: float) -> Measurement:
    """A query that got no number (Prometheus unreachable, a PromQL error, several series): a failed measurement."""
    return Measurement(metric.name, at, None, metric.max, "failed", error or "the query failed")


def _shown(m: Measurement, unit: str) -> str:
    if m.error:
        return f"query failed: {m.error}"
    if m.value is None:
        return "no data (no series: no traffic yet?)"
    sign = {"passed": "<=", "failed": ">"}.get(m.phase, "vs")
    return f"{_amount(m.value, unit)} {sign} max {_amount(m.max, unit)}"


def fold(spec: AnalysisSpec, measurements: Sequence[Measurement]) -> AnalysisResult | None:
    """The verdict of the measurements so far, in the order taken; None while the analysis goes on. The first
    point where one metric's failures exceed the limit decides (later measurements are not part of the result)."""
    units = {m.name: m.unit for m in spec.metrics}
    failed: dict[str, list[Measurement]] = {name: [] for name in units}
    taken = dict.fromkeys(units, 0)
    for i, m in enumerate(measurements):
        if m.metric not in units:
            raise ValueError(f"a measurement of {m.metric!r}, which the analysis does not have ({', '.join(units)})")
        taken[m.metric] += 1
        if taken[m.metric] > spec.count:
            raise ValueError(f"more than {spec.count} measurements of {m.metric}")
        if m.phase != "failed":
            continue
        failed[m.metric].append(m)
        if len(failed[m.metric]) > spec.failure_limit:
            reason = (f"{m.metric} failed {len(failed[m.metric])} of {taken[m.metric]} measurements, more than the "
                      f"{spec.failure_limit} allowed; the last: {_shown(m, units[m.metric])}")
            return AnalysisResult("failed", list(measurements[:i + 1]), m.metric, reason, failed[m.metric][0].at,
                                  m.at)
    if not measurements or any(n < spec.count for n in taken.values()):
        return None
    ended = measurements[-1].at
    if all(m.phase == "inconclusive" for m in measurements):
        return AnalysisResult("inconclusive", list(measurements), None,
                              f"every measurement of {', '.join(units)} was inconclusive (no series or no requests "
                              f"in {spec.count} rounds): nothing was seen working or failing", None, ended)
    notes = [f"{name} failed {len(f)} (allowed {spec.failure_limit})" for name, f in failed.items() if f]
    never = [name for name in units if all(m.phase == "inconclusive" for m in measurements if m.metric == name)]
    notes += [f"{', '.join(never)} inconclusive throughout"] if never else []
    return AnalysisResult("passed", list(measurements), None,
                          f"{spec.count} rounds within the limits" + (f" ({'; '.join(notes)})" if notes else ""),
                          None, ended)


def progress_line(spec: AnalysisSpec, measurements: Sequence[Measurement], *, round_no: int,
                  started_at: float) -> str:
    """The line printed for the last measurement as it is taken: round, value against its max, the failures of
    its metric against the limit, and what is left of the bake window."""
    m = measurements[-1]
    units = {metric.name: metric.unit for metric in spec.metrics}
    if m.phase == "failed":
        used = sum(1 for x in measurements if x.metric == m.metric and x.phase == "failed")
        budget = (f"{used} of {spec.failure_limit} allowed failures used" if used <= spec.failure_limit else
                  f"{used} failures, {spec.failure_limit} allowed: the analysis fails")
        verdict = f"FAILED ({budget})"
    else:
        verdict = "ok" if m.phase == "passed" else "inconclusive"
    shown = _shown(m, units[m.metric]) if m.value is None or not math.isnan(m.value) else \
        "NaN (nothing to measure in the window)"
    left = max(0.0, spec.window_s - (m.at - started_at))
    return (f"  [{round_no}/{spec.count}] {m.metric} {shown} {verdict} · {_secs(left)} of {_secs(spec.window_s)} "
            f"left in the bake window")


def render_result(result: AnalysisResult) -> str:
    if result.phase == "inconclusive":
        return f"analysis inconclusive: {result.reason} (the release flow counts it as passed, with this warning)"
    return f"analysis {'FAILED' if result.phase == 'failed' else 'passed'}: {result.reason}"


def spec_from_config(values: Mapping[str, str | None]) -> AnalysisSpec:
    """The analysis of a stack from its config values as `pulumi config get` prints them (by key name without the
    `devtools:` namespace; None: not set, the table's default), with the key table's checks; other names are
    ignored. A bad value raises ValueError naming the key, what it may be and how to fix it."""
    given = {f"{NAMESPACE}:{k}": v for k, v in values.items() if k in CONFIG_KEYS and v is not None}
    r = Reader(given, set())
    interval, count = r.integer("analysisInterval"), r.integer("analysisCount")
    limit, restarts = r.integer("analysisFailureLimit"), r.integer("analysisMaxRestarts")
    ratio, p95 = r.number("analysisMaxErrorRatio"), r.number("analysisMaxP95Seconds")
    if r.problems:
        raise ValueError("\n".join(_with_fix(p) for p in r.problems))
    return AnalysisSpec(default_metrics(ratio, p95, restarts, rate_window(interval)), float(interval), count, limit)


def _with_fix(problem: str) -> str:
    full = f"{NAMESPACE}:" + problem.split(":", 2)[1]
    key = BY_NAME[full.split(":", 1)[1]]
    default = number_text(key.default) if key.type == "number" else key.default
    return (f"{problem}; set it with `pulumi config set {full} <value>`, or `pulumi config rm {full}` for the "
            f"default {default}")
