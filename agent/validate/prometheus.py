"""Phase 4 (optional): ask Prometheus whether every scraped target is up and the 5xx rate is low.

Queries carry the label matchers of `--prom-selector` (e.g. `color="green"`), so one Prometheus can watch two
colors at once. Requests are counted by `http_requests_total` with a `status` label; no traffic at all counts
as an error rate of 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from agent.validate.checks import Check, NotYet, Seen, excerpt

REQUESTS_METRIC = "http_requests_total"
SERVER_ERRORS = 'status=~"5.."'
RATE_WINDOW = "1m"
# These checks judge the whole color, not one service: an empty service keeps a failed Prometheus check from
# being blamed on a compose service (the edge profile even has one named "prometheus").
NO_SERVICE = ""


def normalize_selector(selector: str) -> str:
    """Label matchers without surrounding braces: `{color="green"}` and `color="green"` are the same."""
    text = selector.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    return text


def with_matchers(metric: str, selector: str, extra: Sequence[str] = ()) -> str:
    matchers = [m for m in (normalize_selector(selector), *extra) if m]
    return f"{metric}{{{','.join(matchers)}}}" if matchers else metric


def up_query(selector: str) -> str:
    return with_matchers("up", selector)


def error_rate_queries(selector: str) -> tuple[str, str]:
    """(5xx requests per second, all requests per second) over the rate window."""
    errors = with_matchers(REQUESTS_METRIC, selector, (SERVER_ERRORS,))
    total = with_matchers(REQUESTS_METRIC, selector)
    return f"sum(rate({errors}[{RATE_WINDOW}]))", f"sum(rate({total}[{RATE_WINDOW}]))"


async def instant_query(client: httpx.AsyncClient, base: str, query: str) -> list[Mapping[str, Any]]:
    response = await client.get(f"{base.rstrip('/')}/api/v1/query", params={"query": query})
    try:
        body = response.json()
    except ValueError as exc:
        raise NotYet(f"query {query}: HTTP {response.status_code}: {excerpt(response.text)}") from exc
    if response.status_code != 200 or body.get("status") != "success":
        raise NotYet(f"query {query}: HTTP {response.status_code}: {body.get('error') or excerpt(response.text)}")
    result = body.get("data", {}).get("result")
    if not isinstance(result, list):
        raise NotYet(f"query {query}: expected an instant vector")
    return result


def sample_value(sample: Mapping[str, Any]) -> float:
    value = float(sample.get("value", [0, "NaN"])[1])
    return 0.0 if math.isnan(value) else value


def target_name(sample: Mapping[str, Any]) -> str:
    labels = sample.get("metric", {})
    return f"{labels.get('instance', '?')} (job {labels.get('job', '?')})"


def _targets(count: int) -> str:
    return f"{count} target" if count == 1 else f"{count} targets"


def up_check(client: httpx.AsyncClient, base: str, selector: str, expected: int) -> Check:
    query = up_query(selector)

    async def probe() -> Seen:
        samples = await instant_query(client, base, query)
        down = sorted(target_name(s) for s in samples if sample_value(s) < 1)
        data = {"targets": len(samples), "down": down, "expected": expected}
        if not samples:
            raise NotYet(f"no target matches {query}", data)
        if down:
            raise NotYet(f"{len(down)} of {len(samples)} targets down: {', '.join(down)}", data)
        if len(samples) < expected:
            raise NotYet(f"{_targets(len(samples))} up, expected at least {expected}", data)
        return Seen(f"{_targets(len(samples))} up (expected at least {expected})", data)

    return Check("prometheus/up", NO_SERVICE, "prometheus", f"{base} {query}", probe)


def error_rate_check(client: httpx.AsyncClient, base: str, selector: str, max_rate: float) -> Check:
    errors_query, total_query = error_rate_queries(selector)

    async def probe() -> Seen:
        errors = sum(sample_value(s) for s in await instant_query(client, base, errors_query))
        total = sum(sample_value(s) for s in await instant_query(client, base, total_query))
        rate = errors / total if total > 0 else 0.0
        data = {"error_rate": round(rate, 6), "errors_per_s": round(errors, 6), "requests_per_s": round(total, 6)}
        shown = f"error rate {rate:.4f} ({errors:.3f} 5xx/s of {total:.3f} req/s)"
        if rate > max_rate:
            raise NotYet(f"{shown} above the maximum {max_rate:g}", data)
        return Seen(f"{shown}, maximum {max_rate:g}", data)

    return Check("prometheus/error-rate", NO_SERVICE, "prometheus", f"{base} {errors_query}", probe)
