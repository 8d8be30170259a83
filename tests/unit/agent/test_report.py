"""The report renderers, as exact strings: plain text, ANSI colour, JSON and GitHub step summary markdown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.validate.report import (
    CheckResult,
    Report,
    ReportError,
    from_json,
    read_json,
    render_color,
    render_markdown,
    render_text,
    to_json,
)

HEALTH = CheckResult(
    "health/gateway-mcp",
    "gateway-mcp",
    "health",
    True,
    1,
    0.0123,
    "GET http://127.0.0.1:8100/health",
    "HTTP 200 in 12 ms",
    {"status": 200},
)
MCP = CheckResult(
    "mcp/gateway-mcp",
    "gateway-mcp",
    "mcp",
    False,
    3,
    1.5,
    "POST http://127.0.0.1:8100/mcp tools/list",
    "7 tools, fewer than min-tools 10: a, b, c, d, e",
    {"tools": 7, "min_tools": 10, "sample": ["a", "b", "c", "d", "e"]},
)
E2E = CheckResult(
    "e2e/orchestrator",
    "orchestrator",
    "e2e",
    True,
    2,
    0.25,
    "POST http://127.0.0.1:8101/e2e",
    'HTTP 200 with "status":"ok" in 5 ms',
)
PROM = CheckResult(
    "prometheus/up",
    "",
    "prometheus",
    False,
    4,
    2.0,
    "http://127.0.0.1:9390 up",
    "1 of 2 targets down: 127.0.0.1:9 (job a|b)",
)
FAILED = Report("2025-01-02T03:04:05Z", 2.0456, (HEALTH, MCP, E2E, PROM), {"release": "r42", "color": "green"}, "green")
PASSED = Report("2025-01-02T03:04:05Z", 0.5, (HEALTH, E2E))


def test_text_table_is_exact():
    assert render_text(FAILED) == (
        "CHECK               RESULT  TRIES     TIME  DETAIL\n"
        "health/gateway-mcp  pass        1    0.01s  HTTP 200 in 12 ms\n"
        "mcp/gateway-mcp     FAIL        3    1.50s  7 tools, fewer than min-tools 10: a, b, c, d, e "
        "[POST http://127.0.0.1:8100/mcp tools/list]\n"
        'e2e/orchestrator    pass        2    0.25s  HTTP 200 with "status":"ok" in 5 ms\n'
        "prometheus/up       FAIL        4    2.00s  1 of 2 targets down: 127.0.0.1:9 (job a|b) "
        "[http://127.0.0.1:9390 up]\n"
        "validation FAILED: 2 of 4 checks passed in 2.05s [release=r42 color=green]\n"
    )
    assert render_text(PASSED).splitlines()[-1] == "validation passed: 2 of 2 checks passed in 0.50s"


def test_color_table_is_exact():
    assert render_color(PASSED) == (
        "\x1b[1mCHECK               RESULT  TRIES     TIME  DETAIL\x1b[0m\n"
        "health/gateway-mcp  \x1b[32mpass  \x1b[0m      1    0.01s  HTTP 200 in 12 ms\n"
        'e2e/orchestrator    \x1b[32mpass  \x1b[0m      2    0.25s  HTTP 200 with "status":"ok" in 5 ms\n'
        "\x1b[32mvalidation passed: 2 of 2 checks passed in 0.50s\x1b[0m\n"
    )
    failed = render_color(FAILED)
    assert "\x1b[31mFAIL  \x1b[0m" in failed
    assert failed.endswith(
        "\x1b[31mvalidation FAILED: 2 of 4 checks passed in 2.05s [release=r42 color=green]\x1b[0m\n"
    )


def test_markdown_is_exact():
    assert render_markdown(FAILED) == (
        "### ❌ Validation failed: 2 of 4 checks passed in 2.05 s\n"
        "\n"
        "Labels: `release=r42` `color=green`\n"
        "\n"
        "| Check | Result | Tries | Time | Detail |\n"
        "| :-- | :-- | --: | --: | :-- |\n"
        "| health/gateway-mcp | ✅ pass | 1 | 0.01 s | HTTP 200 in 12 ms |\n"
        "| mcp/gateway-mcp | ❌ FAIL | 3 | 1.50 s | 7 tools, fewer than min-tools 10: a, b, c, d, e "
        "[POST http://127.0.0.1:8100/mcp tools/list] |\n"
        '| e2e/orchestrator | ✅ pass | 2 | 0.25 s | HTTP 200 with "status":"ok" in 5 ms |\n'
        "| prometheus/up | ❌ FAIL | 4 | 2.00 s | 1 of 2 targets down: 127.0.0.1:9 (job a\\|b) "
        "[http://127.0.0.1:9390 up] |\n"
    )
    assert render_markdown(PASSED).splitlines()[:3] == [
        "### ✅ Validation passed: 2 of 2 checks passed in 0.50 s",
        "",
        "| Check | Result | Tries | Time | Detail |",
    ]


def test_markdown_escapes_html_and_newlines():
    odd = CheckResult("e2e/x", "x", "e2e", True, 1, 0.0, "GET /", "line one\n<b>two</b>")
    assert render_markdown(Report("t", 0.0, (odd,))).splitlines()[-1] == (
        "| e2e/x | ✅ pass | 1 | 0.00 s | line one &lt;b&gt;two&lt;/b&gt; |"
    )


def test_json_has_stable_keys_and_groups_checks_by_phase():
    data = to_json(FAILED)
    assert list(data) == ["passed", "project", "started_at", "duration_s", "labels", "summary", "phases"]
    assert data["passed"] is False
    assert data["duration_s"] == 2.046
    assert data["labels"] == {"release": "r42", "color": "green"}
    assert data["summary"] == {"checks": 4, "passed": 2, "failed": 2}
    assert list(data["phases"]) == ["health", "mcp", "e2e", "prometheus"]
    assert data["phases"]["health"]["passed"] is True
    assert data["phases"]["mcp"] == {
        "passed": False,
        "checks": [
            {
                "name": "mcp/gateway-mcp",
                "service": "gateway-mcp",
                "phase": "mcp",
                "passed": False,
                "attempts": 3,
                "duration_s": 1.5,
                "target": "POST http://127.0.0.1:8100/mcp tools/list",
                "detail": "7 tools, fewer than min-tools 10: a, b, c, d, e",
                "error": "7 tools, fewer than min-tools 10: a, b, c, d, e",
                "data": {"tools": 7, "min_tools": 10, "sample": ["a", "b", "c", "d", "e"]},
            }
        ],
    }
    assert data["phases"]["health"]["checks"][0]["error"] is None
    assert json.loads(json.dumps(data)) == data


def test_empty_report_does_not_pass():
    assert Report("t", 0.0, ()).passed is False
    assert to_json(PASSED)["passed"] is True


def test_from_json_reads_back_what_to_json_wrote():
    data = json.loads(json.dumps(to_json(FAILED)))
    back = from_json(data)
    assert to_json(back) == data
    assert render_markdown(back) == render_markdown(Report(FAILED.started_at, round(FAILED.duration_s, 3),
                                                           FAILED.checks, FAILED.labels, FAILED.project))


def test_the_reader_gives_failed_checks_services_and_the_stated_verdict():
    """One reader for every consumer (gate summary, rollout, operator): what it says failed is what to_json
    wrote as failed, so the gate and the rollout's failing services cannot disagree about the same file."""
    back = from_json(json.loads(json.dumps(to_json(FAILED))))
    assert back.failed_names == ["mcp/gateway-mcp", "prometheus/up"]
    assert back.failed_services == ["gateway-mcp"]  # prometheus/up belongs to no one service
    assert (back.passed_count, len(back.checks), back.stated_passed) == (2, 4, False)
    assert from_json(to_json(PASSED)).stated_passed is True
    assert FAILED.stated_passed is None  # built from results, not read


def test_failed_services_read_list_and_dict_phases():
    report = {"phases": [{"name": "health", "checks": [
        {"service": "a", "passed": True}, {"service": "b", "passed": False}]},
        {"name": "e2e", "checks": [{"service": "c", "passed": False}, {"service": "b", "passed": False}]}]}
    assert from_json(report).failed_services == ["b", "c"]
    assert from_json({"phases": {"health": {"checks": [{"service": "z", "passed": False}]}}}).failed_services == ["z"]


def test_a_check_reads_as_failed_unless_it_says_passed_true():
    """Any doubt is a failure: a check without `passed`, or with a value other than true, failed."""
    report = from_json({"passed": True, "phases": {"health": {"checks": [
        {"name": "a", "passed": True}, {"name": "b"}, {"name": "c", "passed": "yes"}, {"passed": True}]}}})
    assert report.failed_names == ["b", "c"]
    assert [c.name for c in report.checks] == ["a", "b", "c", "?"]
    assert {c.phase for c in report.checks} == {"health"}


@pytest.mark.parametrize(("data", "message"), [
    ([], "not a JSON object"),
    ({"phases": "health"}, "phases is a str, not an object"),
    ({"phases": {"health": ["x"]}}, "phase health is not an object with a list of checks"),
    ({"phases": {"health": {"checks": [1]}}}, "a check of phase health is not an object"),
    ({"phases": {"e2e": {"checks": [{"name": "e2e/x", "duration_s": "slow"}]}}},
     "check e2e/x: could not convert string to float: 'slow'"),
    ({"duration_s": None}, "float() argument must be a string or a real number, not 'NoneType'"),
])
def test_from_json_refuses_what_is_not_a_report(data, message):
    with pytest.raises(ReportError) as caught:
        from_json(data)
    assert str(caught.value) == message


def test_read_json_names_the_file(tmp_path: Path):
    path = tmp_path / "r.json"
    with pytest.raises(FileNotFoundError):
        read_json(path)
    path.write_text(json.dumps(to_json(FAILED)))
    assert to_json(read_json(path)) == to_json(FAILED)
    path.write_text("{")
    with pytest.raises(ReportError, match=rf"^report {path} unreadable: Expecting property name"):
        read_json(path)
    path.write_text("7")
    with pytest.raises(ReportError, match=rf"^report {path} is not a JSON object$"):
        read_json(path)
    path.write_text('{"phases": {"health": {"checks": [1]}}}')
    with pytest.raises(ReportError, match=rf"^report {path} unreadable: a check of phase health is not an object$"):
        read_json(path)
