"""standin.lbctl against a real haproxy of its own (config from the same renderer) in front of two colors.

Each color is a small HTTP server on loopback answering /health and / with its name; /slow?<seconds> answers
late, to show that a flip lets in-flight requests finish.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from standin import lbctl

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as haproxy's server connections are reused

    def do_GET(self) -> None:
        if self.path.startswith("/slow?"):
            time.sleep(float(self.path.split("?", 1)[1]))
        body = self.server.color.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # haproxy resets idle keep-alive connections
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class ColorServer:
    def __init__(self, color: str) -> None:
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.color = color  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.running = False


@dataclass
class Lb:
    url: str
    socket: Path
    state_file: Path
    servers: dict[str, ColorServer]

    def flip(self, color: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "standin.lbctl", "flip", color, "--socket", str(self.socket)]
        argv += ["--state-file", str(self.state_file)]
        return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)

    def states(self) -> dict[str, lbctl.ServerState]:
        return lbctl.parse_servers_state(lbctl.runtime(self.socket, lbctl.SHOW_SERVERS_STATE))

    def colors(self, n: int) -> list[str]:
        """Who answered n requests, by body; haproxy's X-Served-By must name the same server."""
        with httpx.Client(timeout=5) as client:
            answers = [client.get(self.url + "/") for _ in range(n)]
        assert [r.headers.get("x-served-by") for r in answers] == [r.text for r in answers]
        return [r.text for r in answers]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def lb() -> Iterator[Lb]:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        pytest.fail("haproxy is not installed: run scripts/local-env.sh up")
    servers = {c: ColorServer(c) for c in lbctl.COLORS}
    work = Path(tempfile.mkdtemp(prefix="lbctl-"))  # short: unix socket paths are limited to 107 bytes
    port = _free_port()
    cfg = work / "haproxy.cfg"
    cfg.write_text(
        lbctl.render_config(
            bind=f"127.0.0.1:{port}",
            servers={c: f"127.0.0.1:{s.port}" for c, s in servers.items()},
            live="green",
            socket_path=work / "admin.sock",
            pidfile=work / "haproxy.pid",
        )
    )
    log = (work / "haproxy.log").open("w")
    proc = subprocess.Popen([haproxy, "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    try:
        env = Lb(f"http://127.0.0.1:{port}", work / "admin.sock", work / "live-color", servers)
        deadline = time.monotonic() + 15
        while True:
            try:
                if env.states()["green"].check_up and env.colors(1) == ["green"]:
                    break
            except (lbctl.LbError, httpx.HTTPError):
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"haproxy did not come up: {(work / 'haproxy.log').read_text()}")
            time.sleep(0.1)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        for s in servers.values():
            s.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_requests_follow_a_flip_and_in_flight_requests_finish(lb: Lb) -> None:
    assert lb.colors(5) == ["green"] * 5
    slow: list[httpx.Response] = []
    started = threading.Thread(target=lambda: slow.append(httpx.get(lb.url + "/slow?1.0", timeout=10)))
    started.start()
    time.sleep(0.2)  # the slow request is now on green
    t0 = time.monotonic()
    proc = lb.flip("blue")
    took = time.monotonic() - t0
    started.join()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "live color is now blue; green drained to maintenance"
    assert slow[0].status_code == 200 and slow[0].text == "green"  # drained, not cut
    assert took >= 0.5  # the flip waited for green's in-flight request before maintenance
    assert lb.colors(10) == ["blue"] * 10
    assert lb.state_file.read_text() == "blue\n"
    assert {n: s.admin for n, s in lb.states().items()} == {"green": "maint", "blue": "ready"}
    status = subprocess.run(
        [sys.executable, "-m", "standin.lbctl", "status", "--socket", str(lb.socket),
         "--state-file", str(lb.state_file)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert status.stdout.splitlines()[0] == "live: blue (state file: blue)"
    assert lb.flip("green").returncode == 0
    assert lb.colors(10) == ["green"] * 10
    assert lb.state_file.read_text() == "green\n"


def test_flip_to_a_color_that_is_down_is_refused(lb: Lb) -> None:
    lb.servers["blue"].stop()
    t0 = time.monotonic()
    proc = lb.flip("blue")
    assert proc.returncode == 1
    assert "refused: blue's health check is not UP" in proc.stderr
    assert time.monotonic() - t0 < 15
    assert lb.colors(10) == ["green"] * 10
    assert not lb.state_file.exists()  # nothing recorded
    assert {n: s.admin for n, s in lb.states().items()} == {"green": "ready", "blue": "maint"}


def test_flip_under_load_drops_no_request(lb: Lb) -> None:
    results: list[tuple[float, str]] = []  # (start time, body or error)
    stop = threading.Event()
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                t = time.monotonic()
                try:
                    r = client.get(lb.url + "/")
                    outcome = r.text if r.status_code == 200 else f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    outcome = f"error {exc!r}"
                with lock:
                    results.append((t, outcome))
                    if len(results) >= 2000:
                        stop.set()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    t_start = time.monotonic()
    for t in threads:
        t.start()
    while len(results) < 50 and time.monotonic() - t_start < 5:  # the load is running before the flip
        time.sleep(0.05)
    flip_started = time.monotonic()
    proc = lb.flip("blue")
    flipped_at = time.monotonic()
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(10)
    elapsed = time.monotonic() - t_start
    assert proc.returncode == 0, proc.stderr
    failed = [o for _, o in results if o not in ("green", "blue")]
    print(f"\nload during flip: {len(results)} requests in {elapsed:.1f}s, {len(failed)} failed")
    assert failed == []
    assert len(results) >= 200 and elapsed <= 10
    assert {o for t, o in results if t < flip_started} == {"green"}
    assert {o for t, o in results if t > flipped_at} == {"blue"}
