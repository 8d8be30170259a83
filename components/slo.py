"""The stability targets as data (docs/runbook.md, "Stability targets"): four objectives, each a share of good
events over a window, per the label its series are kept by. Pure, standard library only.

SLIs: error-ratio = 5xx share of `http_requests_total` per service; rollout-success bad = increase of
devtools_rollout_failures_total, total = increase of devtools_rollouts_total, per project; pull-latency bad = pulls
slower than the threshold (count - bucket{le=threshold}), per project; trace-coverage bad = probes - traced, per
agent. A selector is extra label matchers without braces (e.g. `color="blue"`), "" = none.
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


def _sel(*matchers: str) -> str:
    given = [m for m in matchers if m]
    return "{" + ",".join(given) + "}" if given else ""


def _number(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Objective:
    name: str  # "error-ratio" | "rollout-success" | "pull-latency" | "trace-coverage"
    title: str
    by: str  # the label each series is per
    target: float  # the good share asked for
    threshold_s: float = 0.0  # pull-latency: the bucket bound a pull must finish within

    def _increase(self, metric: str, window: str, *matchers: str) -> str:
        return f"sum by ({self.by}) (increase({metric}{_sel(*matchers)}[{window}]))"

    def bad(self, window: str, selector: str = "") -> str:
        if self.name == "error-ratio":
            return self._increase("http_requests_total", window, 'code=~"5.."', selector)
        if self.name == "rollout-success":
            return self._increase("devtools_rollout_failures_total", window, selector)
        if self.name == "pull-latency":
            bucket = self._increase("devtools_image_pull_duration_seconds_bucket", window,
                                    f'le="{_number(self.threshold_s)}"', selector)
            return f"({self.total(window, selector)} - {bucket})"
        return f"({self.total(window, selector)} - " \
               f"{self._increase('devtools_trace_probes_traced_total', window, selector)})"

    def total(self, window: str, selector: str = "") -> str:
        metric = {"error-ratio": "http_requests_total", "rollout-success": "devtools_rollouts_total",
                  "pull-latency": "devtools_image_pull_duration_seconds_count",
                  "trace-coverage": "devtools_trace_probes_total"}[self.name]
        return self._increase(metric, window, selector)

    def error_ratio(self, window: str, selector: str = "") -> str:
        return f"({self.bad(window, selector)}) / ({self.total(window, selector)})"


@dataclass(frozen=True)
class SloSpec:
    error_ratio_max: float = 0.01  # stack key sloErrorRatio
    rollout_success_min: float = 1.0  # sloRolloutSuccess
    pull_p95_seconds: float = 60.0  # sloPullP95Seconds (a bucket bound of the pull histogram)
    trace_coverage_min: float = 0.9  # sloTraceCoverage
    window: str = "7d"  # sloWindow (the report's default window)


def objectives(spec: SloSpec) -> tuple[Objective, ...]:
    return (Objective("error-ratio", "Error ratio per service", "service", 1 - spec.error_ratio_max),
            Objective("rollout-success", "Rollout success per project", "project", spec.rollout_success_min),
            Objective("pull-latency", f"Image pulls within {_number(spec.pull_p95_seconds)}s per project", "project",
                      0.95, spec.pull_p95_seconds),
            Objective("trace-coverage", "Trace coverage per agent", "agent", spec.trace_coverage_min))
