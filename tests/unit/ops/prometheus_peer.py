"""Real loopback peers for the analysis tests: Debian's Prometheus (/usr/bin/prometheus) on a free 127.0.0.1 port
with its own temporary directory, scraping every second small HTTP servers whose metrics the test controls.

An `Exporter` serves what the example app exports, under the same names and labels: `http_requests_total{service,
code,status}`, `http_request_duration_seconds_bucket{service,le}` and `process_start_time_seconds{service}`, all
for service gateway-mcp. Each scrape advances the counters by `ok` 200s and `bad` 500s (a test changes `bad` to
make 5xx appear), so rates follow the scrapes rather than the wall clock. As in the app, the code="500" series
exists only from the first 5xx on.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

PROMETHEUS = Path("/usr/bin/prometheus")
SERVICE = 'service="gateway-mcp"'


class Exporter:
    """/metrics on 127.0.0.1 (a free port); every scrape adds `ok` 200s and `bad` 500s. Of the requests, 80%
    take at most 0.1 s and all at most 0.5 s, so the p95 is 0.4 s (histogram_quantile interpolates)."""

    def __init__(self, ok: int = 10, bad: int = 0, started_at: float = 1_700_000_000.0) -> None:
        self.ok, self.bad, self.started_at = ok, bad, started_at
        self.counts = {"200": 0}
        self.scrapes = 0
        self.lock = threading.Lock()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                data = exporter.scrape().encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def scrape(self) -> str:
        with self.lock:
            self.scrapes += 1
            self.counts["200"] += self.ok
            if self.bad:
                self.counts["500"] = self.counts.get("500", 0) + self.bad
            total = sum(self.counts.values())
            lines = ["# TYPE http_requests_total counter"]
            lines += [f'http_requests_total{{{SERVICE},code="{c}",status="{c}"}} {n}' for c, n in self.counts.items()]
            lines += ["# TYPE http_request_duration_seconds histogram"]
            lines += [f'http_request_duration_seconds_bucket{{{SERVICE},le="{le}"}} {n}'
                      for le, n in (("0.1", total * 8 // 10), ("0.5", total), ("+Inf", total))]
            lines += [f"http_request_duration_seconds_count{{{SERVICE}}} {total}",
                      "# TYPE process_start_time_seconds gauge",
                      f"process_start_time_seconds{{{SERVICE}}} {self.started_at}"]
            return "\n".join(lines) + "\n"

    def scraped(self) -> int:
        with self.lock:
            return self.scrapes

    def __enter__(self) -> Exporter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def result(self, query: str) -> list[Any]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": query}, timeout=2)
        return list(response.json()["data"]["result"])

    def wait_for(self, query: str, ready: Callable[[list[Any]], bool], limit_s: float) -> None:
        """Poll an instant query until `ready(result)` holds; fail after `limit_s` s or if Prometheus exits."""
        until, last = time.monotonic() + limit_s, None
        while time.monotonic() < until:
            if self.proc.poll() is not None:
                pytest.fail(f"prometheus exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                result = self.result(query)
                if ready(result):
                    return
                last = result
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                last = exc  # type: ignore[assignment]
            time.sleep(0.2)
        pytest.fail(f"prometheus: {query} not ready within {limit_s}s; last: {last}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@contextmanager
def prometheus(home: Path, targets: Mapping[str, int]) -> Iterator[Prometheus]:
    """Prometheus scraping 127.0.0.1:<port> of each case every second, its series labelled case="<case>"."""
    if not PROMETHEUS.exists():
        pytest.fail(f"{PROMETHEUS} is missing: apt-get install prometheus")
    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "500ms"},
              "scrape_configs": [{"job_name": case, "static_configs": [
                  {"targets": [f"127.0.0.1:{port}"], "labels": {"case": case}}]} for case, port in targets.items()]}
    (home / "prometheus.yml").write_text(json.dumps(config, indent=2))  # JSON is YAML
    port = free_port()
    argv = [str(PROMETHEUS), f"--config.file={home / 'prometheus.yml'}", f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}"]
    log = home / "prometheus.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    running = Prometheus(f"http://127.0.0.1:{port}", proc, log)
    try:
        yield running
    finally:
        running.stop()


def has_rates(running: Prometheus, case: str, limit_s: float = 20) -> None:
    """Wait until the case's request counters have two samples or more: rate() answers (0 when idle)."""
    running.wait_for(f'count_over_time(http_requests_total{{case="{case}",code="200"}}[1m]) >= 2',
                     lambda r: len(r) == 1, limit_s)
