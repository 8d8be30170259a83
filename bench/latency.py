"""Loopback stand-ins for the example application's services that answer every request after a fixed delay.

Each server answers the routes the validator checks the way examples/app does (GET /health, POST /e2e on
agents, POST /mcp on the gateway in both MCP eras: initialize / notifications / tools/list, and tools/list as one
self-contained request of revision 2026-07-28; DELETE /mcp → 405), after
`delay` seconds. Two models of that delay:

- per answer (`network=False`): every answer comes `delay` after its request, with `Connection: close` like
  the example app's busybox servers; opening a connection costs nothing, as on loopback.
- network round trip (`network=True`): a network whose round trip is `delay`. Every answer comes one round
  trip after its request, and the first answer on a new connection one more round trip later: the TCP
  handshake a real network charges before the request can leave. Connections stay open between requests
  (HTTP/1.1 keep-alive), as uvicorn-served applications keep them.

One thread per connection, so concurrent checks are not serialised by the server.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from agent.validate.mcp import (
    META_VERSION,
    METHOD_HEADER,
    PER_REQUEST_VERSION,
    PROTOCOL_VERSION,
    SESSION_HEADER,
    VERSION_HEADER,
)

ROOT = Path(__file__).resolve().parent.parent
TOOLS_JSON = ROOT / "examples" / "app" / "services" / "gateway-mcp" / "tools.json"
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")


@dataclass(frozen=True)
class Role:
    name: str
    e2e: bool  # answers POST /e2e
    mcp: bool  # answers POST /mcp


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    role: Role
    delay: float
    network: bool
    tools: list[Any]
    counter: itertools.count[int]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that left before its answer (the validator does not wait for its closing DELETE's) is
        normal here; anything else is printed as socketserver does."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    fresh = True  # no answer sent on this connection yet

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self, code: int, body: Mapping[str, Any] | None, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
        self.send_response(code)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if not self.server.network:
            self.send_header("Connection", "close")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _begin(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        next(self.server.counter)
        handshake = self.server.delay if self.fresh and self.server.network else 0.0
        self.fresh = False
        time.sleep(handshake + self.server.delay)
        return body

    def do_GET(self) -> None:
        self._begin()
        role = self.server.role
        if self.path == "/health":
            self._answer(200, {"status": "healthy", "service": role.name, "release": "bench"})
        elif self.path == "/mcp" and role.mcp:
            self._answer(405, {"error": "this server answers POST only"}, {"Allow": "POST"})
        else:
            self._answer(404, {"error": f"no route GET {self.path}", "service": role.name})

    def do_DELETE(self) -> None:
        self._begin()
        if self.path == "/mcp" and self.server.role.mcp:
            self._answer(405, {"error": "this server answers POST only"}, {"Allow": "POST"})
        else:
            self._answer(404, {"error": f"no route DELETE {self.path}"})

    def do_POST(self) -> None:
        body = self._begin()
        role = self.server.role
        if self.path == "/e2e" and role.e2e:
            self._answer(200, {"status": "ok", "agent": role.name, "version": "1.0.0", "release": "bench"})
        elif self.path == "/mcp" and role.mcp:
            self._mcp(body)
        else:
            self._answer(404, {"error": f"no route POST {self.path}", "service": role.name})

    def _mcp(self, body: bytes) -> None:
        try:
            message = json.loads(body)
        except ValueError:
            self._answer(400, {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}})
            return
        if "id" not in message:  # a notification
            self._answer(202, None)
            return
        rid, method = message["id"], message.get("method")
        version = self.headers.get(VERSION_HEADER)
        if version and version not in HANDSHAKE_VERSIONS:
            self._per_request(message, version)
        elif method == "initialize":
            version = message.get("params", {}).get("protocolVersion") or PROTOCOL_VERSION
            result: dict[str, Any] = {"protocolVersion": version, "capabilities": {"tools": {}},
                      "serverInfo": {"name": self.server.role.name, "version": "1.0.0"}}
            self._answer(200, {"jsonrpc": "2.0", "id": rid, "result": result}, {SESSION_HEADER: str(uuid.uuid4())})
        elif method == "tools/list":
            self._answer(200, {"jsonrpc": "2.0", "id": rid, "result": {"tools": self.server.tools}})
        else:
            error = {"code": -32601, "message": f"Method not found: {method}"}
            self._answer(200, {"jsonrpc": "2.0", "id": rid, "error": error})

    def _per_request(self, message: dict[str, Any], version: str) -> None:
        """Revision 2026-07-28 as examples/app/common/mcp.sh speaks it (envelope first, then the method)."""
        rid, method = message["id"], message.get("method")
        meta = (message.get("params") or {}).get("_meta") or {}
        if meta.get(META_VERSION) != version or self.headers.get(METHOD_HEADER) != method:
            error = {"code": -32020, "message": "the MCP headers do not match the request envelope"}
            self._answer(400, {"jsonrpc": "2.0", "id": rid, "error": error})
        elif version != PER_REQUEST_VERSION:
            error = {"code": -32022, "message": "Unsupported protocol version",
                     "data": {"supported": [PER_REQUEST_VERSION], "requested": version}}
            self._answer(400, {"jsonrpc": "2.0", "id": rid, "error": error})
        elif method == "tools/list":
            result = {"tools": self.server.tools, "resultType": "complete", "ttlMs": 0, "cacheScope": "private"}
            self._answer(200, {"jsonrpc": "2.0", "id": rid, "result": result})
        else:
            error = {"code": -32601, "message": f"Method not found: {method}"}
            self._answer(404, {"jsonrpc": "2.0", "id": rid, "error": error})


@dataclass
class Servers:
    ports: dict[str, int]  # service → port
    counter: itertools.count[int]

    def requests(self) -> int:
        """Requests answered so far, by all the servers together (reading it counts one more)."""
        return next(self.counter)


@contextmanager
def serving(roles: list[Role], delay: float, network: bool = False) -> Iterator[Servers]:
    """Start one server per role on 127.0.0.1 (a free port each); stops them on the way out."""
    tools = json.loads(TOOLS_JSON.read_text())
    servers: list[_Server] = []
    counter = itertools.count()
    try:
        for role in roles:
            server = _Server(("127.0.0.1", 0), _Handler)
            server.role, server.delay, server.tools, server.counter = role, delay, tools, counter
            server.network = network
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
            servers.append(server)
        yield Servers({s.role.name: int(s.server_address[1]) for s in servers}, counter)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
