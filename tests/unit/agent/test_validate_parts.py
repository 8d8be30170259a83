"""The validator's pure parts: SSE and JSON-RPC parsing, PromQL builders, backoff, retry loop, CLI input errors."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from agent.validate import runner as validate
from agent.validate.checks import Backoff, Check, NotYet, Seen, run_check
from agent.validate.http import base_url
from agent.validate.mcp import McpClient, jsonrpc_messages, pick_result, refusal, sse_data
from agent.validate.prometheus import error_rate_queries, normalize_selector, up_query
from agent.validate.report import CheckResult


def test_sse_data_joins_lines_and_skips_comments():
    stream = 'event: message\r\ndata: {"a":1}\r\n\r\n: keep-alive\n\ndata:first\ndata: second\n\nid: 7\ndata: last'
    assert sse_data(stream) == ['{"a":1}', "first\nsecond", "last"]
    assert sse_data("") == []


def test_jsonrpc_messages_from_json_batch_and_sse():
    assert jsonrpc_messages("application/json", '{"id":1}') == [{"id": 1}]
    assert jsonrpc_messages("application/json; charset=utf-8", '[{"id":1},{"id":2}]') == [{"id": 1}, {"id": 2}]
    sse = 'event: message\ndata: {"method":"notifications/message"}\n\nevent: message\ndata: {"id":3}\n\n'
    assert jsonrpc_messages("text/event-stream; charset=utf-8", sse) == [{"method": "notifications/message"}, {"id": 3}]


def test_pick_result_finds_the_answer_or_says_why_not():
    messages = [{"method": "notifications/progress"}, {"jsonrpc": "2.0", "id": 2, "result": {"tools": []}}]
    assert pick_result(messages, 2, "tools/list") == {"tools": []}
    with pytest.raises(NotYet) as missing:
        pick_result(messages, 3, "tools/list")
    assert str(missing.value) == "tools/list: no answer with id 3 in the response"
    with pytest.raises(NotYet) as error:
        pick_result([{"id": 1, "error": {"code": -32601, "message": "Method not found"}}], 1, "initialize")
    assert str(error.value) == "initialize: JSON-RPC error -32601: Method not found"


def test_mcp_messages_of_both_eras_are_exact():
    per_request = McpClient(None, "http://127.0.0.1:8000/mcp", per_request=True)  # type: ignore[arg-type]
    assert per_request.message("tools/list", {"cursor": "3"}) == {
        "jsonrpc": "2.0",
        "method": "tools/list",
        "params": {
            "cursor": "3",
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "devtools-validate", "version": "1"},
            },
        },
        "id": 1,
    }
    assert per_request.headers == {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": "2026-07-28",
    }
    handshake = McpClient(None, "http://127.0.0.1:8000/mcp")  # type: ignore[arg-type]
    assert handshake.message("notifications/initialized", {}, notify=True) == {
        "jsonrpc": "2.0",
        "method": "notifications/initialized",
        "params": {},
    }
    assert handshake.headers == {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    assert handshake.version == "" and per_request.version == "2026-07-28"


def test_refusal_reads_a_json_rpc_error_or_shows_the_body():
    body = '{"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"Unsupported protocol version"}}'
    said = refusal("tools/list", 400, body)
    assert said == "tools/list: HTTP 400, JSON-RPC error -32022: Unsupported protocol version"
    assert refusal("initialize", 404, "Not Found") == "initialize: HTTP 404: Not Found"
    assert refusal("initialize", 502, "") == "initialize: HTTP 502"
    assert refusal("initialize", 400, '["not", "an object"]') == 'initialize: HTTP 400: ["not", "an object"]'


def test_promql_builders_are_exact():
    assert up_query("") == "up"
    assert up_query('color="green"') == 'up{color="green"}'
    assert up_query(' {color="green", job="devtools"} ') == 'up{color="green", job="devtools"}'
    assert normalize_selector("{}") == ""
    assert error_rate_queries('color="blue"') == (
        'sum(rate(http_requests_total{color="blue",status=~"5.."}[1m]))',
        'sum(rate(http_requests_total{color="blue"}[1m]))',
    )
    assert error_rate_queries("") == (
        'sum(rate(http_requests_total{status=~"5.."}[1m]))',
        "sum(rate(http_requests_total[1m]))",
    )


def test_base_url_brackets_ipv6():
    assert base_url("127.0.0.1", 8100) == "http://127.0.0.1:8100"
    assert base_url("::1", 8100) == "http://[::1]:8100"


def test_backoff_doubles_up_to_the_cap():
    assert [Backoff().delay(n) for n in range(1, 7)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert [Backoff(first_s=0.1, cap_s=0.3).delay(n) for n in range(1, 4)] == [0.1, 0.2, 0.3]


def scripted(outcomes: list[str]) -> Check:
    """A check whose attempts follow `outcomes`: "pass", "wait" (NotYet), "boom" (an unexpected error)."""
    calls = iter(outcomes)

    async def probe() -> Seen:
        outcome = next(calls)
        if outcome == "wait":
            raise NotYet("HTTP 503", {"status": 503})
        if outcome == "boom":
            raise RuntimeError("unexpected")
        return Seen("fine", {"status": 200})

    return Check("health/x", "x", "health", "GET http://127.0.0.1:1/health", probe)


def run(check: Check, deadline_s: float, timeout: float = 1.0) -> CheckResult:
    fast = Backoff(first_s=0.01, cap_s=0.02)
    return asyncio.run(run_check(check, timeout=timeout, deadline=time.monotonic() + deadline_s, backoff=fast))


def test_retry_loop_counts_attempts_and_keeps_data():
    result = run(scripted(["wait", "boom", "wait", "pass"]), deadline_s=5)
    assert (result.passed, result.attempts, result.detail, result.data) == (True, 4, "fine", {"status": 200})


def test_retry_loop_reports_the_last_reason_at_the_deadline():
    result = run(scripted(["boom"] + ["wait"] * 1000), deadline_s=0.5)
    assert result.passed is False
    assert result.detail == "HTTP 503"
    assert result.data == {"status": 503}
    assert result.attempts > 3
    assert 0.2 < result.duration_s < 0.6


def test_a_retry_cut_by_the_deadline_keeps_the_earlier_answer():
    """On a busy host the last retry may not finish before the deadline: the report must still say what the
    service answered ("HTTP 503"), not only that time ran out."""
    calls = iter(["wait"])

    async def probe() -> Seen:
        if next(calls, "hang") == "wait":
            raise NotYet("HTTP 503", {"status": 503})
        await asyncio.sleep(10)
        return Seen("fine", {})

    result = run(Check("health/x", "x", "health", "GET http://127.0.0.1:1/health", probe), deadline_s=0.8,
                 timeout=5.0)
    assert (result.passed, result.attempts) == (False, 2)
    assert (result.detail, result.data) == ("HTTP 503", {"status": 503})


def test_a_check_that_never_answers_reports_the_deadline():
    async def probe() -> Seen:
        await asyncio.sleep(10)
        return Seen("fine", {})

    result = run(Check("health/x", "x", "health", "GET http://127.0.0.1:1/health", probe), deadline_s=0.3,
                 timeout=5.0)
    assert re.fullmatch(r"timed out after 0\.[23]\ds at the deadline", result.detail), result.detail


def test_retry_loop_names_an_unexpected_error():
    result = run(scripted(["boom"] * 1000), deadline_s=0.3)
    assert result.detail == "RuntimeError: unexpected"


def test_deadline_already_passed_means_no_attempt():
    result = run(scripted(["pass"]), deadline_s=-1)
    assert (result.passed, result.attempts) == (False, 0)
    assert result.detail == "not attempted: the deadline had already passed"


def parse(*argv: str) -> validate.Options:
    return validate.options_from(validate.build_parser().parse_args(list(argv)))


def test_options_from_the_command_line():
    options = parse(
        "--config",
        "r.json",
        "--timeout",
        "2",
        "--deadline",
        "30",
        "--prometheus",
        "http://p:9090",
        "--prom-selector",
        'color="green"',
        "--label",
        "color=green",
        "--label",
        "release=r1=x",
    )
    assert options == validate.Options(
        host="127.0.0.1",
        timeout=2.0,
        deadline=30.0,
        prometheus="http://p:9090",
        prom_selector='color="green"',
        max_error_rate=0.01,
        labels={"color": "green", "release": "r1=x"},
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--label", "color"], "--label 'color': expected KEY=VALUE, e.g. --label color=green"),
        (["--deadline", "0"], "--timeout and --deadline must be positive numbers of seconds"),
        (["--max-error-rate", "5"], "--max-error-rate 5: give a ratio between 0 and 1, e.g. 0.01"),
        (["--prometheus", "127.0.0.1:9390"], "--prometheus '127.0.0.1:9390': give a URL, e.g. http://127.0.0.1:9390"),
        (["--prom-selector", 'a="b"'], "--prom-selector needs --prometheus URL"),
        (
            ["--env-file", "release.env"],
            "--env-file, --project-name and --profile apply to --compose only, not --config",
        ),
    ],
)
def test_bad_options_say_what_to_do(argv, message):
    with pytest.raises(validate.InputError) as caught:
        parse("--config", "r.json", *argv)
    assert str(caught.value) == message


def test_load_resolved_errors_name_the_path_and_the_fix(tmp_path: Path):
    missing = tmp_path / "resolved.json"
    args = validate.build_parser().parse_args(["--config", str(missing)])
    with pytest.raises(validate.InputError) as caught:
        validate.load_resolved(args)
    assert str(caught.value) == (
        f"--config {missing}: no such file; save it with `docker compose --file compose/docker-compose.yml "
        f"--env-file release.env config --format json > {missing}`"
    )
    missing.write_text("[1, 2]")
    with pytest.raises(validate.InputError, match="expected a JSON object"):
        validate.load_resolved(args)
    missing.write_text("{not json")
    with pytest.raises(validate.InputError, match=r"not JSON \(Expecting property name"):
        validate.load_resolved(args)


def test_colour_only_on_a_tty_without_no_color(monkeypatch: pytest.MonkeyPatch):
    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdout", Tty())
    assert validate.use_color(no_color=False, environ={}) is True
    assert validate.use_color(no_color=True, environ={}) is False
    assert validate.use_color(no_color=False, environ={"NO_COLOR": "1"}) is False
    monkeypatch.undo()
    assert validate.use_color(no_color=False, environ={}) is False  # pytest captures stdout: not a TTY
