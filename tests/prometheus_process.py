"""A Prometheus of a test's own: Debian's /usr/bin/prometheus on a free loopback port with the scrape jobs the test
gives, stopped when the test is done. The validator's, the analysis's and the example app's live tests ask it the
exact PromQL the tool asks in production."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
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


def job(name: str, groups: Sequence[tuple[Sequence[int], Mapping[str, str]]]) -> dict[str, Any]:
    """A scrape job of loopback targets: each group is (ports, the labels its series get)."""
    return {"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports], "labels": dict(labels)}
                                                 for ports, labels in groups]}


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def query(self, promql: str) -> list[Any]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=2, trust_env=False)
        return list(response.json()["data"]["result"])

    def wait_for(self, promql: str, ready: Callable[[list[Any]], bool], limit_s: float) -> list[Any]:
        """Poll an instant query until `ready(result)` holds; fail after `limit_s` s or when Prometheus exits."""
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
            time.sleep(0.2)
        pytest.fail(f"prometheus: {promql} not ready within {limit_s}s; last: {last}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@contextmanager
def started(home: Path, jobs: Sequence[Mapping[str, Any]], scrape_timeout: str = "500ms",
            rule_files: Sequence[Path] = ()) -> Iterator[Prometheus]:
    """Prometheus scraping `jobs` every second and evaluating `rule_files` every second, its data and log under
    `home`; stopped on exit."""
    if not PROMETHEUS.exists():
        pytest.fail(f"{PROMETHEUS} is missing: apt-get install prometheus")
    config: dict[str, Any] = {"global": {"scrape_interval": "1s", "scrape_timeout": scrape_timeout,
                                         "evaluation_interval": "1s"}, "scrape_configs": list(jobs)}
    if rule_files:
        config["rule_files"] = [str(f) for f in rule_files]
    (home / "prometheus.yml").write_text(json.dumps(config, indent=2))  # JSON is YAML
    port = free_port()
    log = home / "prometheus.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(PROMETHEUS), f"--config.file={home / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={home / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=out, stderr=subprocess.STDOUT)
    running = Prometheus(f"http://127.0.0.1:{port}", proc, log)
    try:
        yield running
    finally:
        running.stop()
