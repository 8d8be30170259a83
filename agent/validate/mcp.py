"""Phase 2: MCP tool discovery over streamable HTTP, spoken as plain JSON-RPC (no SDK on the host).

Two eras of the protocol, chosen by the service's devtools.check.mcp.protocol label:
- per request (revision 2026-07-28): tools/list is one self-contained POST; the protocol version and client
  capabilities ride in params._meta and the MCP-Protocol-Version / Mcp-Method headers. No session.
- handshake (the revisions before it): initialize → notifications/initialized → tools/list, then DELETE; the
  Mcp-Session-Id header and the negotiated version go back on every later request.
"auto" (the default) asks per request first and falls back to the handshake when that is refused (any answer
but a result; a connection error is retried, not taken as an answer), as the SDK's clients negotiate. Each POST
accepts either a JSON body or an SSE stream; tools/list follows nextCursor.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import httpx

from agent.validate.catalog import Service
from agent.validate.checks import Check, NotYet, Seen, excerpt
from agent.validate.http import base_url, status_text

PROTOCOL_VERSION = "2025-06-18"  # offered in initialize
PER_REQUEST_VERSION = "2026-07-28"
CLIENT_INFO = {"name": "devtools-validate", "version": "1"}
META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
META_CLIENT = "io.modelcontextprotocol/clientInfo"
ACCEPT = "application/json, text/event-stream"
SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
METHOD_HEADER = "Mcp-Method"
MAX_PAGES = 100
SAMPLE_SIZE = 5
SEND_DELETE_S = 1.0  # the longest the closing DELETE may take to send


def sse_data(text: str) -> list[str]:
    """The data of each event in an SSE stream (multi-line data joined by newlines)."""
    events: list[str] = []
    lines: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line:
            if lines:
                events.append("\n".join(lines))
            lines = []
        elif line.startswith("data:"):
            value = line[5:]
            lines.append(value[1:] if value.startswith(" ") else value)
    if lines:
        events.append("\n".join(lines))
    return events


def jsonrpc_messages(content_type: str, text: str) -> list[Any]:
    """Every JSON-RPC message in a response body, whether JSON (one message or a batch) or SSE."""
    if content_type.split(";", maxsplit=1)[0].strip().lower() == "text/event-stream":
        payloads = [json.loads(data) for data in sse_data(text) if data.strip()]
    else:
        payloads = [json.loads(text)]
    messages: list[Any] = []
    for payload in payloads:
        messages.extend(payload if isinstance(payload, list) else [payload])
    return messages


def pick_result(messages: list[Any], request_id: int, method: str) -> Mapping[str, Any]:
    """The result of request `request_id`; a JSON-RPC error or a missing answer raises NotYet."""
    for message in messages:
        if not isinstance(message, Mapping) or message.get("id") != request_id:
            continue
        error = message.get("error")
        if isinstance(error, Mapping):
            raise NotYet(f"{method}: JSON-RPC error {error.get('code')}: {error.get('message')}")
        result = message.get("result")
        if not isinstance(result, Mapping):
            raise NotYet(f"{method}: the answer has no result object")
        return result
    raise NotYet(f"{method}: no answer with id {request_id} in the response")


def refusal(method: str, status: int, text: str) -> str:
    """Why a non-2xx answer failed: its JSON-RPC error when the body is one, else the status and an excerpt."""
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, Mapping) and "message" in error:
        return f"{method}: HTTP {status}, JSON-RPC error {error.get('code')}: {error['message']}"
    return f"{method}: {status_text(status, text)}"


class McpClient:
    """One conversation with an MCP endpoint: per request (2026-07-28) or after the initialize handshake."""

    def __init__(self, client: httpx.AsyncClient, url: str, per_request: bool = False) -> None:
        self.client = client
        self.url = url
        self.per_request = per_request
        self.headers = {"Accept": ACCEPT, "Content-Type": "application/json"}
        if per_request:
            self.headers[VERSION_HEADER] = PER_REQUEST_VERSION
        self.next_id = 0

    @property
    def version(self) -> str:
        """The protocol revision spoken: sent on every request once known ("" before initialize answered)."""
        return self.headers.get(VERSION_HEADER, "")

    def message(self, method: str, params: Mapping[str, Any], notify: bool = False) -> dict[str, Any]:
        """The JSON-RPC message; per request, params carry the envelope in _meta."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": dict(params)}
        if self.per_request:
            meta = {META_VERSION: PER_REQUEST_VERSION, META_CAPABILITIES: {}, META_CLIENT: CLIENT_INFO}
            message["params"]["_meta"] = meta
        if not notify:
            self.next_id += 1
            message["id"] = self.next_id
        return message

    async def post(self, method: str, params: Mapping[str, Any], notify: bool = False) -> Mapping[str, Any]:
        headers = {**self.headers, METHOD_HEADER: method} if self.per_request else self.headers
        message = self.message(method, params, notify)
        response = await self.client.post(self.url, json=message, headers=headers)
        if notify:
            if response.status_code not in (200, 202, 204):
                raise NotYet(refusal(method, response.status_code, response.text))
            return {}
        if response.status_code != 200:
            raise NotYet(refusal(method, response.status_code, response.text))
        try:
            messages = jsonrpc_messages(response.headers.get("content-type", ""), response.text)
        except ValueError as exc:
            raise NotYet(f"{method}: unreadable response ({exc}): {excerpt(response.text)}") from exc
        result = pick_result(messages, self.next_id, method)
        if method == "initialize":
            sid = response.headers.get(SESSION_HEADER)
            if sid:
                self.headers[SESSION_HEADER] = sid
            self.headers[VERSION_HEADER] = str(result.get("protocolVersion") or PROTOCOL_VERSION)
        return result

    async def close(self) -> None:
        """Send DELETE with the Mcp-Session-Id so the server can free the session, without waiting for the answer.

        The answer changes nothing (a server may even refuse with 405), and on a distant host waiting for it
        would add a fourth round trip to the slowest check. Returns once the request is on the wire (the body
        sent, per httpcore's trace), or the answer came, or SEND_DELETE_S passed; then drops the connection.
        """
        if SESSION_HEADER not in self.headers:
            return
        sent = asyncio.Event()

        async def trace(event: str, info: Mapping[str, Any]) -> None:
            if event.endswith(".send_request_body.complete"):
                sent.set()

        request = asyncio.ensure_future(
            self.client.delete(self.url, headers=self.headers, timeout=SEND_DELETE_S, extensions={"trace": trace})
        )
        on_wire = asyncio.ensure_future(sent.wait())
        try:
            await asyncio.wait({request, on_wire}, timeout=SEND_DELETE_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (request, on_wire):
                task.cancel()
            await asyncio.gather(request, on_wire, return_exceptions=True)


async def tool_pages(mcp: McpClient) -> list[str]:
    """Every tool name, following nextCursor."""
    names: list[str] = []
    cursor: str | None = None
    seen_cursors: set[str] = set()
    for _ in range(MAX_PAGES):
        result = await mcp.post("tools/list", {"cursor": cursor} if cursor else {})
        tools = result.get("tools")
        if not isinstance(tools, list):
            raise NotYet("tools/list: the result has no tools list")
        names += [str(t.get("name")) for t in tools if isinstance(t, Mapping)]
        cursor = result.get("nextCursor") or None
        if cursor is None:
            return names
        if cursor in seen_cursors:
            raise NotYet(f"tools/list: nextCursor {cursor!r} repeats")
        seen_cursors.add(cursor)
    raise NotYet(f"tools/list: more than {MAX_PAGES} pages")


async def handshake_tool_names(client: httpx.AsyncClient, url: str) -> tuple[list[str], str]:
    """initialize, notifications/initialized, tools/list, DELETE. A cancelled attempt skips the DELETE."""
    mcp = McpClient(client, url)
    init = {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO}
    await mcp.post("initialize", init)
    try:
        await mcp.post("notifications/initialized", {}, notify=True)
        names = await tool_pages(mcp)
    except Exception:
        await mcp.close()
        raise
    await mcp.close()
    return names, mcp.version


async def list_tool_names(client: httpx.AsyncClient, url: str, protocol: str = "auto") -> tuple[list[str], str]:
    """Every tool name the MCP endpoint at `url` lists, and the protocol revision that listed them."""
    if protocol == "handshake":
        return await handshake_tool_names(client, url)
    mcp = McpClient(client, url, per_request=True)
    try:
        return await tool_pages(mcp), mcp.version
    except NotYet as refused:
        if protocol == "per-request" or mcp.next_id > 1:  # a later page failing is not a refusal of the era
            raise
        try:
            return await handshake_tool_names(client, url)
        except NotYet as exc:
            raise NotYet(f"{exc} (asked per request {PER_REQUEST_VERSION} first: {refused})", exc.data) from exc


def mcp_check(client: httpx.AsyncClient, host: str, service: Service) -> Check:
    spec = service.mcp
    if spec is None:
        raise ValueError(f"service {service.name} does not speak MCP")
    url = base_url(host, service.health.host_port) + spec.path

    async def probe() -> Seen:
        names, version = await list_tool_names(client, url, spec.protocol)
        sample = sorted(names)[:SAMPLE_SIZE]
        data = {"tools": len(names), "min_tools": spec.min_tools, "sample": sample, "protocol": version}
        if len(names) < spec.min_tools:
            raise NotYet(f"{len(names)} tools, fewer than min-tools {spec.min_tools}: {', '.join(sample)}", data)
        return Seen(f"{len(names)} tools (min {spec.min_tools}, MCP {version}): {', '.join(sample)}", data)

    return Check(f"mcp/{service.name}", service.name, "mcp", f"POST {url} tools/list", probe)
