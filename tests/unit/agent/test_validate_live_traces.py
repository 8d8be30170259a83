"""Phase 5 (trace coverage) against the Langfuse stand-in (standin.langfuse, started in-process on an ephemeral
loopback port) and real agents on loopback: coverage per agent, the minimum, wrong keys, an outage."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from agent.secretfile import render_secrets
from agent.validate.catalog import load_catalog
from agent.validate.report import Report, from_json, to_json
from agent.validate.runner import Options, main, validate
from standin.langfuse import serve
from tests.prometheus_process import free_port
from tests.unit.agent.validate_peers import E2E, PeerServer, Route, resolved, service

pytestmark = pytest.mark.live  # real peers (tests/unit/conftest.py)

AGENTS = ("orchestrator", "feature-dev", "code-review", "infrastructure", "cicd", "documentation")
OK = Route(body='{"status":"ok"}', content_type="application/json")


class Langfuse:
    def __init__(self) -> None:
        self.keys = (f"pk-lf-{uuid.uuid4().hex}", f"sk-lf-{uuid.uuid4().hex}")
        self.servers = serve(["127.0.0.1"], 0, self.keys)
        self.url = f"http://127.0.0.1:{self.servers[0].server_address[1]}"

    def send_all(self, agents: list[str] | tuple[str, ...]) -> None:
        for agent in agents:
            self.send(agent)

    def send(self, agent: str, at: datetime | None = None) -> None:
        stamp = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {"id": uuid.uuid4().hex, "timestamp": stamp, "type": "trace-create",
                 "body": {"id": uuid.uuid4().hex, "timestamp": stamp, "name": "e2e-probe",
                          "tags": ["devtools-e2e", f"agent:{agent}"]}}
        answer = httpx.post(f"{self.url}/api/public/ingestion", json={"batch": [event]}, auth=self.keys)
        assert answer.status_code == 207 and not answer.json()["errors"]


@pytest.fixture
def langfuse() -> Iterator[Langfuse]:
    stand = Langfuse()
    yield stand
    for server in stand.servers:
        server.shutdown()
        server.server_close()


def secrets(tmp_path: Path, public: str, secret: str) -> str:
    path = tmp_path / "secrets.env"
    path.write_text(render_secrets({"LANGFUSE_PUBLIC_KEY": public, "LANGFUSE_SECRET_KEY": secret}))
    path.chmod(0o600)
    return str(path)


def run_with_agents(langfuse_url: str, secrets_file: str, traced: list[str], send: Langfuse | None, *,
                    trace_deadline: float = 3.0, late: tuple[str, ...] = ()) -> Report:
    """Validate six agents on loopback; each agent in `traced` sends its trace to `send` (a stand-in) while it
    answers its E2E probe, as a real agent does; each in `late` sends it half a second after the probes began."""
    def e2e(agent: str) -> Route:
        if send is None or agent not in traced:
            return OK

        def body() -> str:
            send.send(agent)
            return str(OK.body)
        return Route(body=body, content_type="application/json")

    with ExitStack() as stack:
        peers = {n: stack.enter_context(PeerServer({"/health": Route(), "/e2e": e2e(n)})) for n in AGENTS}
        catalog = load_catalog(resolved({n: service(peers[n].port, E2E) for n in AGENTS}))
        timer = threading.Timer(0.5, send.send_all if send else list, [late])
        timer.start()
        options = Options(deadline=10.0, langfuse_host=langfuse_url, secrets_file=secrets_file,
                          trace_deadline=trace_deadline, trace_min=0.9)
        report = asyncio.run(validate(catalog, options))
        timer.join()
        return report


def test_every_agent_traced_is_coverage_one(langfuse: Langfuse, tmp_path: Path) -> None:
    report = run_with_agents(langfuse.url, secrets(tmp_path, *langfuse.keys), list(AGENTS), langfuse)
    assert report.passed, [c.detail for c in report.checks]
    assert report.traces == {"agents": dict.fromkeys(sorted(AGENTS), True), "coverage": 1.0, "min": 0.9,
                             "host": langfuse.url}
    written = to_json(report)
    assert written["traces"] == report.traces
    assert written["phases"]["traces"]["passed"] is True
    assert from_json(json.loads(json.dumps(written))).traces == report.traces
    check = next(c for c in report.checks if c.phase == "traces")
    assert check.detail == "6 of 6 agents traced (coverage 1, minimum 0.9)"


def test_a_trace_that_arrives_after_the_probes_is_waited_for(langfuse: Langfuse, tmp_path: Path) -> None:
    report = run_with_agents(langfuse.url, secrets(tmp_path, *langfuse.keys), list(AGENTS[:4]), langfuse,
                             trace_deadline=20.0, late=AGENTS[4:])
    assert report.passed, [c.detail for c in report.checks]
    assert report.traces is not None and report.traces["coverage"] == 1.0
    assert report.traces["agents"] == dict.fromkeys(sorted(AGENTS), True)


def test_two_agents_without_a_trace_fail_the_phase_naming_both(langfuse: Langfuse, tmp_path: Path) -> None:
    # a trace from before the probes began does not count
    langfuse.send("cicd", datetime(2020, 1, 1, tzinfo=UTC))
    started = time.monotonic()
    report = run_with_agents(langfuse.url, secrets(tmp_path, *langfuse.keys),
                             [a for a in AGENTS if a not in ("cicd", "documentation")], langfuse, trace_deadline=2.0)
    assert time.monotonic() - started < 8
    assert not report.passed
    assert report.failed_names == ["traces/coverage"]
    assert report.traces is not None
    assert report.traces["coverage"] == 0.6667
    assert [a for a, seen in report.traces["agents"].items() if not seen] == ["cicd", "documentation"]
    check = next(c for c in report.checks if c.phase == "traces")
    assert check.detail == ("4 of 6 agents traced (coverage 0.6667, minimum 0.9); no trace from cicd, "
                            "documentation")


def test_wrong_keys_name_the_keys_never_their_values(langfuse: Langfuse, tmp_path: Path) -> None:
    wrong = (f"pk-lf-{uuid.uuid4().hex}", f"sk-lf-{uuid.uuid4().hex}")
    started = time.monotonic()
    report = run_with_agents(langfuse.url, secrets(tmp_path, *wrong), [], None, trace_deadline=20.0)
    assert time.monotonic() - started < 10  # a refusal ends the phase at once
    check = next(c for c in report.checks if c.phase == "traces")
    assert not check.passed and check.attempts == 1
    assert check.detail.startswith(f"Langfuse at {langfuse.url} refused the keys (HTTP 401): check "
                                   "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY")
    text = json.dumps(to_json(report))
    for value in (*wrong, *langfuse.keys):
        assert value not in text


def test_keys_missing_from_the_secrets_file_are_named(langfuse: Langfuse, tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text(render_secrets({"LANGFUSE_PUBLIC_KEY": langfuse.keys[0]}))
    report = run_with_agents(langfuse.url, str(path), [], None)
    check = next(c for c in report.checks if c.phase == "traces")
    assert not check.passed
    assert check.detail.startswith(f"LANGFUSE_SECRET_KEY not in the secrets file {path}")


def test_langfuse_down_is_no_trace_with_the_reason(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    report = run_with_agents(url, secrets(tmp_path, "pk", "sk-long-enough"), [], None, trace_deadline=1.5)
    check = next(c for c in report.checks if c.phase == "traces")
    assert not check.passed
    assert report.traces is not None and report.traces["coverage"] == 0.0
    assert "cannot connect" in check.detail


def test_the_cli_writes_the_traces_section_and_keeps_the_keys_out(langfuse: Langfuse, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with ExitStack() as stack:
        peers = {n: stack.enter_context(PeerServer({"/health": Route(), "/e2e": OK})) for n in AGENTS[:2]}
        config = tmp_path / "resolved.json"
        config.write_text(json.dumps(resolved({n: service(peers[n].port, E2E) for n in AGENTS[:2]})))
        timer = threading.Timer(0.5, langfuse.send_all, [AGENTS[:2]])
        timer.start()
        report_path = tmp_path / "report.json"
        code = main(["--config", str(config), "--json", str(report_path), "--deadline", "10", "--no-color",
                     "--langfuse-host", langfuse.url, "--secrets-file", secrets(tmp_path, *langfuse.keys),
                     "--trace-deadline", "5", "--trace-min", "1"])
        timer.join()
    out = capsys.readouterr()
    assert code == 0, out.out
    written = json.loads(report_path.read_text())
    assert written["traces"] == {"agents": {"feature-dev": True, "orchestrator": True}, "coverage": 1.0,
                                 "min": 1.0, "host": langfuse.url}
    assert "traces/coverage" in out.out
    for value in langfuse.keys:
        assert value not in out.out + out.err + report_path.read_text()


def test_bad_trace_flags_are_input_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", "x.json", "--langfuse-host", "127.0.0.1:9392"]) == 2
    assert "--langfuse-host '127.0.0.1:9392': give a URL" in capsys.readouterr().err
    assert main(["--config", "x.json", "--trace-min", "1.5"]) == 2
    assert "--trace-min 1.5: give a ratio between 0 and 1" in capsys.readouterr().err
