"""The example gateway's MCP, for real: its image (built and pushed by ops.build) runs alone on a loopback port,
and both eras of the protocol are spoken to it — by hand, checking exact answers, and by the official SDK client.
The container runs in a UTF-8 locale, where a shell measuring bodies in characters would cut multi-byte ones.

Needs dockerd and the registry at REGISTRY_ADDR (see tests/e2e/conftest.py).
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from standin import localenv
from tests.e2e.conftest import build_release, dev_config

pytestmark = pytest.mark.e2e

ACCEPT = {"Accept": "application/json, text/event-stream"}
REVISION = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": REVISION, "io.modelcontextprotocol/clientCapabilities": {}}


@pytest.fixture(scope="module")
def min_tools() -> int:
    labels = dev_config()["services"]["gateway-mcp"]["labels"]
    return int(labels["devtools.check.mcp.min-tools"])


@pytest.fixture(scope="module")
def mcp_url(local_env: localenv.LocalEnv) -> Iterator[str]:
    pins = build_release(local_env, f"exmcp-{int(time.time())}", "--services", "gateway-mcp")
    name = f"example-mcp-{uuid.uuid4().hex[:8]}"
    run = subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "-e", "LANG=C.UTF-8", "-p", "127.0.0.1::8000",
                          pins["images"]["gateway-mcp"]], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    try:
        port = subprocess.run(["docker", "port", name, "8000/tcp"], capture_output=True, text=True, timeout=30,
                              check=True).stdout.split()[0].rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while _status(f"{base}/health") != 200:
            assert time.monotonic() < deadline, "the gateway did not answer /health within 20 s"
            time.sleep(0.2)
        yield f"{base}/mcp"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60, check=False)


def _status(target: str) -> int | None:
    try:
        return httpx.get(target, timeout=2, trust_env=False).status_code
    except httpx.HTTPError:
        return None


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5, trust_env=False) as client:
        yield client


def test_the_handshake_era(mcp_url: str, http: httpx.Client, min_tools: int) -> None:
    def call(message: dict[str, Any], mcp_id: str | None = None) -> httpx.Response:
        extra = {"Mcp-Session-Id": mcp_id} if mcp_id else {}
        return http.post(mcp_url, json={"jsonrpc": "2.0", **message}, headers={**ACCEPT, **extra})

    init = call({"id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}})
    assert init.status_code == 200
    assert init.headers["content-type"] == "application/json"
    mcp_id = init.headers["mcp-session-id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", mcp_id)
    result = init.json()["result"]
    assert init.json()["id"] == 1
    assert result["protocolVersion"] == "2025-03-26"
    assert result["capabilities"] == {"tools": {}}
    assert result["serverInfo"] == {"name": "gateway-mcp", "version": "1.0.0"}

    notified = call({"method": "notifications/initialized"}, mcp_id)
    assert (notified.status_code, notified.content) == (202, b"")

    listed = call({"id": "list-\"1\"", "method": "tools/list"}, mcp_id).json()
    assert listed["id"] == 'list-"1"'
    tools = listed["result"]["tools"]
    assert len(tools) >= min_tools >= 6
    for tool in tools:
        assert tool["name"] and tool["description"] and tool["inputSchema"]["type"] == "object", tool

    assert call({"id": 3, "method": "ping"}, mcp_id).json() == {"jsonrpc": "2.0", "id": 3, "result": {}}
    unknown = call({"id": 4, "method": "resources/list"}, mcp_id).json()
    assert (unknown["id"], unknown["error"]) == (4, {"code": -32601, "message": 'Method not found: "resources/list"'})
    # Content-Length counts bytes (the C locale, which the handler sets itself inside this UTF-8 container):
    # a name with a two-byte character comes back whole and parses.
    odd = call({"id": 6, "method": "tools/call", "params": {"name": 'café "x"'}}, mcp_id).json()
    assert odd["error"] == {"code": -32602, "message": 'Unknown tool: "café \\"x\\""'}
    called = call({"id": 5, "method": "tools/call", "params": {"name": tools[0]["name"],
                                                               "arguments": {"task": "x"}}}, mcp_id).json()
    assert called["result"]["isError"] is False
    assert called["result"]["content"][0]["text"].startswith(tools[0]["name"])


def per_request(http: httpx.Client, url: str, method: str, params: dict[str, Any], *, version: str = REVISION,
                header_method: str | None = None, notify: bool = False, **headers: str) -> httpx.Response:
    """One self-contained request (id 7) or notification of revision 2026-07-28 (or of `version`)."""
    meta = {**META, "io.modelcontextprotocol/protocolVersion": version}
    message = {"jsonrpc": "2.0", "method": method, "params": {**params, "_meta": meta}, **({} if notify else {"id": 7})}
    sent = {**ACCEPT, "MCP-Protocol-Version": version, "Mcp-Method": header_method or method, **headers}
    return http.post(url, json=message, headers=sent)


def test_the_per_request_era(mcp_url: str, http: httpx.Client, min_tools: int) -> None:
    listed = per_request(http, mcp_url, "tools/list", {})
    assert listed.status_code == 200 and "mcp-session-id" not in listed.headers
    result = listed.json()["result"]
    assert (result["resultType"], result["ttlMs"], result["cacheScope"]) == ("complete", 0, "private")
    assert len(result["tools"]) >= min_tools

    discovered = per_request(http, mcp_url, "server/discover", {}).json()["result"]
    assert discovered["supportedVersions"] == [REVISION]
    assert discovered["_meta"]["io.modelcontextprotocol/serverInfo"] == {"name": "gateway-mcp", "version": "1.0.0"}

    name = result["tools"][0]["name"]
    called = per_request(http, mcp_url, "tools/call", {"name": name, "arguments": {"task": "x"}}, **{"Mcp-Name": name})
    assert called.json()["result"]["resultType"] == "complete"
    assert called.json()["result"]["content"][0]["text"].startswith(name)

    notified = per_request(http, mcp_url, "notifications/cancelled", {}, notify=True)
    assert (notified.status_code, notified.content) == (202, b"")


@pytest.mark.parametrize(("kwargs", "status", "error"), [
    ({"version": "2027-01-01"}, 400, {"code": -32022, "message": "Unsupported protocol version",
                                      "data": {"supported": [REVISION], "requested": "2027-01-01"}}),
    ({"header_method": "tools/call"}, 400,
     {"code": -32020, "message": "Mcp-Method header does not match the request body's method"}),
    ({"method": "initialize"}, 404, {"code": -32601, "message": 'Method not found: "initialize"'}),
    ({"method": "tools/call", "params": {"name": "deploy"}, "Mcp-Name": "orchestrate"}, 400,
     {"code": -32020, "message": "Mcp-Name header does not match the request body's 'name' parameter"}),
])
def test_the_per_request_era_refuses_as_the_sdk_servers_do(mcp_url: str, http: httpx.Client, kwargs: dict[str, Any],
                                                            status: int, error: dict[str, Any]) -> None:
    method, params = kwargs.pop("method", "tools/list"), kwargs.pop("params", {})
    answer = per_request(http, mcp_url, method, params, **kwargs)
    assert (answer.status_code, answer.json()) == (status, {"jsonrpc": "2.0", "id": 7, "error": error})


def test_a_missing_envelope_is_refused(mcp_url: str, http: httpx.Client) -> None:
    message = {"jsonrpc": "2.0", "id": 8, "method": "tools/list", "params": {}}
    headers = {**ACCEPT, "MCP-Protocol-Version": REVISION, "Mcp-Method": "tools/list"}
    answer = http.post(mcp_url, json=message, headers=headers)
    assert answer.status_code == 400
    assert answer.json()["error"] == {"code": -32602, "message": "params._meta is missing the required envelope "
                                      "key(s): io.modelcontextprotocol/protocolVersion, "
                                      "io.modelcontextprotocol/clientCapabilities"}


@pytest.mark.parametrize(("mode", "version"), [("legacy", "2025-11-25"), ("auto", REVISION), (REVISION, REVISION)])
def test_the_official_sdk_client_in_each_mode(mcp_url: str, mode: str, version: str) -> None:
    from mcp.client.client import Client

    async def session() -> tuple[str, list[str], str]:
        async with Client(mcp_url, mode=mode) as client:
            listed = await client.list_tools()
            called = await client.call_tool("orchestrate", {"task": "x"})
            text = getattr(called.content[0], "text", "")
            return client.protocol_version, [tool.name for tool in listed.tools], text

    spoken, names, text = anyio.run(session)
    assert spoken == version
    assert len(names) >= 6 and "orchestrate" in names
    assert text.startswith("orchestrate accepted the task")
