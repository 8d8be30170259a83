"""Phase 2 against real MCP servers built with the official `mcp` SDK, served by uvicorn on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import mcp_types
import pytest
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ops.catalog import load_catalog
from ops.report import CheckResult
from ops.validate import Options, validate
from tests.unit.validate_peers import UvicornPeer, resolved, service

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


def mcp_result(port: int, min_tools: str, deadline: float = 10.0, path: str = "/mcp") -> CheckResult:
    labels = {"devtools.check.mcp": path, "devtools.check.mcp.min-tools": min_tools}
    catalog = load_catalog(resolved({"gateway-mcp": service(port, labels, role="gateway")}))
    report = asyncio.run(validate(catalog, Options(timeout=2.0, deadline=deadline)))
    checks = {c.name: c for c in report.checks}
    assert checks["health/gateway-mcp"].passed
    return checks["mcp/gateway-mcp"]


def test_tool_discovery_passes_with_count_and_sorted_sample(mcp_peer: UvicornPeer):
    check = mcp_result(mcp_peer.port, "6")
    assert check.passed, check.detail
    assert check.attempts == 1
    assert check.data == {"tools": 7, "min_tools": 6, "sample": SAMPLE}
    assert check.detail == "7 tools (min 6): build, deploy, health_summary, lint, query_logs"
    assert check.target == f"POST http://127.0.0.1:{mcp_peer.port}/mcp tools/list"


def test_too_few_tools_fails_naming_count_and_minimum(mcp_peer: UvicornPeer):
    check = mcp_result(mcp_peer.port, "10", deadline=1.0)
    assert not check.passed
    assert check.detail == "7 tools, fewer than min-tools 10: build, deploy, health_summary, lint, query_logs"
    assert check.data == {"tools": 7, "min_tools": 10, "sample": SAMPLE}
    assert check.attempts >= 2


def test_pagination_follows_next_cursor():
    cursors: list[str | None] = []
    with UvicornPeer(paged_app(cursors)) as peer:
        check = mcp_result(peer.port, "7")
    assert check.passed, check.detail
    assert check.data == {"tools": 7, "min_tools": 7, "sample": SAMPLE}
    assert cursors == [None, "3", "6"]


def test_wrong_path_reports_the_http_status():
    with UvicornPeer(sdk_app(json_response=False, stateless_http=False)) as peer:
        check = mcp_result(peer.port, "1", deadline=0.5, path="/not-mcp")
    assert not check.passed
    assert check.detail == "initialize: HTTP 404: Not Found"
