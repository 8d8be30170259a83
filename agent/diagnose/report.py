"""The diagnostics report: its data (what agent.diagnose collects; asdict() gives the --json document) and its
text form. Standard library only.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any


@dataclass
class State:
    status: str
    health: str | None
    health_log: list[dict[str, Any]]
    restart_count: int
    exit_code: int | None
    oom_killed: bool
    error: str
    started_at: str
    finished_at: str


@dataclass
class Probe:
    url: str | None
    status: int | None = None
    body: str = ""
    elapsed_ms: int | None = None
    error: str | None = None


@dataclass
class ContainerReport:
    service: str
    name: str
    id: str
    state: State
    image: str
    image_id: str
    repo_digests: list[str]
    env: list[str]
    command: list[str]
    health: Probe
    image_error: str | None = None
    stats: dict[str, Any] | None = None
    stats_error: str | None = None
    logs: list[str] = field(default_factory=list)
    logs_error: str | None = None


@dataclass
class Report:
    project: str
    requested: list[str] | None
    generated_at: str
    known_services: list[str]
    containers: list[ContainerReport]
    errors: list[str]


def _block(title: str, lines: list[str]) -> list[str]:
    return [f"{title}:", *(f"  {line}" for line in lines)] if lines else [f"{title}: (none)"]


def render_probe(p: Probe) -> list[str]:
    if p.url is None:
        return [f"health: not probed: {p.error}"]
    if p.status is None:
        return [f"health: GET {p.url} failed after {p.elapsed_ms} ms: {p.error}"]
    return [f"health: GET {p.url} -> {p.status} in {p.elapsed_ms} ms", *(f"  {x}" for x in p.body.splitlines())]


def render_stats(stats: dict[str, Any]) -> str:
    """One line from a `docker stats --format '{{json .}}'` record."""
    s = {k: stats.get(k, "?") for k in ("CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs")}
    memory = f"memory {s['MemUsage']} ({s['MemPerc']})"
    return f"cpu {s['CPUPerc']}, {memory}, net {s['NetIO']}, block {s['BlockIO']}, pids {s['PIDs']}"


def render_state(s: State) -> str:
    health = f", health {s.health}" if s.health else ""
    error = f", error {s.error}" if s.error else ""
    oom = "yes" if s.oom_killed else "no"
    return f"state: {s.status}{health}, restarts {s.restart_count}, exit code {s.exit_code}, oom-killed {oom}{error}"


def render_check(entry: dict[str, Any]) -> list[str]:
    """One health-check log entry: `<start> exit <code>: <output>`, further output lines indented."""
    first, *rest = str(entry.get("output") or "").splitlines() or [""]
    head = f"{entry.get('start')} exit {entry.get('exit_code')}" + (f": {first}" if first else "")
    return [head, *(f"  {line}" for line in rest)]


def render_container(c: ContainerReport, log_file: str | None = None) -> str:
    """Text for one container; with log_file the log lines are referred to instead of included."""
    s = c.state
    lines = [
        f"== {c.service} ({c.name} {c.id}) ==",
        render_state(s),
        f"started: {s.started_at}, finished: {s.finished_at}",
        f"image: {c.image} ({c.image_id})" + (f", inspect failed: {c.image_error}" if c.image_error else ""),
        *_block("repo digests", c.repo_digests),
        "resources: " + (render_stats(c.stats) if c.stats else f"unavailable: {c.stats_error}"),
        *render_probe(c.health),
        *_block("health-check log", [line for e in s.health_log for line in render_check(e)]),
        "command: " + shlex.join(c.command),
        *_block("env", c.env),
    ]
    if c.logs_error:
        lines.append(f"logs: unavailable: {c.logs_error}")
    elif log_file:
        lines.append(f"logs: {len(c.logs)} lines in {log_file}")
    else:
        lines += _block(f"logs (last {len(c.logs)} lines)", c.logs)
    return "\n".join(lines) + "\n"


def render_report(report: Report) -> str:
    head = [f"diagnostics of project {report.project} at {report.generated_at}"]
    head += [f"error: {e}" for e in report.errors]
    return "\n".join(["\n".join(head) + "\n", *(render_container(c) for c in report.containers)])
