"""Validation results and their renderings: plain text, ANSI colour, JSON and GitHub step summary markdown.

The renderers are pure: they take a Report and return a string or a dict. `to_json` writes the report file
(`agent.validate --json`) and `from_json` / `read_json` are its one reader: the gate's summary, the rollout's
failing services and the operator's step summary all read a report through them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PHASES = ("health", "mcp", "e2e", "prometheus", "traces")
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
    # The verdict a report file states ("passed"), as from_json read it; None for a Report built from results.
    stated_passed: bool | None = field(default=None, compare=False)
    # The trace phase's coverage (agent.validate.traces): {"agents", "coverage", "min", "host"}; None: phase off.
    traces: Mapping[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def passed_count(self) -> int:
        return sum(1 for c in self.checks if c.passed)

    @property
    def failed_names(self) -> list[str]:
        """The failed checks' names, in report order."""
        return [c.name for c in self.checks if not c.passed]

    @property
    def failed_services(self) -> list[str]:
        """The services with at least one failed check, sorted (a check of no one service is left out)."""
        return sorted({c.service for c in self.checks if not c.passed and c.service})

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
    traces = {"traces": dict(report.traces)} if report.traces is not None else {}
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
        **traces,
    }


class ReportError(ValueError):
    """A document that is not a validation report; the message says why."""


def _phase_groups(data: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(phase name, its checks) as to_json writes them ({phase: {"checks": [...]}}), or from a list of
    {"name", "checks"} objects."""
    phases = data.get("phases") or {}
    if isinstance(phases, Mapping):
        groups = [(str(name), phase) for name, phase in phases.items()]
    elif isinstance(phases, list):
        groups = [(str(phase.get("name", "")) if isinstance(phase, Mapping) else "", phase) for phase in phases]
    else:
        raise ReportError(f"phases is a {type(phases).__name__}, not an object")
    for name, phase in groups:
        if not isinstance(phase, Mapping) or not isinstance(phase.get("checks") or [], list):
            raise ReportError(f"phase {name or '?'} is not an object with a list of checks")
        yield name, phase.get("checks") or []


def _check(phase: str, c: Any) -> CheckResult:
    """One check as check_json wrote it. A field left out reads as nothing known: a check without `passed`
    (or with anything but true there) failed."""
    if not isinstance(c, Mapping):
        raise ReportError(f"a check of phase {phase or '?'} is not an object")
    try:
        return CheckResult(name=str(c.get("name", "?")), service=str(c.get("service") or ""),
                           phase=str(c.get("phase", phase)), passed=c.get("passed") is True,
                           attempts=int(c.get("attempts", 0)), duration_s=float(c.get("duration_s", 0.0)),
                           target=str(c.get("target", "")), detail=str(c.get("detail", "")),
                           data=dict(c.get("data") or {}))
    except (TypeError, ValueError) as exc:
        raise ReportError(f"check {c.get('name', '?')}: {exc}") from exc


def from_json(data: Mapping[str, Any]) -> Report:
    """The Report a `--json` file holds (the inverse of to_json; check order is phase order). Raises
    ReportError when `data` is not a report."""
    if not isinstance(data, Mapping):
        raise ReportError("not a JSON object")
    checks = tuple(_check(phase, c) for phase, group in _phase_groups(data) for c in group)
    try:
        return Report(started_at=str(data.get("started_at", "")), duration_s=float(data.get("duration_s", 0.0)),
                      checks=checks, labels=dict(data.get("labels") or {}), project=str(data.get("project", "")),
                      stated_passed=data.get("passed") is True,
                      traces=dict(data["traces"]) if isinstance(data.get("traces"), Mapping) else None)
    except (TypeError, ValueError) as exc:
        raise ReportError(str(exc)) from exc


def read_json(path: Path) -> Report:
    """The Report in a `--json` file. FileNotFoundError when there is none; ReportError (naming the file) when
    it cannot be read or is not a report."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise ReportError(f"report {path} unreadable: {exc}") from exc
    if not isinstance(data, dict):
        raise ReportError(f"report {path} is not a JSON object")
    try:
        return from_json(data)
    except ReportError as exc:
        raise ReportError(f"report {path} unreadable: {exc}") from exc


def read_traces(path: Path) -> dict[str, bool]:
    """The `traces` section of a report file: each agent whose probe ran, and whether its trace was found
    (`"traces": {"agents": {"<agent>": true|false}, ...}`). Empty when the report, the section or its agents are
    missing or unreadable (the trace phase was off): nothing to count."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    traces = data.get("traces") if isinstance(data, dict) else None
    agents = traces.get("agents") if isinstance(traces, dict) else None
    if not isinstance(agents, dict):
        return {}
    return {str(agent): found is True for agent, found in agents.items()}


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
