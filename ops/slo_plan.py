"""The stability report as data: for each objective of components/slo.py, the instant queries over the window,
the error-budget arithmetic, the verdict per series and per objective, the table, the Markdown and the JSON
document. Pure: ops.slo asks Prometheus and hands the answers here, so every number and line has an exact test.

* good ratio = 1 - bad/total over the window; error budget = 1 - target; budget remaining =
  1 - (bad/total) / (1 - target). A target of 1.0 has no budget: 100 % remaining without a failure, 0 %
  ("exhausted") with any.
* A series is `met` when its good ratio reaches the target, `missed` when not, and `no data` when nothing
  happened in the window (no series, a total of 0, NaN): neither met nor missed, and said as such.
* An objective is missed when one of its series is, met when none is and one is met, else no data; the report
  likewise. Exit 1 when any target is missed; no data alone is not a miss.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from components.config import read_slo
from components.config_keys import NAMESPACE
from components.config_read import Reader
from components.slo import Objective, SloSpec

Verdict = Literal["met", "missed", "no data"]
Kind = Literal["bad", "total", "p95"]
Measured = Mapping[tuple[str, Kind], Mapping[str, float]]
"""(objective name, kind) -> {value of the objective's `by` label: the number}; a missing key: no series."""

EPS = 1e-9
POINTS = 200
MIN_RANGE_S = 120  # a timeline point's increase() needs several scrapes in its range
P95 = ("histogram_quantile(0.95, sum by (le, project) (increase(devtools_image_pull_duration_seconds_bucket[{w}])))")
PULL_LATENCY = "pull-latency"
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DURATION = re.compile(r"(?:\d+(?:ms|[smhdwy]))+")


def duration_seconds(window: str) -> float:
    """A PromQL duration (`7d`, `1h30m`) in seconds; anything else raises ValueError."""
    if not _DURATION.fullmatch(window):
        raise ValueError(f"window {window!r} is not a PromQL duration such as 7d, 24h or 1h30m")
    seconds = sum(int(n) * _UNIT_S[u] for n, u in re.findall(r"(\d+)(ms|[smhdwy])", window))
    if seconds <= 0:
        raise ValueError(f"window {window!r} is empty")
    return seconds


@dataclass(frozen=True)
class Query:
    objective: str
    kind: Kind
    promql: str


def queries(objectives: Sequence[Objective], window: str, selector: str = "") -> list[Query]:
    """The instant queries of the report: bad and total of each objective over the window, per its `by` label, as
    counts of events (increase(), also where the rules take rate(): the ratio is the same, the counts read as
    requests); for pull-latency also the measured p95 per project."""
    out: list[Query] = []
    for o in (replace(o, fn="increase") for o in objectives):
        out += [Query(o.name, "bad", o.bad(window, selector)), Query(o.name, "total", o.total(window, selector))]
        if o.name == PULL_LATENCY:
            out.append(Query(o.name, "p95", P95.format(w=window)))
    return out


def range_step(window_s: float) -> int:
    """The step of the timelines' range queries: about POINTS points over the window, whole seconds."""
    return max(1, math.ceil(window_s / POINTS))


def range_window(step_s: int) -> str:
    """The range of a timeline point's increase(): one step, at least MIN_RANGE_S."""
    return f"{max(step_s, MIN_RANGE_S)}s"


@dataclass(frozen=True)
class SeriesResult:
    key: str  # the value of the objective's `by` label ("" when the series has none)
    bad: float | None
    total: float | None
    p95_s: float | None
    verdict: Verdict
    good_ratio: float | None = None
    budget_remaining: float | None = None


@dataclass(frozen=True)
class ObjectiveResult:
    objective: Objective
    series: tuple[SeriesResult, ...]

    @property
    def error_budget(self) -> float:
        return round(1 - self.objective.target, 12)

    @property
    def verdict(self) -> Verdict:
        verdicts = {s.verdict for s in self.series}
        return "missed" if "missed" in verdicts else "met" if "met" in verdicts else "no data"


@dataclass(frozen=True)
class Report:
    window: str
    source: str  # where the numbers come from (the Prometheus URL, without credentials)
    at: str  # when, UTC ISO 8601
    objectives: tuple[ObjectiveResult, ...]

    @property
    def verdict(self) -> Verdict:
        verdicts = {o.verdict for o in self.objectives}
        return "missed" if "missed" in verdicts else "met" if "met" in verdicts else "no data"

    @property
    def exit_code(self) -> int:
        return 1 if self.verdict == "missed" else 0


def _known(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def judge_series(objective: Objective, key: str, bad: float | None, total: float | None,
                 p95_s: float | None = None) -> SeriesResult:
    """One series: no total (or 0, or NaN) is no data; no bad series with a total is no bad event."""
    bad, total, p95_s = _known(bad), _known(total), _known(p95_s)
    if total is None or total <= 0:
        return SeriesResult(key, bad, total, p95_s, "no data")
    bad = max(0.0, bad or 0.0)
    ratio = min(1.0, bad / total)
    budget = round(1 - objective.target, 12)
    remaining = (1.0 if bad <= EPS else 0.0) if budget <= 0 else 1 - ratio / budget
    verdict: Verdict = "met" if ratio <= budget + EPS else "missed"
    return SeriesResult(key, bad, total, p95_s, verdict, 1 - ratio, remaining)


def evaluate(objectives: Sequence[Objective], measured: Measured, *, window: str, source: str,
             at: str) -> Report:
    results = []
    for o in objectives:
        bad, total = measured.get((o.name, "bad"), {}), measured.get((o.name, "total"), {})
        p95 = measured.get((o.name, "p95"), {})
        keys = sorted(set(bad) | set(total))
        results.append(ObjectiveResult(o, tuple(judge_series(o, k, bad.get(k), total.get(k), p95.get(k))
                                                for k in keys)))
    return Report(window, source, at, tuple(results))


def percent(value: float) -> str:
    """99.95 %, 100 %, 0 %: two decimals at most, trailing zeros dropped."""
    text = f"{value * 100:.2f}".rstrip("0").rstrip(".")
    return f"{'0' if text == '-0' else text} %"


def count(value: float | None) -> str:
    """Events: whole numbers (increase() extrapolates to the window's edges: 18.5 pulls were 18 or 19)."""
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 1 or value == 0 else f"{value:.2g}"


def budget_text(s: SeriesResult) -> str:
    if s.budget_remaining is None:
        return "-"
    return "exhausted" if s.budget_remaining <= EPS else percent(s.budget_remaining)


def series_note(s: SeriesResult) -> str:
    note = f"{count(s.bad)} bad of {count(s.total)}" if s.verdict != "no data" else \
        "nothing happened in the window"
    if s.p95_s is not None:
        note += f", p95 {s.p95_s:.3g}s"
    return note


def rows(report: Report) -> list[list[str]]:
    rows = []
    for r in report.objectives:
        o = r.objective
        if not r.series:
            rows.append([o.name, f"{o.by}=(no series)", "-", percent(o.target), "-", "no data",
                         "no series in the window"])
        for s in r.series:
            rows.append([o.name, f"{o.by}={s.key or '(none)'}",
                         "-" if s.good_ratio is None else percent(s.good_ratio), percent(o.target),
                         budget_text(s), s.verdict, series_note(s)])
    return rows


HEADER = ["objective", "series", "good", "target", "budget left", "verdict", "events"]


def summary_line(report: Report) -> str:
    missed = [r.objective.name for r in report.objectives if r.verdict == "missed"]
    empty = [r.objective.name for r in report.objectives if r.verdict == "no data"]
    met = [r.objective.name for r in report.objectives if r.verdict == "met"]
    parts = []
    if missed:
        parts.append(f"MISSED {', '.join(missed)}")
    if met:
        parts.append(f"met {', '.join(met)}")
    if empty:
        parts.append(f"no data for {', '.join(empty)} (neither met nor missed)")
    return f"stability targets over {report.window}: " + "; ".join(parts)


def render_table(report: Report) -> str:
    table = [HEADER, *rows(report)]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER) - 1)]
    lines = [f"stability report over {report.window} at {report.source} ({report.at})"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1] for row in table]
    return "\n".join(line.rstrip() for line in [*lines, summary_line(report)])


def render_markdown(report: Report) -> str:
    lines = [f"### Stability targets over {report.window}", "", f"{summary_line(report)} ({report.at})", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows(report)]
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> float | None:
    return None if value is None else round(value, 9)


def to_json(report: Report, queries_run: Sequence[Query] = ()) -> dict[str, Any]:
    shown = {(q.objective, q.kind): q.promql for q in queries_run}
    return {"window": report.window, "source": report.source, "at": report.at, "verdict": report.verdict,
            "objectives": [
                {"name": r.objective.name, "title": r.objective.title, "by": r.objective.by,
                 "target": r.objective.target, "error_budget": r.error_budget, "verdict": r.verdict,
                 "queries": {k: v for (name, k), v in shown.items() if name == r.objective.name},
                 "series": [{"key": s.key, "bad": _num(s.bad), "total": _num(s.total), "p95_seconds": _num(s.p95_s),
                             "good_ratio": _num(s.good_ratio), "budget_remaining": _num(s.budget_remaining),
                             "verdict": s.verdict} for s in r.series]}
                for r in report.objectives]}


SPEC_KEYS = ("sloErrorRatio", "sloRolloutSuccess", "sloPullP95Seconds", "sloTraceCoverage")
"""The stack config keys of the targets (devtools:<key>); sloWindow is the report's default window."""
WINDOW_KEY = "sloWindow"


def spec_from_values(values: Mapping[str, str | None]) -> SloSpec:
    """The targets from the stack's values as `pulumi config get` prints them (None: not set, the default), read
    with the key table's checks (components.config.read_slo, as the program reads them). A bad value raises
    ValueError naming the key, what it may be and how to fix it."""
    given = {f"{NAMESPACE}:{k}": v for k, v in values.items() if k in (*SPEC_KEYS, WINDOW_KEY) and v is not None}
    r = Reader(given, set())
    spec = read_slo(r)
    if r.problems:
        raise ValueError("\n".join(r.problems))
    return spec
