"""Phases 1 and 3 against real HTTP servers on loopback: concurrency, retries with backoff, hangs, deadlines."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from contextlib import ExitStack
from typing import Any

import pytest

from agent.validate.catalog import load_catalog
from agent.validate.report import CheckResult, Report
from agent.validate.runner import Options, validate
from tests.compose_services import SERVICES
from tests.unit.agent.validate_peers import E2E, PeerServer, Route, resolved, service

pytestmark = pytest.mark.live  # real peers or processes (tests/unit/conftest.py)

OK_E2E = Route(body='{"status":"ok","checked":["db"]}', content_type="application/json")


def run(services: dict[str, dict[str, Any]], timeout: float = 5.0, deadline: float = 10.0) -> Report:
    catalog = load_catalog(resolved(services))
    return asyncio.run(validate(catalog, Options(timeout=timeout, deadline=deadline)))


def by_name(report: Report) -> dict[str, CheckResult]:
    return {c.name: c for c in report.checks}


def test_checks_run_concurrently():
    """Every server answers only once all checks (the compose file's services' health, six of them with an
    e2e probe: 15 today) have a request waiting: run one after another, the first check would wait alone until
    the barrier broke and get a 500. No clock is read."""
    names = list(SERVICES)
    agents = names[1:7]
    checks = len(names) + len(agents)
    together = threading.Barrier(checks)
    health = Route(together=together)
    e2e = Route(body=OK_E2E.body, together=together)
    with ExitStack() as stack:
        peers = {n: stack.enter_context(PeerServer({"/health": health, "/e2e": e2e})) for n in names}
        services = {n: service(peers[n].port, E2E if n in agents else None) for n in names}
        report = run(services, timeout=8.0, deadline=10.0)
    assert report.passed, [c.detail for c in report.checks]
    assert len(report.checks) == checks
    assert all(c.attempts == 1 for c in report.checks)
    assert not together.broken
    for n in agents:
        assert ("POST", "/e2e", "{}") in peers[n].requests


def test_a_serial_caller_breaks_the_barrier():
    """The barrier above does catch one-at-a-time callers: a lone request gets the 500."""
    together = threading.Barrier(2)
    with PeerServer({"/health": Route(together=together)}) as peer:
        report = run({"cicd": service(peer.port)}, timeout=8.0, deadline=6.0)
    assert not report.passed
    assert "HTTP 500" in report.checks[0].detail


def test_503_twice_then_200_passes_on_the_third_attempt():
    with PeerServer({"/health": Route(statuses=[503, 503, 200])}) as peer:
        report = run({"orchestrator": service(peer.port)}, timeout=1.0, deadline=10.0)
        assert peer.hits("/health") == 3
    (check,) = report.checks
    assert (check.passed, check.attempts) == (True, 3)
    assert check.detail.startswith("HTTP 200 in ")
    assert 0.7 <= check.duration_s < 1.5  # backoff of 0.25 s then 0.5 s between the attempts


def test_a_hanging_service_fails_at_the_deadline_without_holding_up_others():
    with PeerServer({"/health": Route(hang=True)}) as stuck, PeerServer({"/health": Route()}) as fine:
        started = time.monotonic()
        report = run({"cicd": service(stuck.port), "documentation": service(fine.port)}, timeout=0.5, deadline=1.5)
        elapsed = time.monotonic() - started
    checks = by_name(report)
    hung = checks["health/cicd"]
    assert not hung.passed
    assert hung.detail.startswith("timed out after ")
    assert hung.attempts >= 2
    assert checks["health/documentation"].passed
    assert checks["health/documentation"].duration_s < 0.3
    assert not report.passed
    assert 1.0 < elapsed < 1.5 + 0.5


def test_e2e_reports_the_last_answer_seen():
    degraded = Route(body='{"status":"degraded"}', content_type="application/json")
    broken = Route(statuses=[500], body="boom")
    with PeerServer({"/health": Route(), "/e2e": degraded}) as a, PeerServer({"/health": Route(), "/e2e": broken}) as b:
        report = run({"orchestrator": service(a.port, E2E), "cicd": service(b.port, E2E)}, timeout=0.5, deadline=0.8)
    checks = by_name(report)
    assert checks["health/orchestrator"].passed and checks["health/cicd"].passed
    assert checks["e2e/orchestrator"].detail == 'HTTP 200 without "status":"ok": {"status":"degraded"}'
    assert checks["e2e/cicd"].detail == "HTTP 500: boom"
    assert checks["e2e/cicd"].data == {"status": 500}
    assert checks["e2e/cicd"].target == f"POST http://127.0.0.1:{b.port}/e2e"


def test_get_probe_sends_no_body_and_custom_body_is_sent():
    labels = {"devtools.check.e2e": "GET /ready", "devtools.check.e2e.expect": "ready"}
    posted = {**E2E, "devtools.check.e2e.body": json.dumps({"probe": True})}
    with (
        PeerServer({"/health": Route(), "/ready": Route(body="ready")}) as a,
        PeerServer({"/health": Route(), "/e2e": OK_E2E}) as b,
    ):
        report = run({"orchestrator": service(a.port, labels), "cicd": service(b.port, posted)}, deadline=5.0)
        assert ("GET", "/ready", "") in a.requests
        assert ("POST", "/e2e", '{"probe": true}') in b.requests
    assert report.passed


def test_a_closed_port_is_reported_as_refused():
    with PeerServer({}) as peer:
        port = peer.port
    report = run({"rag-context": service(port, role="support")}, timeout=0.5, deadline=0.4)
    (check,) = report.checks
    assert check.detail == "cannot connect: Connection refused"
    assert check.target == f"GET http://127.0.0.1:{port}/health"
