"""Real loopback peers for the analysis tests: Debian's Prometheus (/usr/bin/prometheus) on a free 127.0.0.1 port
with its own temporary directory, scraping every second small HTTP servers whose metrics the test controls.

An `Exporter` serves what the example app exports, under the same names and labels: `http_requests_total{service,
code,status}`, `http_request_duration_seconds_bucket{service,le}` and `process_start_time_seconds{service}`, all
for service gateway-mcp. Each scrape advances the counters by `ok` 200s and `bad` 500s (a test changes `bad` to
make 5xx appear), so rates follow the scrapes rather than the wall clock. As in the app, the code="500" series
exists only from the first 5xx on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.prometheus_process import Prometheus, free_port, job, started

__all__ = ["Exporter", "Prometheus", "free_port", "has_rates", "prometheus"]

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


@contextmanager
def prometheus(home: Path, targets: Mapping[str, int]) -> Iterator[Prometheus]:
    """Prometheus scraping 127.0.0.1:<port> of each case every second, its series labelled case="<case>"."""
    with started(home, [job(case, [([port], {"case": case})]) for case, port in targets.items()]) as running:
        yield running


def has_rates(running: Prometheus, case: str, limit_s: float = 20) -> None:
    """Wait until the case's request counters have two samples or more: rate() answers (0 when idle)."""
    running.wait_for(f'count_over_time(http_requests_total{{case="{case}",code="200"}}[1m]) >= 2',
                     lambda r: len(r) == 1, limit_s)
