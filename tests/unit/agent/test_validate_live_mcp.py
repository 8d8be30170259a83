"""Phase 2 against real MCP servers built with the official `mcp` SDK, served by uvicorn on loopback."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import mcp_types
import pytest
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from agent.validate import mcp as checks_mcp
from agent.validate.catalog import load_catalog
from agent.validate.mcp import ACCEPT, PER_REQUEST_VERSION, PROTOCOL_VERSION
from agent.validate.report import CheckResult
from agent.validate.runner import Options, validate
from tests.unit.agent.validate_peers import UvicornPeer, resolved, service

pytestmark = pytest.mark.live  # real peers or processes (tests/unit/conftest.py)

TOOLS = ("zeta_report", "query_logs", "deploy", "search_docs", "lint", "build", "health_summary")
SAMPLE = ["build", "deploy", "health_summary", "lint", "query_logs"]
MODES = {
    "sse-stateful": {"json_response": False, "stateless_http": False},
    "json-stateful": {"json_response": True, "stateless_http": False},
    "json-stateless": {"json_response": True, "stateless_http": True},
    "sse-stateless": {"json_response": False, "stateless_http": True},
}


async def health(_: Request) -> Response:
    return PlainTextResponse("ok")


def sdk_app(json_response: bool, stateless_http: bool) -> Any:
    server: MCPServer[Any] = MCPServer("devtools-gateway-test")
    for name in TOOLS:

        def tool(text: str) -> str:
            return text

        server.add_tool(tool, name=name, description=f"{name} test tool")
    server.custom_route("/health", methods=["GET"])(health)
    return server.streamable_http_app(json_response=json_response, stateless_http=stateless_http)


def paged_app(cursors_seen: list[str | None]) -> Any:
    """A low-level SDK server that lists the tools three at a time, with nextCursor between pages."""

    async def list_tools(
        ctx: ServerRequestContext[Any], params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        cursor = params.cursor if params else None
        cursors_seen.append(cursor)
        start = int(cursor or 0)
        page = [mcp_types.Tool(name=n, input_schema={"type": "object"}) for n in TOOLS[start : start + 3]]
        more = start + 3 < len(TOOLS)
        return mcp_types.ListToolsResult(tools=page, next_cursor=str(start + 3) if more else None)

    server: Server[Any] = Server("devtools-paged-test", on_list_tools=list_tools)
    return server.streamable_http_app(custom_starlette_routes=[Route("/health", health)])


@pytest.fixture(scope="module", params=list(MODES))
def mcp_peer(request: pytest.FixtureRequest) -> Iterator[UvicornPeer]:
    with UvicornPeer(sdk_app(**MODES[request.param])) as peer:
        yield peer


def mcp_result(
    port: int, min_tools: str, deadline: float = 10.0, path: str = "/mcp", protocol: str = "auto"
) -> CheckResult:
    labels = {"devtools.check.mcp": path, "devtools.check.mcp.min-tools": min_tools}
    labels["devtools.check.mcp.protocol"] = protocol
    catalog = load_catalog(resolved({"gateway-mcp": service(port, labels, role="gateway")}))
    report = asyncio.run(validate(catalog, Options(timeout=2.0, deadline=deadline)))
    checks = {c.name: c for c in report.checks}
    assert checks["health/gateway-mcp"].passed
    return checks["mcp/gateway-mcp"]


@pytest.mark.parametrize(
    ("protocol", "version"),
    [("auto", PER_REQUEST_VERSION), ("per-request", PER_REQUEST_VERSION), ("handshake", PROTOCOL_VERSION)],
)
def test_tool_discovery_passes_with_count_and_sorted_sample(mcp_peer: UvicornPeer, protocol: str, version: str):
    check = mcp_result(mcp_peer.port, "6", protocol=protocol)
    assert check.passed, check.detail
    assert check.attempts == 1
    assert check.data == {"tools": 7, "min_tools": 6, "sample": SAMPLE, "protocol": version}
    assert check.detail == f"7 tools (min 6, MCP {version}): build, deploy, health_summary, lint, query_logs"
    assert check.target == f"POST http://127.0.0.1:{mcp_peer.port}/mcp tools/list"


def test_too_few_tools_fails_naming_count_and_minimum(mcp_peer: UvicornPeer):
    check = mcp_result(mcp_peer.port, "10", deadline=1.0)
    assert not check.passed
    assert check.detail == "7 tools, fewer than min-tools 10: build, deploy, health_summary, lint, query_logs"
    assert check.data == {"tools": 7, "min_tools": 10, "sample": SAMPLE, "protocol": PER_REQUEST_VERSION}
    assert check.attempts >= 2


@pytest.mark.parametrize("protocol", ["per-request", "handshake"])
def test_pagination_follows_next_cursor(protocol: str):
    cursors: list[str | None] = []
    with UvicornPeer(paged_app(cursors)) as peer:
        check = mcp_result(peer.port, "7", protocol=protocol)
    assert check.passed, check.detail
    assert check.data["sample"] == SAMPLE and check.data["tools"] == 7
    assert cursors == [None, "3", "6"]


def test_wrong_path_reports_the_http_status_of_both_eras():
    with UvicornPeer(sdk_app(json_response=False, stateless_http=False)) as peer:
        check = mcp_result(peer.port, "1", deadline=0.5, path="/not-mcp")
    assert not check.passed
    assert check.detail == (
        f"initialize: HTTP 404: Not Found (asked per request {PER_REQUEST_VERSION} first: "
        "tools/list: HTTP 404: Not Found)"
    )


Calls = list[tuple[str, str, str, str]]


def recording(app: Any, seen: Calls) -> Any:
    """`app`, recording the method, Mcp-Session-Id, MCP-Protocol-Version and Mcp-Method of every HTTP request."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k: v.decode() for k, v in scope["headers"]}
            keys = (b"mcp-session-id", b"mcp-protocol-version", b"mcp-method")
            seen.append((scope["method"], *(headers.get(k, "") for k in keys)))
        await app(scope, receive, send)

    return wrapped


@pytest.mark.parametrize("json_response", [True, False], ids=["json", "sse"])
def test_the_closing_delete_ends_the_session_on_the_sdk_server(json_response: bool):
    seen: Calls = []
    with UvicornPeer(recording(sdk_app(json_response=json_response, stateless_http=False), seen)) as peer:
        check = mcp_result(peer.port, "6", protocol="handshake")
        assert check.passed, check.detail
        limit = time.monotonic() + 5
        while not any(s[0] == "DELETE" for s in seen) and time.monotonic() < limit:
            time.sleep(0.02)
        mcp_calls = [(s[0], bool(s[1])) for s in seen if s[0] != "GET"]
        assert mcp_calls == [("POST", False), ("POST", True), ("POST", True), ("DELETE", True)]
        sid = seen[-1][1]
        headers = {"Accept": ACCEPT, "Mcp-Session-Id": sid, "MCP-Protocol-Version": PROTOCOL_VERSION}
        message = {"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": {}}
        after = httpx.post(f"http://127.0.0.1:{peer.port}/mcp", json=message, headers=headers, trust_env=False)
    assert after.status_code == 404, after.text


class HeldDelete(BaseHTTPRequestHandler):
    """Records a DELETE, then holds the answer until `release` is set (at most 30 s)."""

    received: ClassVar[list[str]] = []
    answered: ClassVar[list[str]] = []
    release = threading.Event()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_DELETE(self) -> None:
        sid = self.headers.get("Mcp-Session-Id", "")
        HeldDelete.received.append(sid)
        HeldDelete.release.wait(30)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        HeldDelete.answered.append(sid)


def test_close_returns_once_the_delete_is_sent_not_when_it_is_answered(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(checks_mcp, "SEND_DELETE_S", 60.0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), HeldDelete)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/mcp"

    async def close_session() -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            mcp = checks_mcp.McpClient(client, url)
            mcp.headers[checks_mcp.SESSION_HEADER] = "session-7"
            await mcp.close()
            await asyncio.sleep(0)

    try:
        asyncio.run(close_session())
        limit = time.monotonic() + 5
        while not HeldDelete.received and time.monotonic() < limit:
            time.sleep(0.02)
        assert HeldDelete.received == ["session-7"]
        assert HeldDelete.answered == []
    finally:
        HeldDelete.release.set()
        server.shutdown()
        server.server_close()


def test_close_without_a_session_sends_nothing():
    seen: Calls = []
    with UvicornPeer(recording(sdk_app(json_response=True, stateless_http=True), seen)) as peer:
        check = mcp_result(peer.port, "6", protocol="handshake")
    assert check.passed, check.detail
    assert [s[0] for s in seen if s[0] != "GET"] == ["POST", "POST", "POST"]
