"""The gate's one-line verdict: passed only when the validator exited 0 AND its report says every check passed."""

import json
from typing import Any

import pytest

from agent.validate import gate as gate_summary
from agent.validate.report import from_json


def _report(*checks: tuple[str, bool], passed: bool | None = None) -> dict[str, Any]:
    return {
        "passed": all(ok for _, ok in checks) if passed is None else passed,
        "duration_s": 2.3456,
        "summary": {"checks": len(checks)},
        "phases": {"health": {"checks": [{"name": n, "passed": ok, "detail": "ok"} for n, ok in checks]}},
    }


def test_summary_of_a_passed_report():
    report = _report(("health:gateway-mcp", True), ("health:cicd", True))
    assert gate_summary.summarize(from_json(report), "r1", 0) == {
        "passed": True, "release": "r1", "checks": 2, "failed": [], "duration_s": 2.346,
    }


def test_summary_names_failed_checks_only():
    """Traffic must not move; the summary says which checks to look at, not their details."""
    summary = gate_summary.summarize(from_json(_report(("health:cicd", False), ("mcp:gateway-mcp", True))), "r1", 1)
    assert summary == {"passed": False, "release": "r1", "checks": 2, "failed": ["health:cicd"], "duration_s": 2.346}


@pytest.mark.parametrize(("report", "code"), [
    (_report(("health:cicd", True)), 1),               # the validator failed for a reason the report misses
    (_report(("health:cicd", True), passed=False), 0),  # a report that says failed
    (_report(), 0),                                     # no check ran: nothing was validated
    (_report(("health:cicd", False), passed=True), 0),  # a check failed whatever the top line says
])
def test_summary_never_passes_on_contradicting_evidence(report, code):
    """Any doubt is a failure: a false pass would let traffic move to a broken release."""
    assert gate_summary.summarize(from_json(report), "r1", code)["passed"] is False


def test_summary_without_a_report():
    assert gate_summary.summarize(None, "r1", 2) == {
        "passed": False, "release": "r1", "checks": 0, "failed": [], "duration_s": 0.0,
        "error": "no report (agent.validate exited 2)",
    }


def test_summary_line_is_compact_sorted_json():
    assert gate_summary.summary_line({"release": "r1", "passed": True}) == '{"passed":true,"release":"r1"}'


def test_main_prints_one_line_and_exits_by_the_verdict(tmp_path, capsys):
    path = tmp_path / "gate.json"
    path.write_text(json.dumps(_report(("health:cicd", True))))
    assert gate_summary.main(["--release", "r1", "--exit-code", "0", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True
    assert gate_summary.main(["--release", "r1", "--exit-code", "1", str(path)]) == 1
    path.write_text("{not json")
    assert gate_summary.main(["--release", "r1", "--exit-code", "0", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert json.loads(lines[-1])["error"].startswith(f"report {path} unreadable:")


@pytest.mark.parametrize(("content", "error"), [
    ("[1, 2]", "is not a JSON object"),
    ('{"passed": true, "phases": {"health": {"checks": ["health:cicd"]}}}',
     "unreadable: a check of phase health is not an object"),
    ('{"passed": true, "phases": {"health": {"checks": [{"name": "health:cicd", "passed": true, "attempts": "x"}]}}}',
     "unreadable: check health:cicd: invalid literal for int() with base 10: 'x'"),
])
def test_main_fails_a_report_it_cannot_read_naming_why(tmp_path, capsys, content, error):
    """The gate reads the report through agent.validate.report's reader: a file that is not a report never
    passes and says why, instead of a traceback the ValidationGate cannot parse."""
    path = tmp_path / "gate.json"
    path.write_text(content)
    assert gate_summary.main(["--release", "r1", "--exit-code", "0", str(path)]) == 1
    assert json.loads(capsys.readouterr().out) == {
        "passed": False, "release": "r1", "checks": 0, "failed": [], "duration_s": 0.0,
        "error": f"report {path} {error}",
    }


def test_main_without_a_report_file(tmp_path, capsys):
    assert gate_summary.main(["--release", "r1", "--exit-code", "2", str(tmp_path / "none.json")]) == 1
    assert json.loads(capsys.readouterr().out)["error"] == "no report (agent.validate exited 2)"
