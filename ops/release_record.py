"""The record of one `ops.cli release` run (steps, timings, every analysis measurement, the outcome) and the
history table `ops.cli history` prints from the traffic owner's `releaseRuns` output. Pure."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

OUTCOMES = ("stable", "flipped back", "never promoted", "rolled back", "failed")


def utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_id(at: float) -> str:
    """`rel-<UTC time>`: sortable, and what the promotion marker and the record carry."""
    return "rel-" + datetime.fromtimestamp(at, UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass
class Record:
    run: str
    stack: str
    strategy: str
    started: float
    release: str | None = None
    from_color: str | None = None
    to_color: str | None = None
    outcome: str | None = None
    reason: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)
    analysis: dict[str, Any] = field(default_factory=dict)
    resumed: str | None = None  # the run this one finished, when it found a promotion left half-way
    ended: float | None = None

    @contextmanager
    def step(self, name: str, detail: str = "", clock: Any = time.time) -> Iterator[dict[str, Any]]:
        """Time one step; it is recorded as failed when the block raises (and the exception goes on)."""
        t0 = clock()
        entry: dict[str, Any] = {"step": name, "detail": detail, "started": utc(t0), "outcome": "running"}
        self.steps.append(entry)
        try:
            yield entry
        except BaseException as exc:
            entry["outcome"], entry["error"] = "failed", str(exc)
            raise
        finally:
            entry["seconds"] = round(clock() - t0, 1)
        entry["outcome"] = "passed" if entry["outcome"] == "running" else entry["outcome"]

    def finish(self, outcome: str, reason: str = "", at: float | None = None) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        self.outcome, self.reason, self.ended = outcome, reason, time.time() if at is None else at

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run, "stack": self.stack, "strategy": self.strategy, "release": self.release,
                "from": self.from_color, "to": self.to_color, "outcome": self.outcome, "reason": self.reason,
                "started": utc(self.started), "ended": utc(self.ended) if self.ended else None,
                "seconds": round(self.ended - self.started, 1) if self.ended else None,
                "resumed": self.resumed, "steps": self.steps, "analysis": self.analysis}


def _cell(value: Any) -> str:
    return "-" if value in (None, "") else str(value)


def history_table(runs: Sequence[Mapping[str, Any]]) -> str:
    """One row per run, newest last: when, release, colors, outcome, duration, post-promotion measurements (taken,
    failed), and the reason."""
    header = ("RUN", "RELEASE", "TRAFFIC", "OUTCOME", "SECONDS", "MEASURED", "FAILED", "REASON")
    rows = [header]
    for r in runs:
        post = (r.get("analysis") or {}).get("post") or {}
        measurements = post.get("measurements") or []
        failed = sum(1 for m in measurements if m.get("phase") == "failed")
        traffic = f"{_cell(r.get('from'))} -> {_cell(r.get('to'))}" if r.get("to") else "-"
        rows.append((_cell(r.get("run")), _cell(r.get("release")), traffic, _cell(r.get("outcome")),
                     _cell(r.get("seconds")), str(len(measurements)), str(failed), _cell(r.get("reason"))[:80]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
                     for row in rows)


def history_markdown(runs: Sequence[Mapping[str, Any]]) -> str:
    """The same table for a GitHub job summary, plus each run's measurements."""
    lines = ["| run | release | traffic | outcome | seconds | reason |", "| --- | --- | --- | --- | --- | --- |"]
    for r in runs:
        lines.append(f"| {_cell(r.get('run'))} | {_cell(r.get('release'))} | {_cell(r.get('from'))} → "
                     f"{_cell(r.get('to'))} | {_cell(r.get('outcome'))} | {_cell(r.get('seconds'))} | "
                     f"{_cell(r.get('reason'))} |")
    return "\n".join(lines) + "\n"


def run_markdown(record: Mapping[str, Any]) -> str:
    """One run for the job summary: its steps with timings and every post-promotion measurement."""
    lines = [f"### Release {record.get('release')} ({record.get('run')}): {record.get('outcome')}", "",
             str(record.get("reason") or ""), "", "| step | outcome | seconds | detail |", "| --- | --- | --- | --- |"]
    lines += [f"| {s.get('step')} | {s.get('outcome')} | {s.get('seconds')} | {s.get('error') or s.get('detail')} |"
              for s in record.get("steps") or []]
    post = (record.get("analysis") or {}).get("post") or {}
    if post.get("measurements"):
        lines += ["", "| metric | at | value | max | phase |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {m.get('metric')} | {utc(float(m['at'])) if m.get('at') else '-'} | {_cell(m.get('value'))} | "
                  f"{m.get('max')} | {m.get('phase')} |" for m in post["measurements"]]
    return "\n".join(lines) + "\n"
