"""The analysis after a promotion against a real Prometheus: `count` rounds, one every interval (the first one
interval after the start, so the rate windows hold the promoted color's traffic), each round one instant query per
metric, every measurement printed as it is taken, and a stop as soon as ops.analysis_plan.fold decides.

A query that gets no number (Prometheus unreachable or timing out, a PromQL error, a result of several series)
is a failed measurement carrying the error text: an unreachable Prometheus never passes a release. The clock and
the sleep are parameters, so a test can run the schedule without waiting for it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import httpx

from ops.analysis_plan import (
    SINCE,
    AnalysisResult,
    AnalysisSpec,
    Measurement,
    fold,
    judge,
    normalize_selector,
    progress_line,
    query_failed,
    render_query,
    render_result,
    since,
)

QUERY_TIMEOUT_S = 10.0
SHOWN_SERIES = 3


class AnalysisError(RuntimeError):
    """A query that got no number; the message names the query and what Prometheus (or the connection) said."""


def _excerpt(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def _number(promql: str, sample: Any) -> float:
    try:
        return float(sample[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise AnalysisError(f"query {promql}: Prometheus answered a value that is no number: {sample!r}") from exc


def _labels(series: Mapping[str, Any]) -> str:
    metric = series.get("metric") or {}
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(metric.items())) + "}"


def query_data(client: httpx.Client, base_url: str, promql: str, timeout: float, *, api: str = "query",
               params: Mapping[str, str] | None = None) -> tuple[Any, Any]:
    """(resultType, result) of a query (`api` = query or query_range, `params` besides the query); an error from
    Prometheus or no answer raise AnalysisError."""
    try:
        response = client.get(f"{base_url.rstrip('/')}/api/v1/{api}", params={"query": promql, **(params or {})},
                              timeout=timeout)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise AnalysisError(f"query {promql}: no answer from Prometheus: {type(exc).__name__}: {exc}") from exc
    try:
        body = response.json()
    except ValueError:
        raise AnalysisError(f"query {promql}: Prometheus answered HTTP {response.status_code}, not JSON: "
                            f"{_excerpt(response.text)}") from None
    if not isinstance(body, dict):
        raise AnalysisError(f"query {promql}: Prometheus answered HTTP {response.status_code}: "
                            f"{_excerpt(response.text)}")
    if response.status_code != 200 or body.get("status") != "success":
        error_type = f"{body['errorType']}: " if body.get("errorType") else ""
        raise AnalysisError(f"query {promql}: Prometheus answered HTTP {response.status_code}: "
                            f"{error_type}{body.get('error') or _excerpt(response.text)}")
    data = body.get("data")
    return (data.get("resultType"), data.get("result")) if isinstance(data, dict) else (None, None)


def query_scalar(client: httpx.Client, base_url: str, promql: str, timeout: float) -> float | None:
    """The one number an instant query returns: a scalar, or the value of a vector's only series; None when the
    vector is empty (no series). Several series, an error from Prometheus or no answer raise AnalysisError."""
    kind, result = query_data(client, base_url, promql, timeout)
    if kind == "scalar":
        return _number(promql, result)
    if kind != "vector" or not isinstance(result, list):
        raise AnalysisError(f"query {promql}: returned a {kind or 'malformed result'}, not a number (an instant "
                            "vector of one series, or a scalar)")
    if not result:
        return None
    if len(result) > 1:
        labels = sorted(_labels(s) for s in result if isinstance(s, dict))
        shown = ", ".join(labels[:SHOWN_SERIES]) + (", …" if len(labels) > SHOWN_SERIES else "")
        raise AnalysisError(f"query {promql}: returned {len(result)} series ({shown}), not one: an analysis metric "
                            "is one number; aggregate it (sum, max, …) or narrow the selector")
    return _number(promql, result[0].get("value") if isinstance(result[0], dict) else None)


def without_credentials(url: str) -> str:
    """The URL as printed: user and password (if any) left out."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "(an invalid URL)"
    return str(parsed.copy_with(username=None, password=None)) if parsed.userinfo else url


def run_analysis(spec: AnalysisSpec, *, base_url: str, selector: str, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, out: TextIO = sys.stdout,
                 client: httpx.Client | None = None, deadline_note: str = "",
                 timeout_s: float = QUERY_TIMEOUT_S) -> AnalysisResult:
    """Measure every metric once per round for `spec.count` rounds and return the verdict (ops.analysis_plan).

    Prints a first line (what is measured where, and `deadline_note` when given: the caller's own deadline), one
    line per measurement as it is taken and the verdict. A round that comes late (slow queries) is taken at once,
    never skipped. `client` is used as given (and left open); without one, a client is made and closed here."""
    queries = [(metric, render_query(metric, selector)) for metric in spec.metrics]
    matchers = normalize_selector(selector)
    where = f"{matchers} at {without_credentials(base_url)}" if matchers else without_credentials(base_url)
    note = f"; {deadline_note}" if deadline_note else ""
    _say(out, f"analysis of {where}: {', '.join(m.name for m in spec.metrics)}, {spec.count} rounds every "
              f"{spec.interval_s:g}s, at most {spec.failure_limit} failed measurement(s) per metric{note}")
    own = client is None
    http = httpx.Client() if client is None else client
    measurements: list[Measurement] = []
    started = clock()
    try:
        for round_no in range(1, spec.count + 1):
            wait = started + round_no * spec.interval_s - clock()
            if wait > 0:
                sleep(wait)
            for metric, promql in queries:
                at = clock()
                try:
                    now = promql.replace(SINCE, since(at - started, spec.interval_s))
                    taken = judge(metric, query_scalar(http, base_url, now, timeout_s), at=at)
                except AnalysisError as exc:
                    taken = query_failed(metric, str(exc), at=at)
                measurements.append(taken)
                _say(out, progress_line(spec, measurements, round_no=round_no, started_at=started))
                result = fold(spec, measurements)
                if result is not None:
                    _say(out, render_result(result))
                    return result
    finally:
        if own:
            http.close()
    raise AssertionError("fold decides once every metric has count measurements")  # unreachable: fold's contract


def _say(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()
