"""The Langfuse stand-in's API over loopback with httpx: ingestion (207 with successes and errors), the traces list
(tags all matching, time window, name, pagination), health, basic auth and where its keys come from."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from standin.langfuse import KeysUnavailable, load_keys, main, serve, write_key_file

pytestmark = pytest.mark.live  # real sockets (tests/unit/conftest.py)

KEYS = ("pk-lf-test", "sk-lf-test")


@pytest.fixture
def api() -> Iterator[httpx.Client]:
    servers = serve(["127.0.0.1"], 0, KEYS)
    url = f"http://127.0.0.1:{servers[0].server_address[1]}"
    with httpx.Client(base_url=url, auth=KEYS, timeout=5) as client:
        yield client
    for server in servers:
        server.shutdown()
        server.server_close()


def trace_event(event_id: str, tags: list[str], timestamp: str, name: str = "e2e-probe") -> dict[str, object]:
    return {"id": event_id, "timestamp": timestamp, "type": "trace-create",
            "body": {"id": f"trace-{event_id}", "timestamp": timestamp, "name": name, "tags": tags}}


def test_ingestion_answers_207_with_successes_and_errors(api: httpx.Client) -> None:
    batch = [trace_event("a", ["devtools-e2e", "agent:cicd"], "2026-01-01T00:00:00.000Z"),
             {"id": "b", "timestamp": "2026-01-01T00:00:00Z", "type": "nonsense", "body": {}},
             {"id": "c", "timestamp": "2026-01-01T00:00:00Z", "type": "span-create", "body": {"traceId": "x"}}]
    answer = api.post("/api/public/ingestion", json={"batch": batch})
    assert answer.status_code == 207
    body = answer.json()
    assert body["successes"] == [{"id": "a", "status": 201}, {"id": "c", "status": 201}]
    assert [(e["id"], e["status"]) for e in body["errors"]] == [("b", 400)]
    assert "nonsense" in body["errors"][0]["error"]


def test_a_body_without_a_batch_is_400(api: httpx.Client) -> None:
    assert api.post("/api/public/ingestion", json={"events": []}).status_code == 400
    assert api.post("/api/public/ingestion", content=b"not json").status_code == 400


def test_traces_are_listed_by_tags_all_matching_time_and_name(api: httpx.Client) -> None:
    api.post("/api/public/ingestion", json={"batch": [
        trace_event("1", ["devtools-e2e", "agent:cicd"], "2026-01-01T00:00:01Z"),
        trace_event("2", ["devtools-e2e", "agent:documentation"], "2026-01-01T00:00:02Z"),
        trace_event("3", ["agent:cicd"], "2026-01-01T00:00:03Z"),
        trace_event("4", ["devtools-e2e", "agent:cicd"], "2025-12-31T23:59:59Z"),
        trace_event("5", ["devtools-e2e", "agent:cicd"], "2026-01-01T00:00:04Z", name="other")]})

    def ids(**params: str | list[str]) -> list[str]:
        answer = api.get("/api/public/traces", params=params)
        assert answer.status_code == 200, answer.text
        return sorted(t["id"] for t in answer.json()["data"])

    assert ids(tags=["devtools-e2e", "agent:cicd"]) == ["trace-1", "trace-4", "trace-5"]
    assert ids(tags=["devtools-e2e", "agent:cicd"], fromTimestamp="2026-01-01T00:00:00Z") == ["trace-1", "trace-5"]
    assert ids(tags=["devtools-e2e", "agent:cicd"], fromTimestamp="2026-01-01T00:00:01Z",
               toTimestamp="2026-01-01T00:00:04Z", name="e2e-probe") == ["trace-1"]
    assert ids(tags="agent:documentation") == ["trace-2"]
    listed = api.get("/api/public/traces", params={"tags": "agent:documentation"}).json()["data"][0]
    assert listed["timestamp"] == "2026-01-01T00:00:02.000Z"
    assert listed["tags"] == ["agent:documentation", "devtools-e2e"]
    assert {"htmlPath", "sessionId", "userId", "public", "environment", "observations"} <= set(listed)


def test_pages_and_their_meta(api: httpx.Client) -> None:
    api.post("/api/public/ingestion", json={"batch": [
        trace_event(str(n), ["page"], f"2026-01-01T00:00:0{n}Z") for n in range(5)]})
    answer = api.get("/api/public/traces", params={"tags": "page", "limit": 2, "page": 3}).json()
    assert answer["meta"] == {"page": 3, "limit": 2, "totalItems": 5, "totalPages": 3}
    assert [t["id"] for t in answer["data"]] == ["trace-0"]  # newest first: timestamp.desc
    assert api.get("/api/public/traces", params={"limit": 0}).status_code == 400
    assert api.get("/api/public/traces", params={"fromTimestamp": "yesterday"}).status_code == 400


def test_a_trace_created_again_is_updated_not_doubled(api: httpx.Client) -> None:
    first = trace_event("x1", ["one"], "2026-01-01T00:00:00Z")
    again = {**first, "id": "x2", "body": {"id": "trace-x1", "tags": ["two"]}}
    api.post("/api/public/ingestion", json={"batch": [first, again]})
    listed = api.get("/api/public/traces").json()
    assert listed["meta"]["totalItems"] == 1
    assert listed["data"][0]["tags"] == ["one", "two"]


def test_wrong_or_missing_credentials_are_401_and_health_needs_none(api: httpx.Client) -> None:
    base = str(api.base_url)
    assert httpx.get(f"{base}/api/public/traces", auth=("pk-lf-test", "wrong")).status_code == 401
    assert httpx.get(f"{base}/api/public/traces").status_code == 401
    assert httpx.post(f"{base}/api/public/ingestion", json={"batch": []}, auth=("x", "y")).status_code == 401
    health = httpx.get(f"{base}/api/public/health")
    assert health.status_code == 200 and health.json()["status"] == "OK"


def test_keys_come_from_a_private_file_or_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "keys.env"
    assert write_key_file(path, "http://host.docker.internal:9392")
    assert not write_key_file(path, "http://elsewhere")  # kept
    assert os.stat(path).st_mode & 0o777 == 0o600
    public, secret = load_keys(str(path), {})
    assert public.startswith("pk-lf-") and secret.startswith("sk-lf-")
    assert "LANGFUSE_HOST=http://host.docker.internal:9392" in path.read_text()
    path.chmod(0o644)
    with pytest.raises(KeysUnavailable, match="chmod 600"):
        load_keys(str(path), {})
    assert load_keys(None, {"LANGFUSE_PUBLIC_KEY": "p", "LANGFUSE_SECRET_KEY": "s"}) == ("p", "s")
    with pytest.raises(KeysUnavailable, match="LANGFUSE_SECRET_KEY not set in the environment"):
        load_keys(None, {"LANGFUSE_PUBLIC_KEY": "p"})


def test_serve_without_keys_exits_2_naming_them(capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LANGFUSE_PUBLIC_KEY", raising=False)
    monkeypatch.delenv("LANGFUSE_SECRET_KEY", raising=False)
    assert main(["serve", "--port", "0"]) == 2
    assert "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY not set" in capsys.readouterr().err


def test_a_peer_outside_the_allowed_networks_is_refused() -> None:
    servers = serve(["127.0.0.1"], 0, KEYS)
    try:
        assert servers[0].verify_request(None, ("127.0.0.1", 1))
        assert not servers[0].verify_request(None, ("192.0.2.7", 1))
    finally:
        servers[0].shutdown()
        servers[0].server_close()
    allowed = serve(["127.0.0.1"], 0, KEYS, allow=["172.16.0.0/12"])
    try:
        assert allowed[0].verify_request(None, ("172.18.0.5", 1))
        assert not allowed[0].verify_request(None, ("192.0.2.7", 1))
    finally:
        allowed[0].shutdown()
        allowed[0].server_close()
