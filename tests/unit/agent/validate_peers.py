"""Real loopback peers for the validator's tests: scripted HTTP servers and a uvicorn runner.

A `PeerServer` is a threading HTTP server on 127.0.0.1 with a free port; each path answers from a `Route`
(status sequence, latency, body, or a hang until the server stops).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import uvicorn

from agent.release import render_release_env
from tests.compose_services import SERVICES


def fake_pins(extra: str = "") -> str:
    """An env file of digest pins for every service of the compose file, as a release writes it."""
    digest = "sha256:" + "0123456789abcdef" * 4
    images = {s: f"127.0.0.1:5000/devtools/{s}@{digest}" for s in SERVICES}
    return render_release_env("fake", images, {}) + extra


@dataclass
class Route:
    statuses: list[int] = field(default_factory=lambda: [200])
    body: str | Callable[[], str] = "ok"
    latency_s: float = 0.0
    hang: bool = False
    content_type: str = "text/plain"
    # Answer only once every party of the barrier has a request waiting (500 if they do not within 5 s).
    together: threading.Barrier | None = None


class PeerServer:
    """A loopback HTTP server answering from `routes`; records every request as (method, path, body)."""

    def __init__(self, routes: Mapping[str, Route]) -> None:
        self.routes = dict(routes)
        self.requests: list[tuple[str, str, str]] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                path = self.path.split("?", 1)[0]
                with peer.lock:
                    peer.requests.append((self.command, path, body))
                    hits = sum(1 for r in peer.requests if r[1] == path)
                route = peer.routes.get(path)
                if route is None:
                    self.reply(404, "not found", "text/plain")
                    return
                if route.hang:
                    peer.stopping.wait(30)
                    return
                if route.latency_s:
                    time.sleep(route.latency_s)
                if route.together is not None:
                    try:
                        route.together.wait(timeout=5)
                    except threading.BrokenBarrierError:
                        self.reply(500, "not every request arrived together", "text/plain")
                        return
                status = route.statuses[min(hits, len(route.statuses)) - 1]
                text = route.body() if callable(route.body) else route.body
                self.reply(status, text, route.content_type)

            def reply(self, status: int, text: str, content_type: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def hits(self, path: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r[1] == path)

    def __enter__(self) -> PeerServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class UvicornPeer:
    """An ASGI app served by uvicorn in a thread on a free loopback port."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> UvicornPeer:
        self.thread.start()
        limit = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > limit or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start within 10 s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def service(
    port: int,
    labels: Mapping[str, str] | None = None,
    *,
    health: str = "/health",
    container_port: int = 8000,
    role: str = "agent",
) -> dict[str, Any]:
    """One service of a resolved compose config, published on `port`, with extra labels."""
    all_labels = {"devtools.role": role, "devtools.check.health": f"{container_port}{health}", **(labels or {})}
    return {
        "image": "127.0.0.1:5000/devtools/x@sha256:" + "0" * 64,
        "labels": all_labels,
        "ports": [
            {
                "mode": "ingress",
                "host_ip": "127.0.0.1",
                "target": container_port,
                "published": str(port),
                "protocol": "tcp",
            }
        ],
    }


E2E = {"devtools.check.e2e": "POST /e2e", "devtools.check.e2e.expect": '"status":"ok"'}


def resolved(services: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """A resolved compose config (the JSON of `docker compose config`) with the given services."""
    return {"name": "devtools", "services": dict(services)}
