"""The service level objectives, as code: what each one measures (PromQL) and the Prometheus rule file that records
and alerts on them.

Pure and standard library only: the program ships `render_rules(cfg.slo)` in every app-tier release bundle
(`prometheus/slo-rules.yml`), the local stand-in renders the local stack's with `python -m components.slo`, and the
SLO report (ops) reuses `objectives()` for its queries. Four objectives, one rule group each (`slo-<name>`):

    error-ratio      5xx share of http_requests_total, per service            good share 1 - sloErrorRatio
    rollout-success  failed applies among applies, per project                good share sloRolloutSuccess
    pull-latency     image pulls slower than sloPullP95Seconds, per project    good share 0.95
    trace-coverage   E2E probes whose trace Langfuse lacks, per agent          good share sloTraceCoverage

Recording rules (Sloth's names): `slo:sli_error:ratio_rate<W>{slo, <by>}` for each W of WINDOWS,
`slo:objective:ratio{slo}`, `slo:error_budget:ratio{slo}`. Alerts (the SRE workbook's multiwindow, multi-burn-rate
alerts, no `for`): SLOErrorBudgetBurnFast (severity page) and SLOErrorBudgetBurnSlow (severity ticket), see BURNS.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
"""The windows each objective's error ratio is recorded over (every window an alert below reads)."""

PULL_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
"""The bucket bounds of devtools_image_pull_duration_seconds (besides +Inf): a pull threshold must be one of them,
since a histogram counts pulls only up to its bounds."""

PULL_GOOD_SHARE = 0.95
"""pull-latency's target: 95 % of pulls at most sloPullP95Seconds (the threshold is then the 95th percentile)."""


@dataclass(frozen=True)
class Burn:
    """One multiwindow condition: the error ratio over `long` and over `short` both above `factor` times the budget."""

    factor: float
    long: str
    short: str


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    burns: tuple[Burn, ...]  # any of them fires the alert
    what: str  # words for the summary


BURNS = (
    Alert("SLOErrorBudgetBurnFast", "page", (Burn(14.4, "1h", "5m"), Burn(6, "6h", "30m")),
          "fast (2 % of a 30-day budget in 1 h, or 5 % in 6 h)"),
    Alert("SLOErrorBudgetBurnSlow", "ticket", (Burn(3, "1d", "2h"), Burn(1, "3d", "6h")),
          "steadily (10 % of a 30-day budget in 1 d, or 10 % in 3 d)"),
)


def number(value: float) -> str:
    """A number as PromQL and the rule file show it: the shortest text that reads back, rounded to 12 digits so
    `1 - 0.99` shows as 0.01, without a trailing `.0`."""
    return repr(round(float(value), 12)).removesuffix(".0")


def _matchers(*parts: str) -> str:
    inner = ",".join(p for p in parts if p)
    return "{" + inner + "}" if inner else ""


@dataclass(frozen=True)
class Objective:
    name: str  # "error-ratio" | "rollout-success" | "pull-latency" | "trace-coverage"
    title: str
    by: str  # the label each series is per: "service" | "project" | "agent"
    target: float  # the good share asked for
    bad_metric: str
    total_metric: str
    bad_matchers: str = ""  # label matchers of the bad series (without braces)
    total_matchers: str = ""
    fn: str = "increase"  # rate for requests, increase for the counters written once per apply
    less_good: bool = False  # bad = total - good(bad_metric): the histogram counts pulls under the threshold

    @property
    def budget(self) -> float:
        """The share of events allowed to be bad: 1 - target (0 for a target of 1.0: any bad event burns it)."""
        return round(1.0 - self.target, 12)

    def _sum(self, metric: str, matchers: str, window: str, selector: str) -> str:
        return f"sum by ({self.by}) ({self.fn}({metric}{_matchers(matchers, selector)}[{window}]))"

    def total(self, window: str, selector: str = "") -> str:
        """PromQL: the events per `by` label over `window` (selector: extra label matchers without braces)."""
        return self._sum(self.total_metric, self.total_matchers, window, selector)

    def bad(self, window: str, selector: str = "") -> str:
        """PromQL: the bad events per `by` label over `window`."""
        good_or_bad = self._sum(self.bad_metric, self.bad_matchers, window, selector)
        return f"{self.total(window, selector)} - {good_or_bad}" if self.less_good else good_or_bad

    def error_ratio(self, window: str, selector: str = "") -> str:
        """PromQL: bad / total per `by` label; 0 where events happened but no bad series exists (a counter of
        failures appears with the first failure), none where no event happened in the window."""
        total = self.total(window, selector)
        return f"({self.bad(window, selector)} or 0 * {total}) / {total}"


def _le(threshold: float) -> str:
    """The bucket matcher: `le` as Go's exposition writes it (60), or as Python's client does (60.0)."""
    text = number(threshold)
    return f'le="{text}"' if "." in text or "e" in text else f'le=~"{text}|{text}.0"'


@dataclass(frozen=True)
class SloSpec:
    error_ratio_max: float = 0.01  # stack key sloErrorRatio
    rollout_success_min: float = 1.0  # sloRolloutSuccess
    pull_p95_seconds: float = 60.0  # sloPullP95Seconds (a bucket bound of the pull histogram)
    trace_coverage_min: float = 0.9  # sloTraceCoverage
    window: str = "7d"  # sloWindow (the report's default window)


def objectives(spec: SloSpec) -> tuple[Objective, ...]:
    """The four objectives with the spec's targets, in the order the rule file holds them."""
    if float(spec.pull_p95_seconds) not in PULL_BUCKETS:
        raise ValueError(f"pull threshold {number(spec.pull_p95_seconds)} is not a bucket bound of the pull "
                         f"histogram: one of {', '.join(number(b) for b in PULL_BUCKETS)}")
    pulls = "devtools_image_pull_duration_seconds"
    return (
        Objective("error-ratio", "Error ratio per service", "service", round(1.0 - spec.error_ratio_max, 12),
                  "http_requests_total", "http_requests_total", bad_matchers='code=~"5.."', fn="rate"),
        Objective("rollout-success", "Compose rollout success per project", "project", spec.rollout_success_min,
                  "devtools_rollout_failures_total", "devtools_rollouts_total"),
        Objective("pull-latency", f"Image pulls within {number(spec.pull_p95_seconds)} s per project", "project",
                  PULL_GOOD_SHARE, f"{pulls}_bucket", f"{pulls}_count", bad_matchers=_le(spec.pull_p95_seconds),
                  less_good=True),
        Objective("trace-coverage", "Langfuse trace coverage per agent", "agent", spec.trace_coverage_min,
                  "devtools_trace_probes_traced_total", "devtools_trace_probes_total", less_good=True),
    )


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is YAML's)."""
    return json.dumps(text, ensure_ascii=False)


def _alert_expr(o: Objective, alert: Alert) -> list[str]:
    """The alert's expression, one line per clause: any burn whose long and short windows both burn too fast."""
    sel = f'{{slo="{o.name}"}}'
    clauses = [f"(slo:sli_error:ratio_rate{b.long}{sel} > ({number(b.factor)} * {number(o.budget)})"
               f" and slo:sli_error:ratio_rate{b.short}{sel} > ({number(b.factor)} * {number(o.budget)}))"
               for b in alert.burns]
    return [clauses[0], *(f"or {c}" for c in clauses[1:])]


def _summary(o: Objective, alert: Alert) -> str:
    label = "{{ $labels." + o.by + " }}"
    return f"{o.title}: {o.by} {label} burns its error budget {alert.what}"


def _group(o: Objective) -> list[str]:
    lines = [f"  - name: slo-{o.name}", "    rules:"]
    for window in WINDOWS:
        lines += [f"      - record: slo:sli_error:ratio_rate{window}",
                  f"        expr: {_q(o.error_ratio(window))}",
                  f"        labels: {{slo: {o.name}}}"]
    for record, value in (("objective", o.target), ("error_budget", o.budget)):
        lines += [f"      - record: slo:{record}:ratio",
                  f"        expr: vector({number(value)})",
                  f"        labels: {{slo: {o.name}}}"]
    for alert in BURNS:
        lines += [f"      - alert: {alert.name}",
                  "        expr: |-",
                  *(f"          {line}" for line in _alert_expr(o, alert)),
                  f"        labels: {{severity: {alert.severity}, slo: {o.name}}}",
                  "        annotations:",
                  f"          summary: {_q(_summary(o, alert))}",
                  f"          objective: {_q(f'{number(o.target * 100)} % good')}"]
    return lines


def render_rules(spec: SloSpec) -> str:
    """The Prometheus rule file: one group per objective (`slo-<name>`), byte-identical for an identical spec."""
    lines = ["# Rendered by components.slo from the stack's SLO keys (sloErrorRatio, sloRolloutSuccess,",
             "# sloPullP95Seconds, sloTraceCoverage): edit the stack config, not this file.",
             "groups:"]
    for o in objectives(spec):
        lines += _group(o)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from components.slo_cli import main

    sys.exit(main())
