"""Phase 4 against the real Prometheus (Debian's /usr/bin/prometheus) scraping loopback servers every second.

Targets, by `color` label: two green servers with idle counters (no traffic: error rate 0), one red server whose
counters grow by ten 200s and five 500s per scrape (error rate 1/3), one blue target on a closed port (down).
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from agent.validate.catalog import load_catalog
from agent.validate.report import CheckResult
from agent.validate.runner import Options, validate
from tests.prometheus_process import free_port, job, started
from tests.unit.agent.validate_peers import PeerServer, Route, resolved, service

pytestmark = pytest.mark.live  # real peers or processes (tests/unit/conftest.py)

IDLE = '# TYPE http_requests_total counter\nhttp_requests_total{status="200"} 5\n'
METRICS = {"devtools.metrics": "/metrics"}


def busy_counters() -> Iterator[str]:
    for n in itertools.count(1):
        yield (
            "# TYPE http_requests_total counter\n"
            f'http_requests_total{{status="200"}} {10 * n}\nhttp_requests_total{{status="500"}} {5 * n}\n'
        )


@dataclass
class Stand:
    url: str
    green: list[PeerServer]
    red: PeerServer
    blue_port: int


@pytest.fixture(scope="module")
def stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stand]:
    counters = busy_counters()
    home = tmp_path_factory.mktemp("prometheus")
    with (
        PeerServer({"/health": Route(), "/metrics": Route(body=IDLE)}) as g1,
        PeerServer({"/health": Route(), "/metrics": Route(body=IDLE)}) as g2,
        PeerServer({"/health": Route(), "/metrics": Route(body=lambda: next(counters))}) as red,
    ):
        blue_port = free_port()
        jobs = {"green": [g1.port, g2.port], "red": [red.port], "blue": [blue_port]}
        with started(home, [job(name, [(ports, {"color": name})]) for name, ports in jobs.items()]) as running:
            running.wait_for('up{color="green"} == 1', lambda r: len(r) == 2, 30)
            running.wait_for('up{color="blue"}', lambda r: len(r) == 1, 10)
            running.wait_for('rate(http_requests_total{color="red",status="500"}[1m]) > 0', lambda r: len(r) == 1, 10)
            yield Stand(url=running.url, green=[g1, g2], red=red, blue_port=blue_port)


def prom_checks(
    stand: Stand, servers: list[PeerServer], selector: str, deadline: float = 5.0, max_error_rate: float = 0.01
) -> dict[str, CheckResult]:
    services = {f"svc-{i}": service(s.port, METRICS, role="support") for i, s in enumerate(servers)}
    options = Options(
        timeout=2.0, deadline=deadline, prometheus=stand.url, prom_selector=selector, max_error_rate=max_error_rate
    )
    report = asyncio.run(validate(load_catalog(resolved(services)), options))
    return {c.name: c for c in report.checks}


def test_green_targets_up_and_idle_counters_count_as_no_errors(stand: Stand):
    checks = prom_checks(stand, stand.green, 'color="green"')
    assert all(c.passed for c in checks.values()), {n: c.detail for n, c in checks.items()}
    assert checks["prometheus/up"].detail == "2 targets up (expected at least 2)"
    assert checks["prometheus/up"].target == f'{stand.url} up{{color="green"}}'
    assert checks["prometheus/up"].service == ""  # a failure here is not blamed on one compose service
    assert checks["prometheus/error-rate"].detail == "error rate 0.0000 (0.000 5xx/s of 0.000 req/s), maximum 0.01"


def test_a_target_on_a_closed_port_fails_naming_it(stand: Stand):
    checks = prom_checks(stand, stand.green, 'color="blue"', deadline=1.0)
    up = checks["prometheus/up"]
    assert not up.passed
    assert up.detail == f"1 of 1 targets down: 127.0.0.1:{stand.blue_port} (job blue)"
    assert up.data == {"targets": 1, "down": [f"127.0.0.1:{stand.blue_port} (job blue)"], "expected": 2}


def test_without_a_selector_every_color_counts(stand: Stand):
    checks = prom_checks(stand, stand.green, "", deadline=1.0)
    assert checks["prometheus/up"].detail == f"1 of 4 targets down: 127.0.0.1:{stand.blue_port} (job blue)"
    assert checks["prometheus/up"].target == f"{stand.url} up"


def test_too_few_targets_fails(stand: Stand):
    checks = prom_checks(stand, stand.green, 'color="red"', deadline=1.0)
    assert checks["prometheus/up"].detail == "1 target up, expected at least 2"


def test_error_rate_above_the_maximum_fails(stand: Stand):
    checks = prom_checks(stand, [stand.red], 'color="red"', deadline=1.0)
    assert checks["prometheus/up"].passed
    rate = checks["prometheus/error-rate"]
    assert not rate.passed
    assert rate.data["error_rate"] == pytest.approx(1 / 3, abs=0.01)
    assert re.fullmatch(
        r"error rate 0\.3\d{3} \(\d+\.\d{3} 5xx/s of \d+\.\d{3} req/s\) above the maximum 0\.01", rate.detail
    ), rate.detail
    relaxed = prom_checks(stand, [stand.red], 'color="red"', max_error_rate=0.5)
    assert relaxed["prometheus/error-rate"].passed, relaxed["prometheus/error-rate"].detail


def test_an_unknown_selector_matches_no_target(stand: Stand):
    checks = prom_checks(stand, stand.green, 'color="purple"', deadline=0.5)
    assert checks["prometheus/up"].detail == 'no target matches up{color="purple"}'
    assert checks["prometheus/error-rate"].passed  # no traffic at all counts as an error rate of 0
