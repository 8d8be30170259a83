"""ops.cli traces with Langfuse's official client against the Langfuse stand-in on loopback: coverage per agent,
the exit status against the minimum, and refused keys named without their values."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ops import cli
from ops.traces import compose_agents, parse_since
from standin.langfuse import serve

pytestmark = pytest.mark.live  # real sockets (tests/unit/conftest.py)

AGENTS = ["cicd", "code-review", "documentation", "feature-dev", "infrastructure", "orchestrator"]


@pytest.fixture
def langfuse() -> Iterator[tuple[str, tuple[str, str]]]:
    keys = (f"pk-lf-{uuid.uuid4().hex}", f"sk-lf-{uuid.uuid4().hex}")
    servers = serve(["127.0.0.1"], 0, keys)
    yield f"http://127.0.0.1:{servers[0].server_address[1]}", keys
    servers[0].shutdown()
    servers[0].server_close()


def send(url: str, keys: tuple[str, str], agent: str, at: datetime) -> None:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {"id": uuid.uuid4().hex, "timestamp": stamp, "type": "trace-create",
             "body": {"timestamp": stamp, "name": "e2e-probe", "tags": ["devtools-e2e", f"agent:{agent}"]}}
    assert httpx.post(f"{url}/api/public/ingestion", json={"batch": [event]}, auth=keys).status_code == 207


def env(monkeypatch: pytest.MonkeyPatch, url: str, keys: tuple[str, str]) -> None:
    monkeypatch.setenv("LANGFUSE_HOST", url)
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", keys[0])
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", keys[1])


def test_every_agent_traced_in_the_window_passes(langfuse, monkeypatch, capsys) -> None:
    url, keys = langfuse
    now = datetime.now(UTC)
    for agent in AGENTS:
        send(url, keys, agent, now - timedelta(minutes=5))
    env(monkeypatch, url, keys)
    assert cli.main(["traces", "--since", "1h", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["agents"] == dict.fromkeys(AGENTS, True)
    assert result["coverage"] == 1.0 and result["min"] == 0.9 and result["host"] == url


def test_below_the_minimum_exits_1_naming_the_agents(langfuse, monkeypatch, capsys) -> None:
    url, keys = langfuse
    now = datetime.now(UTC)
    for agent in AGENTS[2:]:
        send(url, keys, agent, now - timedelta(minutes=5))
    send(url, keys, "cicd", now - timedelta(hours=3))  # outside the window
    env(monkeypatch, url, keys)
    assert cli.main(["traces", "--since", "1h"]) == 1
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:-1]}
    assert rows == {**dict.fromkeys(AGENTS, "yes"), "cicd": "NONE", "code-review": "NONE"}
    assert "trace coverage 0.6667 (4 of 6 agents since" in out and "minimum 0.9): BELOW THE MINIMUM" in out
    assert cli.main(["traces", "--since", "4h", "--agents", "cicd,documentation", "--min", "1"]) == 0


def test_wrong_keys_are_named_never_shown(langfuse, monkeypatch, capsys) -> None:
    url, _ = langfuse
    wrong = (f"pk-lf-{uuid.uuid4().hex}", f"sk-lf-{uuid.uuid4().hex}")
    env(monkeypatch, url, wrong)
    assert cli.main(["traces"]) == 2
    captured = capsys.readouterr()
    assert captured.err.endswith("error: Langfuse refused the keys (HTTP 401): check LANGFUSE_PUBLIC_KEY and "
                                 "LANGFUSE_SECRET_KEY\n")  # before it: the stand-in's own request log
    assert wrong[0] not in captured.out + captured.err and wrong[1] not in captured.out + captured.err


def test_missing_keys_and_bad_arguments(monkeypatch, capsys) -> None:
    monkeypatch.delenv("LANGFUSE_SECRET_KEY", raising=False)
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk")
    monkeypatch.setenv("LANGFUSE_HOST", "http://127.0.0.1:1")
    assert cli.main(["traces"]) == 2
    assert "LANGFUSE_SECRET_KEY not set in the environment" in capsys.readouterr().err
    assert cli.main(["traces", "--since", "soon"]) == 2
    assert "--since 'soon': give a span" in capsys.readouterr().err
    assert parse_since("7d") == timedelta(days=7)
    assert compose_agents() == AGENTS
