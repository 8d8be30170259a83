"""Phase 1 (health) and phase 3 (end-to-end probe) checks: plain HTTP against each service's published port."""

from __future__ import annotations

import time

import httpx

from agent.validate.catalog import Service
from agent.validate.checks import Check, NotYet, Seen, excerpt

BODY_METHODS = ("POST", "PUT", "PATCH")


def base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}"


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def status_text(status: int, text: str) -> str:
    shown = excerpt(text)
    return f"HTTP {status}: {shown}" if shown else f"HTTP {status}"


def health_check(client: httpx.AsyncClient, host: str, service: Service) -> Check:
    url = base_url(host, service.health.host_port) + service.health.path

    async def probe() -> Seen:
        started = time.monotonic()
        response = await client.get(url)
        if response.status_code != 200:
            raise NotYet(f"HTTP {response.status_code}", {"status": response.status_code})
        return Seen(f"HTTP 200 in {_ms(started)} ms", {"status": 200})

    return Check(f"health/{service.name}", service.name, "health", f"GET {url}", probe)


def e2e_check(client: httpx.AsyncClient, host: str, service: Service) -> Check:
    e2e = service.e2e
    if e2e is None:
        raise ValueError(f"service {service.name} has no end-to-end probe")
    url = base_url(host, service.health.host_port) + e2e.path
    body = e2e.body.encode() if e2e.method in BODY_METHODS else None
    headers = {"Content-Type": "application/json"} if body is not None else {}

    async def probe() -> Seen:
        started = time.monotonic()
        response = await client.request(e2e.method, url, content=body, headers=headers)
        text = response.text
        if response.status_code != 200:
            raise NotYet(status_text(response.status_code, text), {"status": response.status_code})
        if e2e.expect not in text:
            raise NotYet(f"HTTP 200 without {e2e.expect}: {excerpt(text) or '(empty body)'}", {"status": 200})
        return Seen(f"HTTP 200 with {e2e.expect} in {_ms(started)} ms", {"status": 200})

    return Check(f"e2e/{service.name}", service.name, "e2e", f"{e2e.method} {url}", probe)
