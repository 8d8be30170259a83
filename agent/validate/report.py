"""Validation results and their renderings: plain text, ANSI colour, JSON and GitHub step summary markdown.

Everything here is pure: the renderers take a Report and return a string or a dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PHASES = ("health", "mcp", "e2e", "prometheus")
GREEN = "\x1b[32m"
RED = "\x1b[31m"
BOLD = "\x1b[1m"
RESET = "\x1b[0m"


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome. `detail` is what was seen last: the observation on a pass, the error on a failure."""

    name: str
    service: str
    phase: str
    passed: bool
    attempts: int
    duration_s: float
    target: str
    detail: str
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def error(self) -> str | None:
        return None if self.passed else self.detail


@dataclass(frozen=True)
class Report:
    started_at: str
    duration_s: float
    checks: tuple[CheckResult, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    project: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def passed_count(self) -> int:
        return sum(1 for c in self.checks if c.passed)

    def phases(self) -> list[tuple[str, tuple[CheckResult, ...]]]:
        """Checks grouped by phase, in phase order (unknown phases last, by first appearance)."""
        names = [p for p in PHASES if any(c.phase == p for c in self.checks)]
        names += [p for p in dict.fromkeys(c.phase for c in self.checks) if p not in PHASES]
        return [(p, tuple(c for c in self.checks if c.phase == p)) for p in names]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _shown_detail(check: CheckResult) -> str:
    detail = _one_line(check.detail)
    return detail if check.passed else f"{detail} [{check.target}]"


def _labels_text(labels: Mapping[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in labels.items())


def summary_line(report: Report) -> str:
    verdict = "passed" if report.passed else "FAILED"
    line = (
        f"validation {verdict}: {report.passed_count} of {len(report.checks)} checks passed in {report.duration_s:.2f}s"
    )
    return f"{line} [{_labels_text(report.labels)}]" if report.labels else line


def _table(report: Report, color: bool) -> str:
    width = max([len("CHECK"), *(len(c.name) for c in report.checks)])

    def paint(code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if color else text

    header = f"{'CHECK'.ljust(width)}  RESULT  TRIES     TIME  DETAIL"
    lines = [paint(BOLD, header)]
    for c in report.checks:
        result = paint(GREEN, "pass  ") if c.passed else paint(RED, "FAIL  ")
        lines.append(
            f"{c.name.ljust(width)}  {result}  {c.attempts:>5}  {c.duration_s:>6.2f}s  {_shown_detail(c)}".rstrip()
        )
    lines.append(paint(GREEN if report.passed else RED, summary_line(report)))
    return "\n".join(lines) + "\n"


def render_text(report: Report) -> str:
    return _table(report, color=False)


def render_color(report: Report) -> str:
    return _table(report, color=True)


def check_json(check: CheckResult) -> dict[str, Any]:
    return {
        "name": check.name,
        "service": check.service,
        "phase": check.phase,
        "passed": check.passed,
        "attempts": check.attempts,
        "duration_s": round(check.duration_s, 3),
        "target": check.target,
        "detail": check.detail,
        "error": check.error,
        "data": dict(check.data),
    }


def to_json(report: Report) -> dict[str, Any]:
    return {
        "passed": report.passed,
        "project": report.project,
        "started_at": report.started_at,
        "duration_s": round(report.duration_s, 3),
        "labels": dict(report.labels),
        "summary": {
            "checks": len(report.checks),
            "passed": report.passed_count,
            "failed": len(report.checks) - report.passed_count,
        },
        "phases": {
            phase: {"passed": all(c.passed for c in checks), "checks": [check_json(c) for c in checks]}
            for phase, checks in report.phases()
        },
    }


def from_json(data: Mapping[str, Any]) -> Report:
    """The Report a `--json` file holds (the inverse of to_json; check order is phase order)."""
    checks = tuple(
        CheckResult(name=str(c["name"]), service=str(c["service"]), phase=str(c["phase"]), passed=bool(c["passed"]),
                    attempts=int(c["attempts"]), duration_s=float(c["duration_s"]), target=str(c["target"]),
                    detail=str(c["detail"]), data=dict(c.get("data") or {}))
        for phase in (data.get("phases") or {}).values() for c in phase["checks"])
    return Report(started_at=str(data.get("started_at", "")), duration_s=float(data.get("duration_s", 0.0)),
                  checks=checks, labels=dict(data.get("labels") or {}), project=str(data.get("project", "")))


def _md_cell(text: str) -> str:
    return _one_line(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _md_code(text: str) -> str:
    return "`" + _md_cell(text).replace("`", "'") + "`"


def render_markdown(report: Report) -> str:
    """GitHub step summary markdown (appended to $GITHUB_STEP_SUMMARY)."""
    icon, verdict = ("✅", "passed") if report.passed else ("❌", "failed")
    title = f"### {icon} Validation {verdict}: {report.passed_count} of {len(report.checks)} checks passed"
    lines = [f"{title} in {report.duration_s:.2f} s", ""]
    if report.labels:
        labels = " ".join(_md_code(f"{k}={v}") for k, v in report.labels.items())
        lines += [f"Labels: {labels}", ""]
    lines += ["| Check | Result | Tries | Time | Detail |", "| :-- | :-- | --: | --: | :-- |"]
    for c in report.checks:
        result = "✅ pass" if c.passed else "❌ FAIL"
        lines.append(
            f"| {_md_cell(c.name)} | {result} | {c.attempts} | {c.duration_s:.2f} s | {_md_cell(_shown_detail(c))} |"
        )
    return "\n".join(lines) + "\n"
