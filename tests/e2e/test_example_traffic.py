"""The example gateway under traffic, for real: ops.build builds its plain image and the BROKEN=errors and
BROKEN=latency variants, each runs alone on a loopback port, and a Prometheus of the test's own (Debian's
/usr/bin/prometheus, scraping every second) reads their /metrics as the analysis of a release will:
`changes(process_start_time_seconds[5m])` and `histogram_quantile(0.95, … http_request_duration_seconds_bucket …)`.
The broken variants fail only under traffic: the host's validator (health, MCP tools/list) passes them.

Needs dockerd and the registry at REGISTRY_ADDR (see tests/e2e/conftest.py).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.validate.catalog import load_catalog
from agent.validate.runner import Options, validate
from standin import localenv
from tests.e2e.conftest import build_release, dev_config
from tests.e2e.own_prometheus import Prometheus, free_port, scraping

pytestmark = pytest.mark.e2e

PROMTOOL = Path("/usr/bin/promtool")
ACCEPT = {"Accept": "application/json, text/event-stream"}
REVISION = "2026-07-28"
ERRORS_EVERY = 2  # BROKEN=errors: tools/call number 2, 4, 6, … since the container started answers 500
LATENCY_S = 1.0  # BROKEN=latency: every tools/call answers after this long
VARIANTS = ("none", "errors", "latency")


@dataclass
class Gateway:
    variant: str
    name: str
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp(self) -> str:
        return f"{self.base}/mcp"


def _status(target: str) -> int | None:
    try:
        return httpx.get(target, timeout=2, trust_env=False).status_code
    except httpx.HTTPError:
        return None


def wait_healthy(gateway: Gateway, limit_s: float = 20) -> None:
    deadline = time.monotonic() + limit_s
    while _status(f"{gateway.base}/health") != 200:
        assert time.monotonic() < deadline, f"{gateway.name} did not answer /health within {limit_s:.0f}s"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def gateways(local_env: localenv.LocalEnv) -> Iterator[dict[str, Gateway]]:
    """The plain gateway and its two variants, each in a container of its own on 127.0.0.1:<free port>."""
    tag = f"extraffic-{int(time.time())}"
    images = {"none": build_release(local_env, tag, "--services", "gateway-mcp")["images"]["gateway-mcp"]}
    for variant in VARIANTS[1:]:
        pins = build_release(local_env, f"{tag}-{variant[0]}", "--services", "gateway-mcp",
                             "--broken", f"gateway-mcp={variant}")
        images[variant] = pins["images"]["gateway-mcp"]
    assert len(set(images.values())) == len(VARIANTS)
    running: dict[str, Gateway] = {}
    try:
        for variant, image in images.items():
            gateway = Gateway(variant, f"extraffic-{variant}-{uuid.uuid4().hex[:8]}", free_port())
            run = subprocess.run(["docker", "run", "-d", "--name", gateway.name, "-p", f"127.0.0.1:{gateway.port}:8000",
                                  image], capture_output=True, text=True, timeout=120, check=False)
            assert run.returncode == 0, run.stderr
            running[variant] = gateway
        for gateway in running.values():
            wait_healthy(gateway)
        yield running
    finally:
        for gateway in running.values():
            subprocess.run(["docker", "rm", "-f", gateway.name], capture_output=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def prometheus(gateways: dict[str, Gateway], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A Prometheus of the test's own scraping the three gateways every second, labelled by variant."""
    with scraping(tmp_path_factory.mktemp("prometheus"), "variant", {v: g.port for v, g in gateways.items()}) as prom:
        yield prom


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, trust_env=False) as client:
        yield client


def rpc(http: httpx.Client, gateway: Gateway, method: str, params: dict[str, Any] | None = None,
        ident: int | str = 1) -> httpx.Response:
    """One JSON-RPC request of the handshake era (no MCP-Protocol-Version header)."""
    return http.post(gateway.mcp, json={"jsonrpc": "2.0", "id": ident, "method": method, "params": params or {}},
                     headers=ACCEPT)


def per_request(http: httpx.Client, gateway: Gateway, method: str, params: dict[str, Any],
                **headers: str) -> httpx.Response:
    """One self-contained request of revision 2026-07-28."""
    meta = {"io.modelcontextprotocol/protocolVersion": REVISION, "io.modelcontextprotocol/clientCapabilities": {}}
    return http.post(gateway.mcp, json={"jsonrpc": "2.0", "id": 7, "method": method,
                                        "params": {**params, "_meta": meta}},
                     headers={**ACCEPT, "MCP-Protocol-Version": REVISION, "Mcp-Method": method, **headers})


def call_tool(http: httpx.Client, gateway: Gateway, ident: int, era: str = "handshake") -> httpx.Response:
    params = {"name": "orchestrate", "arguments": {"task": f"task {ident}"}}
    if era == "handshake":
        return rpc(http, gateway, "tools/call", params, ident)
    return per_request(http, gateway, "tools/call", params, **{"Mcp-Name": "orchestrate"})


def samples(http: httpx.Client, gateway: Gateway) -> dict[str, float]:
    """The gateway's /metrics as {'name{labels}': value}, after promtool has checked the exposition format."""
    text = http.get(f"{gateway.base}/metrics").text
    lint = subprocess.run([str(PROMTOOL), "check", "metrics"], input=text, capture_output=True, text=True,
                          timeout=30, check=False)
    assert lint.returncode == 0, f"promtool check metrics:\n{lint.stdout}{lint.stderr}\n{text}"
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+(?:\{[^}]*\})?) (\S+)", line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def bucket(found: dict[str, float], le: str) -> float:
    return found[f'http_request_duration_seconds_bucket{{service="gateway-mcp",le="{le}"}}']


def test_the_errors_variant_fails_every_second_tool_call_and_passes_validation(
        gateways: dict[str, Gateway], http: httpx.Client) -> None:
    """BROKEN=errors: tools/call number 2, 4, 6, … (both eras count) answers HTTP 500 with a JSON-RPC internal
    error, the others succeed; /health, initialize, ping, tools/list and server/discover always do, so the
    host's validator (health, MCP tools/list) passes a release that fails half its users' calls. The risk: a
    variant that also failed validation would never reach the traffic the analysis must judge."""
    gateway = gateways["errors"]
    statuses = []
    for ident in range(1, 13):
        answer = call_tool(http, gateway, ident, "handshake" if ident <= 8 else "per-request")
        statuses.append(answer.status_code)
        body = answer.json()
        if answer.status_code == 500:
            assert answer.headers["content-type"] == "application/json"
            assert body["jsonrpc"] == "2.0" and body["id"] == (ident if ident <= 8 else 7)
            assert body["error"] == {"code": -32603, "message": "Internal error: deliberately broken image "
                                     f"(BROKEN=errors fails one tools/call in {ERRORS_EVERY}): call {ident}"}
        else:
            assert body["result"]["isError"] is False, body
            assert body["result"]["content"][0]["text"].startswith("orchestrate accepted the task")
        health = http.get(f"{gateway.base}/health")
        assert (health.status_code, health.json()["status"]) == (200, "healthy")
        listed = rpc(http, gateway, "tools/list", ident=f"list-{ident}")
        assert listed.status_code == 200 and len(listed.json()["result"]["tools"]) >= 6
    assert statuses == [200, 500] * 6
    init = rpc(http, gateway, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                             "clientInfo": {"name": "t", "version": "1"}})
    assert init.status_code == 200 and init.json()["result"]["protocolVersion"] == "2025-06-18"
    assert rpc(http, gateway, "ping").json() == {"jsonrpc": "2.0", "id": 1, "result": {}}
    assert per_request(http, gateway, "server/discover", {}).status_code == 200
    assert samples(http, gateway)['http_requests_total{service="gateway-mcp",code="500",status="500"}'] == 6

    config = dev_config()["services"]["gateway-mcp"]
    resolved = {"name": "extraffic", "services": {"gateway-mcp": {
        "image": "127.0.0.1:5000/devtools/gateway-mcp@sha256:" + "0" * 64, "labels": config["labels"],
        "ports": [{"mode": "ingress", "host_ip": "127.0.0.1", "target": 8000, "published": str(gateway.port),
                   "protocol": "tcp"}]}}}
    report = asyncio.run(validate(load_catalog(resolved), Options(timeout=5, deadline=30)))
    assert report.passed, [(c.name, c.detail) for c in report.checks]
    assert sorted(c.phase for c in report.checks) == ["health", "mcp"]


def test_the_latency_variant_delays_every_tool_call_but_not_health(gateways: dict[str, Gateway],
                                                                 http: httpx.Client) -> None:
    """BROKEN=latency: every tools/call answers correctly after at least LATENCY_S; /health, asked while calls
    are waiting, answers in well under it, and so do tools/list and ping. The risk: a variant slow everywhere
    would fail its health probes and never reach users, so the analysis of latency would have nothing to see."""
    gateway = gateways["latency"]
    with ThreadPoolExecutor(max_workers=3) as pool:
        def timed_call(ident: int) -> tuple[float, httpx.Response]:
            started = time.monotonic()
            answer = call_tool(http, gateway, ident, "handshake" if ident % 2 else "per-request")
            return time.monotonic() - started, answer

        calls = [pool.submit(timed_call, i) for i in range(1, 4)]
        time.sleep(0.2)
        health_s = []
        for _ in range(5):
            started = time.monotonic()
            assert http.get(f"{gateway.base}/health").status_code == 200
            health_s.append(time.monotonic() - started)
        assert not any(c.done() for c in calls), "a delayed tools/call answered while /health was asked"
        for future in calls:
            took, answer = future.result()
            assert answer.status_code == 200 and answer.json()["result"]["isError"] is False, answer.text
            assert took >= LATENCY_S, took
    assert max(health_s) < LATENCY_S / 4, health_s
    for method in ("tools/list", "ping"):
        started = time.monotonic()
        assert rpc(http, gateway, method).status_code == 200
        assert time.monotonic() - started < LATENCY_S / 2, method


def test_the_duration_histogram_counts_every_mcp_request(gateways: dict[str, Gateway], http: httpx.Client) -> None:
    """http_request_duration_seconds counts each POST /mcp once, whatever its answer (a 400 too), in cumulative
    buckets, the plain gateway's under 1 s; GET routes (/health, /metrics) are not in it. The risk: requests
    counted twice, or not at all, would skew the quantiles the analysis of a release reads."""
    gateway = gateways["none"]
    before = samples(http, gateway)
    for ident in range(1, 6):
        assert call_tool(http, gateway, ident).status_code == 200
    assert rpc(http, gateway, "tools/list").status_code == 200
    assert http.post(gateway.mcp, content=b"{not json", headers=ACCEPT).status_code == 400
    for _ in range(3):
        assert http.get(f"{gateway.base}/health").status_code == 200
    after = samples(http, gateway)
    count = 'http_request_duration_seconds_count{service="gateway-mcp"}'
    assert after[count] - before[count] == 7
    assert bucket(after, "+Inf") == after[count]
    assert bucket(after, "1") - bucket(before, "1") == 7
    bounds = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"]
    assert [bucket(after, le) for le in bounds] == sorted(bucket(after, le) for le in bounds)
    assert after['http_request_duration_seconds_sum{service="gateway-mcp"}'] >= \
        before['http_request_duration_seconds_sum{service="gateway-mcp"}']


def test_prometheus_sees_the_latency_variant_at_p95_over_its_delay(gateways: dict[str, Gateway],
                                                                   prometheus: Prometheus,
                                                                   http: httpx.Client) -> None:
    """The analysis' query, histogram_quantile(0.95, sum by (le) (rate(…_bucket[1m]))), puts the latency variant
    at or above LATENCY_S and the plain gateway, under the same calls, below it. The risk: a slow release that
    the query cannot tell from a good one."""
    with ThreadPoolExecutor(max_workers=6) as pool:
        for variant in ("latency", "none"):
            answers = list(pool.map(lambda i, g=gateways[variant]: call_tool(http, g, i), range(1, 7)))
            assert [a.status_code for a in answers] == [200] * 6
    query = ('histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{{variant="{}"}}[1m])))')
    slow = prometheus.wait_for(query.format("latency"), lambda r: len(r) == 1 and r[0]["value"][1] != "NaN", 20)
    assert float(slow[0]["value"][1]) >= LATENCY_S, slow
    fast = prometheus.wait_for(query.format("none"), lambda r: len(r) == 1 and r[0]["value"][1] != "NaN", 20)
    assert float(fast[0]["value"][1]) < LATENCY_S, fast


def test_a_restart_changes_process_start_time(gateways: dict[str, Gateway], prometheus: Prometheus,
                                              http: httpx.Client) -> None:
    """process_start_time_seconds is when the server started (unix time): a container restart gives a later one,
    and changes(process_start_time_seconds[5m]) counts that restart. The risk: a container that restarts
    between two scrapes looks healthy to every other metric."""
    gateway = gateways["none"]
    series = 'process_start_time_seconds{variant="none"}'
    key = 'process_start_time_seconds{service="gateway-mcp"}'
    first = samples(http, gateway)[key]
    assert abs(first - time.time()) < 600, first
    prometheus.wait_for(series, lambda r: len(r) == 1 and float(r[0]["value"][1]) == first, 15)
    assert prometheus.query(f"changes({series}[5m])")[0]["value"][1] == "0"
    restart = subprocess.run(["docker", "restart", "--time", "5", gateway.name], capture_output=True, text=True,
                             timeout=60, check=False)
    assert restart.returncode == 0, restart.stderr
    wait_healthy(gateway)
    second = samples(http, gateway)[key]
    assert first < second <= time.time() + 1
    prometheus.wait_for(f"changes({series}[5m])", lambda r: len(r) == 1 and r[0]["value"][1] == "1", 15)
