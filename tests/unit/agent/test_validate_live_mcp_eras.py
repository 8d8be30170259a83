"""Phase 2's two MCP eras against the official SDK's servers: per request (2026-07-28) first, the initialize
handshake when a server refuses the revision, and what does not count as a refusal."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.responses import JSONResponse, PlainTextResponse

from agent.validate import mcp as checks_mcp
from agent.validate.checks import NotYet
from agent.validate.mcp import PER_REQUEST_VERSION, PROTOCOL_VERSION
from tests.unit.agent.test_validate_live_mcp import Calls, mcp_result, paged_app, recording, sdk_app
from tests.unit.agent.validate_peers import UvicornPeer

pytestmark = pytest.mark.live  # real peers or processes (tests/unit/conftest.py)


def handshake_only(app: Any) -> Any:
    """`app` behind the answer an SDK 1.x server (the handshake era only) gives a version it does not know:
    HTTP 400 with a JSON-RPC error, before the request reaches the session."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        version = dict(scope["headers"]).get(b"mcp-protocol-version", b"").decode() if scope["type"] == "http" else ""
        if version and version not in HANDSHAKE_PROTOCOL_VERSIONS:
            message = f"Bad Request: Unsupported protocol version: {version}"
            body = {"jsonrpc": "2.0", "id": "server-error", "error": {"code": -32600, "message": message}}
            await JSONResponse(body, status_code=400)(scope, receive, send)
            return
        await app(scope, receive, send)

    return wrapped


def test_auto_asks_once_per_request_on_a_server_of_both_eras():
    seen: Calls = []
    with UvicornPeer(recording(sdk_app(json_response=True, stateless_http=False), seen)) as peer:
        check = mcp_result(peer.port, "6")
    assert check.passed, check.detail
    assert [s for s in seen if s[0] != "GET"] == [("POST", "", PER_REQUEST_VERSION, "tools/list")]


def test_auto_falls_back_to_the_handshake_on_a_server_that_refuses_the_revision():
    seen: Calls = []
    with UvicornPeer(recording(handshake_only(sdk_app(json_response=False, stateless_http=False)), seen)) as peer:
        check = mcp_result(peer.port, "6")
        refused = mcp_result(peer.port, "6", deadline=0.5, protocol="per-request")
    assert check.passed, check.detail
    assert check.data["protocol"] == PROTOCOL_VERSION
    calls = [(method, bool(sid), version, rpc) for method, sid, version, rpc in seen if method != "GET"]
    assert calls[:4] == [
        ("POST", False, PER_REQUEST_VERSION, "tools/list"),
        ("POST", False, "", ""),  # initialize
        ("POST", True, PROTOCOL_VERSION, ""),  # notifications/initialized
        ("POST", True, PROTOCOL_VERSION, ""),  # tools/list
    ]
    assert not refused.passed
    assert refused.detail == (
        "tools/list: HTTP 400, JSON-RPC error -32600: Bad Request: Unsupported protocol version: 2026-07-28"
    )


def test_a_refusal_is_told_in_the_servers_own_words():
    with UvicornPeer(sdk_app(json_response=True, stateless_http=True)) as peer:
        url = f"http://127.0.0.1:{peer.port}/mcp"

        async def ask() -> str:
            async with httpx.AsyncClient(trust_env=False) as client:
                mcp = checks_mcp.McpClient(client, url, per_request=True)
                mcp.headers["MCP-Protocol-Version"] = "2027-01-01"
                try:
                    await mcp.post("tools/list", {})
                except NotYet as exc:
                    return str(exc)
                return "answered"

        said = asyncio.run(ask())
    assert said == (
        "tools/list: HTTP 400, JSON-RPC error -32020: mcp-protocol-version header does not match the "
        "request envelope's protocol version"
    )


def failing_page(app: Any, cursor: str) -> Any:
    """`app`, answering HTTP 500 to the tools/list that asks for page `cursor`."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await app(scope, receive, send)
            return
        chunks = []
        while True:
            event = await receive()
            chunks.append(event.get("body", b""))
            if not event.get("more_body"):
                break
        body = b"".join(chunks)
        if json.loads(body).get("params", {}).get("cursor") == cursor:
            await PlainTextResponse("page lost", status_code=500)(scope, receive, send)
            return
        replayed = [{"type": "http.request", "body": body, "more_body": False}]

        async def replay() -> Any:
            return replayed.pop() if replayed else await receive()

        await app(scope, replay, send)

    return wrapped


def test_a_later_page_failing_is_not_taken_for_a_refusal_of_the_revision():
    seen: Calls = []
    with UvicornPeer(recording(failing_page(paged_app([]), "3"), seen)) as peer:
        check = mcp_result(peer.port, "7", deadline=0.5)
    assert not check.passed
    assert check.detail == "tools/list: HTTP 500: page lost"
    assert {rpc for method, _, _, rpc in seen if method == "POST"} == {"tools/list"}  # never an initialize
