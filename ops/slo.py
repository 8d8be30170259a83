"""`ops.cli slo`: the stability targets (components/slo.py) measured over a window against Prometheus, as a table
(or JSON), in the job summary, and with --html as a page of four timelines (ops/slo_html.py).

Prometheus: --prometheus URL, else the stack's devtools:analysisPrometheusUrl, else the stack's first host's own
(edge profile, 127.0.0.1:<hostPortPrefix>90 there) through an SSH tunnel, as the release's analysis reaches it.
The targets: the stack's devtools:slo* keys (ops.slo_plan.SPEC_KEYS), or the defaults with --default-targets.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from components.slo import Objective, SloSpec, objectives
from ops import operator_plan as plan
from ops import slo_html, slo_plan
from ops.analysis import AnalysisError, query_data, without_credentials
from ops.operator_host import (
    EXIT_FAILED,
    EXIT_USAGE,
    CliError,
    Pulumi,
    append_step_summary,
    prometheus_tunnel,
    ssh_targets,
)

TIMEOUT_S = 30.0
HELP = """The stability targets over a window (default: the stack's devtools:sloWindow, else 7d): for each
objective and each of its series the good share, the target, the error budget left and a verdict: met, missed, or
no data (nothing happened in the window: neither met nor missed). Exit codes: 0 no target missed (also when some
or all objectives have no data) · 1 a target missed, or Prometheus did not answer · 2 cannot start (bad input)."""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("slo", parents=[common], help="the stability targets over a window: table, JSON, HTML page",
                       description=HELP)
    s.add_argument("--window", help="a PromQL duration (default: the stack's devtools:sloWindow, else 7d)")
    s.add_argument("--prometheus", metavar="URL", help="the Prometheus to ask (default: the stack's "
                   "devtools:analysisPrometheusUrl, else its first host's own through an SSH tunnel)")
    s.add_argument("--default-targets", action="store_true", help="the default targets instead of the stack's "
                   "devtools:slo* keys (with --prometheus, no pulumi needed)")
    s.add_argument("--json", action="store_true", help="print the report as JSON instead of the table")
    s.add_argument("--html", type=Path, metavar="FILE", help="also write a page with the table and four timelines")


def vector(client: httpx.Client, url: str, promql: str, *, at: float) -> dict[str, dict[str, float]]:
    """An instant query's series, by their label sets as {label: value} text -> {"value": number}."""
    kind, result = query_data(client, url, promql, TIMEOUT_S, params={"time": f"{at:.3f}"})
    if kind != "vector" or not isinstance(result, list):
        raise AnalysisError(f"query {promql}: returned a {kind or 'malformed result'}, not an instant vector")
    return {json.dumps(s.get("metric") or {}, sort_keys=True): {"value": float(s["value"][1])} for s in result}


def by_label(series: Mapping[str, Any], label: str) -> dict[str, Any]:
    return {json.loads(key).get(label, ""): value for key, value in series.items()}


def measure(client: httpx.Client, url: str, objs: Sequence[Objective], window: str, *, at: float
            ) -> tuple[slo_plan.Measured, list[slo_plan.Query]]:
    asked = slo_plan.queries(objs, window)
    by = {o.name: o.by for o in objs}
    measured: dict[tuple[str, slo_plan.Kind], dict[str, float]] = {}
    for q in asked:
        series = by_label(vector(client, url, q.promql, at=at), by[q.objective])
        measured[(q.objective, q.kind)] = {k: v["value"] for k, v in series.items()}
    return measured, asked


def matrix(client: httpx.Client, url: str, promql: str, label: str, *, start: float, end: float,
           step: int) -> dict[str, dict[float, float]]:
    """A range query's series by `label`: {value: {t: number}} (NaN left out)."""
    kind, result = query_data(client, url, promql, TIMEOUT_S, api="query_range",
                              params={"start": f"{start:.0f}", "end": f"{end:.0f}", "step": f"{step}s"})
    if kind != "matrix" or not isinstance(result, list):
        raise AnalysisError(f"query_range {promql}: returned a {kind or 'malformed result'}, not a matrix")
    out: dict[str, dict[float, float]] = {}
    for s in result:
        points = {float(t): float(v) for t, v in s.get("values") or []}
        out[(s.get("metric") or {}).get(label, "")] = {t: v for t, v in points.items() if not math.isnan(v)}
    return out


def _line(name: str, points: Mapping[float, float]) -> slo_html.Line:
    return slo_html.Line(name, tuple(sorted(points.items())))


def timelines(client: httpx.Client, url: str, spec: SloSpec, window_s: float, *, end: float
              ) -> list[slo_html.Timeline]:
    """The page's four timelines from range queries over the window (about slo_plan.POINTS points)."""
    step = slo_plan.range_step(window_s)
    start, rng = end - window_s, slo_plan.range_window(step)
    objs = {o.name: o for o in objectives(spec)}

    def ranged(promql: str, label: str) -> dict[str, dict[float, float]]:
        return matrix(client, url, promql, label, start=start, end=end, step=step)

    def bad_total(o: Objective) -> tuple[dict[str, dict[float, float]], dict[str, dict[float, float]]]:
        return ranged(o.bad(rng), o.by), ranged(o.total(rng), o.by)

    def ratio_lines(o: Objective, good: bool) -> tuple[slo_html.Line, ...]:
        bad, total = bad_total(o)
        return tuple(_line(key, {t: (1 - r if good else r) for t, n in sorted(total[key].items()) if n > 0
                                 for r in [min(1.0, max(0.0, bad.get(key, {}).get(t, 0.0)) / n)]})
                     for key in sorted(total))

    common = {"start": start, "end": end, "step": float(step)}
    errors, traces = objs["error-ratio"], objs["trace-coverage"]
    rollout_bad, rollout_total = bad_total(objs["rollout-success"])
    rollouts: list[slo_html.Line] = []
    for key in sorted(rollout_total):
        failed = rollout_bad.get(key, {})
        rollouts.append(_line(f"{key} succeeded", {t: max(0.0, n - failed.get(t, 0.0))
                                                   for t, n in rollout_total[key].items()}))
        rollouts.append(_line(f"{key} failed", {t: failed.get(t, 0.0) for t in rollout_total[key]}))
    p95 = ranged(slo_plan.P95.format(w=rng), "project")
    return [
        slo_html.Timeline("error-ratio", f"Error ratio per service (5xx share, {rng} windows)", "ratio",
                          round(1 - errors.target, 12), f"target: at most {slo_plan.percent(1 - errors.target)}",
                          ratio_lines(errors, good=False), **common),
        slo_html.Timeline("pull-latency", f"Image pull p95 per project ({rng} windows)", "s", spec.pull_p95_seconds,
                          f"threshold {spec.pull_p95_seconds:g}s (95 % of pulls within)",
                          tuple(_line(k, v) for k, v in sorted(p95.items())), **common),
        slo_html.Timeline("rollout-success", f"Rollouts per project ({rng} windows)", "count", 0.0,
                          f"target: {slo_plan.percent(objs['rollout-success'].target)} succeed "
                          "(failures at 0)", tuple(rollouts), **common),
        slo_html.Timeline("trace-coverage", f"Trace coverage per agent ({rng} windows)", "ratio", traces.target,
                          f"target: at least {slo_plan.percent(traces.target)}", ratio_lines(traces, good=True),
                          **common),
    ]


def utc(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def report(url: str, spec: SloSpec, window: str, *, html: Path | None = None, now: float | None = None,
           client: httpx.Client | None = None) -> tuple[slo_plan.Report, list[slo_plan.Query]]:
    """Measure the targets at `url` over `window` (and write the page to `html` when given)."""
    at = time.time() if now is None else now
    window_s = slo_plan.duration_seconds(window)
    objs = objectives(spec)
    http = client or httpx.Client(trust_env=False)
    try:
        measured, asked = measure(http, url, objs, window, at=at)
        result = slo_plan.evaluate(objs, measured, window=window, source=without_credentials(url), at=utc(at))
        if html is not None:
            page = slo_html.render_page(result, timelines(http, url, spec, window_s, end=at))
            html.parent.mkdir(parents=True, exist_ok=True)
            html.write_text(page)
    finally:
        if client is None:
            http.close()
    return result, asked


def stack_spec(pulumi: Pulumi, stack: str) -> SloSpec:
    keys = [*slo_plan.SPEC_KEYS, slo_plan.WINDOW_KEY]
    try:
        return slo_plan.spec_from_values({k: pulumi.config_value(stack, k) for k in keys})
    except ValueError as exc:
        raise CliError(f"stack {stack}: {exc}", EXIT_USAGE) from exc


@contextmanager
def prometheus_of(pulumi: Pulumi, stack: str, ssh_key: Path | None) -> Iterator[str]:
    """The stack's analysisPrometheusUrl, else its first host's own Prometheus through an SSH tunnel."""
    url = pulumi.config(stack, "analysisPrometheusUrl")
    if url:
        yield url
        return
    try:
        hosts = plan.hosts_of(stack, pulumi.outputs(stack))[:1]
    except plan.PlanError as exc:
        raise CliError(f"cannot reach stack {stack}'s Prometheus: {exc}", EXIT_FAILED) from exc
    port = int(f"{pulumi.config(stack, 'hostPortPrefix') or '80'}90")
    with ssh_targets(pulumi, stack, hosts, ssh_key) as targets, prometheus_tunnel(targets[0], port) as tunnel:
        yield tunnel


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    pulumi = None if args.default_targets and args.prometheus else Pulumi.find(args.cwd, dict(env))
    spec = SloSpec() if pulumi is None or args.default_targets else stack_spec(pulumi, args.stack)
    window = args.window or spec.window
    try:
        slo_plan.duration_seconds(window)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    try:
        if args.prometheus:
            result, asked = report(args.prometheus, spec, window, html=args.html)
        else:
            assert pulumi is not None
            with prometheus_of(pulumi, args.stack, args.ssh_key) as url:
                result, asked = report(url, spec, window, html=args.html)
    except AnalysisError as exc:
        raise CliError(f"no report: {exc}", EXIT_FAILED) from exc
    if args.json:
        print(json.dumps(slo_plan.to_json(result, asked), indent=2))
    else:
        print(slo_plan.render_table(result))
    if args.html:
        print(f"page: {args.html}", file=sys.stderr)
    append_step_summary(slo_plan.render_markdown(result))
    return result.exit_code

