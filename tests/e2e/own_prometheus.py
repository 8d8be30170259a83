"""A Prometheus of a test's own: Debian's /usr/bin/prometheus on a free loopback port, scraping the given
targets every second, so a test can ask the exact PromQL an analysis asks of what its containers serve."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

PROMETHEUS = Path("/usr/bin/prometheus")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def query(self, promql: str) -> list[Any]:
        result: list[Any] = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=2,
                                      trust_env=False).json()["data"]["result"]
        return result

    def wait_for(self, promql: str, ready: Callable[[list[Any]], bool], limit_s: float) -> list[Any]:
        """Polls an instant query until `ready(result)`; fails after `limit_s` or when prometheus exits."""
        until = time.monotonic() + limit_s
        last: object = None
        while time.monotonic() < until:
            if self.proc.poll() is not None:
                pytest.fail(f"prometheus exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                result = self.query(promql)
                if ready(result):
                    return result
                last = result
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                last = exc
            time.sleep(0.25)
        pytest.fail(f"prometheus: {promql} not ready within {limit_s}s; last: {last}")


@contextmanager
def scraping(home: Path, label: str, targets: Mapping[str, int]) -> Iterator[Prometheus]:
    """Prometheus scraping 127.0.0.1:<port> every second for each {value: port}, with `label`=value; stopped
    on exit. Ready when every target is up."""
    assert PROMETHEUS.exists(), f"{PROMETHEUS} is missing: apt-get install prometheus"
    config = {  # JSON is YAML
        "global": {"scrape_interval": "1s", "scrape_timeout": "800ms"},
        "scrape_configs": [{"job_name": "targets", "static_configs": [
            {"targets": [f"127.0.0.1:{port}"], "labels": {label: value}} for value, port in targets.items()]}],
    }
    (home / "prometheus.yml").write_text(json.dumps(config, indent=2))
    port = free_port()
    log = home / "prometheus.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(PROMETHEUS), f"--config.file={home / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={home / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=out, stderr=subprocess.STDOUT)
    prom = Prometheus(f"http://127.0.0.1:{port}", proc, log)
    try:
        prom.wait_for("up == 1", lambda r: len(r) == len(targets), 30)
        yield prom
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
