"""The error-ratio objective end to end: the example gateway built BROKEN=errors (every second tools/call answers
500) runs on a loopback port under a bounded load; a Prometheus of the test's own scrapes it and evaluates the rule
file the program ships (components.slo.render_rules of the default targets). The fast-burn alert must fire for
that service and objective alone, and `ops.cli slo` against the same Prometheus must report the error-ratio target
missed (exit 1). Real parts only: dockerd, the registry, Debian's prometheus, the CLI as an operator runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from components.slo import SloSpec, render_rules
from standin import localenv
from tests.e2e.conftest import ROOT, build_release
from tests.prometheus_process import Prometheus, free_port, job, started

pytestmark = pytest.mark.e2e

CALLS = 40  # tools/call requests of the load, half of them answered 500 by BROKEN=errors
PACE_S = 0.25  # between two calls: the load lasts about CALLS * PACE_S seconds
ACCEPT = {"Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def gateway(local_env: localenv.LocalEnv) -> Iterator[int]:
    """The BROKEN=errors gateway in a container of its own on 127.0.0.1:<port>; yields the port."""
    pins = build_release(local_env, f"sloerr-{int(time.time())}", "--services", "gateway-mcp",
                         "--broken", "gateway-mcp=errors")
    name, port = f"sloerr-{uuid.uuid4().hex[:8]}", free_port()
    run = subprocess.run(["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000",
                          pins["images"]["gateway-mcp"]], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    try:
        deadline = time.monotonic() + 30
        while not _healthy(port):
            assert time.monotonic() < deadline, f"{name} did not answer /health within 30s"
            time.sleep(0.2)
        yield port
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60, check=False)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def prometheus(gateway: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    home = tmp_path_factory.mktemp("slo-prometheus")
    rules = home / "slo-rules.yml"
    rules.write_text(render_rules(SloSpec()))
    with started(home, [job("devtools", [([gateway], {})])], rule_files=[rules]) as prom:
        prom.wait_for("up == 1", lambda r: len(r) == 1, 30)
        prom.wait_for("slo:objective:ratio", lambda r: len(r) == 4, 30)  # the rule file loaded, evaluated
        yield prom


def firing(prom: Prometheus) -> set[tuple[str, str, str, str]]:
    """(alertname, severity, slo, service) of every firing alert, from /api/v1/alerts."""
    alerts = httpx.get(f"{prom.url}/api/v1/alerts", timeout=5, trust_env=False).json()["data"]["alerts"]
    return {(a["labels"]["alertname"], a["labels"]["severity"], a["labels"]["slo"], a["labels"].get("service", ""))
            for a in alerts if a["state"] == "firing"}


def load(port: int) -> list[int]:
    """CALLS tools/call requests, PACE_S apart: their status codes."""
    codes = []
    with httpx.Client(timeout=10, trust_env=False) as http:
        for ident in range(1, CALLS + 1):
            body = {"jsonrpc": "2.0", "id": ident, "method": "tools/call",
                    "params": {"name": "orchestrate", "arguments": {"task": f"task {ident}"}}}
            codes.append(http.post(f"http://127.0.0.1:{port}/mcp", json=body, headers=ACCEPT).status_code)
            time.sleep(PACE_S)
    return codes


def slo_report(prom: Prometheus, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ops.cli", "slo", "--prometheus", prom.url, "--default-targets",
                           "--window", "10m", *args], capture_output=True, text=True, cwd=ROOT, timeout=60,
                          check=False)


def test_a_share_of_500s_fires_the_fast_burn_alert_and_misses_the_error_ratio_target(
        gateway: int, prometheus: Prometheus) -> None:
    """Rule: 5xx above 14.4 times the budget over both 1h and 5m pages (SLOErrorBudgetBurnFast), and the report
    over the same data says missed. Risk: an alert or a report that reads another definition of error ratio than
    the release gate does, and stays quiet while users fail."""
    assert firing(prometheus) == set(), "nothing may fire before the load"
    codes = load(gateway)
    assert codes.count(500) == CALLS // 2 and codes.count(200) == CALLS // 2, codes

    expected = {("SLOErrorBudgetBurnFast", "page", "error-ratio", "gateway-mcp"),
                ("SLOErrorBudgetBurnSlow", "ticket", "error-ratio", "gateway-mcp")}
    deadline = time.monotonic() + 60
    while (now := firing(prometheus)) != expected:
        assert time.monotonic() < deadline, f"firing {now}, expected {expected}"
        time.sleep(1)

    proc = slo_report(prometheus, "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    by_name = {o["name"]: o for o in doc["objectives"]}
    errors = by_name["error-ratio"]
    assert (doc["verdict"], errors["verdict"], errors["target"]) == ("missed", "missed", 0.99)
    [series] = errors["series"]
    assert series["key"] == "gateway-mcp" and series["verdict"] == "missed"
    # every answer counts (the scrapes' /metrics and the probes' /health too): at least the load's 20 failures
    assert series["bad"] == pytest.approx(CALLS // 2, rel=0.15) and series["total"] > CALLS
    assert series["budget_remaining"] < 0
    # nothing of the other objectives here: no data, never met or missed
    assert [by_name[n]["verdict"] for n in ("rollout-success", "pull-latency", "trace-coverage")] == ["no data"] * 3

    table = slo_report(prometheus)
    assert table.returncode == 1
    row = next(line for line in table.stdout.splitlines() if line.startswith("error-ratio"))
    assert row.split()[1:2] == ["service=gateway-mcp"] and "missed" in row and "exhausted" in row, table.stdout

