"""(e) as data and text: when the host switched, failed and restored (its audit log and job logs), each row's
cells and the summary lines. Pure: bench/release_flow.py gathers, this reads and prints."""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from bench import common as c

SCENARIOS = {
    # scenario: (service changed, line appended to its service.conf, what the row is called)
    "good": ("code-review", "# bench (e): a harmless change", "good release (code-review comment)"),
    "errors": ("gateway-mcp", "DEVTOOLS_BROKEN=errors", "bad under traffic (gateway-mcp errors)"),
    "unhealthy": ("gateway-mcp", "DEVTOOLS_BROKEN=unhealthy", "fails validation (gateway-mcp unhealthy)"),
}
WAYS = {"naive": "in place (pulumi up)", "ours": "ours (ops.cli release)"}
_LINE = re.compile(r"^\[(\d\d):(\d\d):(\d\d)\] (.*)$")
_FLIPPED = re.compile(r"; (\d+(?:\.\d+)?)s from the first failing measurement to traffic on ")
DAY = 86400


def utc_seconds(ts: str) -> float:
    """The audit log's `ts` (`2026-12-02T14:35:15Z`) as unix time."""
    return float(calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")))


def line_clock(log: str, needle: str) -> int | None:
    """Seconds after midnight (the host's clock) of the first job log line `[HH:MM:SS] …` whose text starts with
    `needle`; None when there is none."""
    for line in log.splitlines():
        m = _LINE.match(line)
        if m and m.group(4).startswith(needle):
            return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3))
    return None


def host_check(events: Sequence[Mapping[str, Any]], logs: Mapping[str, str], release: str) -> dict[str, Any]:
    """What the host did with `release`, from the audit entries of its project written during the run and the
    job logs they name (job id → text): validation passed or failed (stage, reason), and as unix times the start
    of its container switch (`pulled images of R`: compose up follows), the failure, and the restore's end.

    Job log lines carry the time of day only: each is placed after the apply's own start line (`apply: … → R`),
    whose full UTC time is its `apply.started` audit entry; 1 s resolution."""
    mine = [e for e in events if e.get("release") == release or e.get("failed") == release]
    started = next((e for e in mine if e.get("event") == "apply.started"), None)
    failed = next((e for e in mine if e.get("event") in ("apply.failed", "gate.failed")), None)
    passed = any(e.get("event") == "apply.succeeded" for e in mine) and failed is None
    restored = next((e for e in mine if e.get("event") == "rollback.succeeded" and e.get("failed") == release), None)
    out: dict[str, Any] = {"result": "failed" if failed else ("passed" if passed else None),
                           "stage": (failed or {}).get("stage"), "reason": (failed or {}).get("reason"),
                           "switch_at": None, "failed_at": None,
                           "restored_at": utc_seconds(restored["ts"]) if restored else None}
    if started is None:
        return out
    apply_log = logs.get(str(started.get("job")), "")
    anchor = line_clock(apply_log, "apply: ")
    if anchor is None:
        return out
    base = utc_seconds(started["ts"])

    def at(clock: int | None) -> float | None:
        return None if clock is None else base + (clock - anchor) % DAY

    out["switch_at"] = at(line_clock(apply_log, f"pulled images of {release} "))
    if failed is not None:
        action = str(failed["event"]).split(".", 1)[0]
        out["failed_at"] = at(line_clock(logs.get(str(failed.get("job")), ""), f"{action} of {release} failed at"))
    return out


def flipped_back(analysis: Mapping[str, Any], output: str) -> tuple[float | None, str]:
    """When ours moved traffic back, and where that was read: the run record's `analysis.flipped_back_at`, else
    the flow's own line `flipped back to <color>: …; N.Ns from the first failing measurement to traffic on
    <color>` added to the record's `analysis.post.first_failure_at`."""
    if analysis.get("flipped_back_at") is not None:
        return float(analysis["flipped_back_at"]), "record"
    detected = (analysis.get("post") or {}).get("first_failure_at")
    m = _FLIPPED.search(output)
    if detected is None or m is None:
        return None, "-"
    return float(detected) + float(m.group(1)), "printed"


# cells ----------------------------------------------------------------------------------------------------
def _since(row: Mapping[str, Any], key: str) -> str | None:
    origin, at = row.get("origin_at"), row.get(key)
    return None if origin is None or at is None else c.seconds(max(0.0, at - origin))


def detect_cell(row: Mapping[str, Any]) -> str:
    if row.get("never_on_traffic"):
        return "never on traffic"
    shown = _since(row, "detected_at")
    if shown is not None:
        return shown
    return "not detected" if row.get("bad") else "-"


def revert_cell(row: Mapping[str, Any]) -> str:
    if row.get("never_on_traffic"):
        return "-"
    shown = _since(row, "reverted_at")
    if shown is not None:
        return shown
    return "not reverted" if row.get("bad") else "-"


def validation_cell(check: Mapping[str, Any]) -> str:
    """The host's validation of the release: `passed`, or `failed at <stage> after N s` (from its container
    switch), `-` when the host has no record of it."""
    if check.get("result") == "failed":
        took = (f" after {check['failed_at'] - check['switch_at']:.0f} s"
                if check.get("failed_at") is not None and check.get("switch_at") is not None else "")
        return f"failed at {check.get('stage') or '?'}{took}"
    return "passed" if check.get("result") == "passed" else "-"


def total_cell(seconds: float | None, watched: float) -> str:
    """The release's wall time; an in-place release left running is watched for the bake window afterwards."""
    if seconds is None:
        return "-"
    return c.seconds(seconds) + (f" + {watched:g} s watched" if watched else "")


def errors_cell(row: Mapping[str, Any]) -> str:
    load = row["load"]
    text = ", ".join(f"{k} {v}" for k, v in load["errors"].items()) or "-"
    if not row.get("load_covered", True):
        text = "the load stopped before the release ended; " + text
    return text


def rows(result: Mapping[str, Any]) -> list[list[str]]:
    out = []
    for scenario, (_, _, label) in SCENARIOS.items():
        for way in ("naive", "ours"):
            row = result["rows"].get(scenario, {}).get(way)
            if row is None:
                continue
            out.append([label, WAYS[way], row["outcome"], c.failures(row["load"]), detect_cell(row),
                        revert_cell(row), validation_cell(row.get("validation") or {}),
                        total_cell(row.get("seconds"), row.get("watched_s") or 0), errors_cell(row)])
    return out


HEADERS = ["release", "way", "outcome", "failed/total", "time to detect", "time to revert", "host validation",
           "total", "errors"]


def notes(result: Mapping[str, Any]) -> list[str]:
    window = result.get("window_s")
    return [
        "  detect and revert count from traffic reaching the bad release: ours from promote_started_at (the "
        "promote update's start: the load balancer moves during it) to the first failing measurement and to "
        "flipped_back_at (or, where the run record has none, "
        "the seconds the flow printed from that measurement to the flip back); in place from the start of the "
        "host's container switch (its job log, 1 s resolution) to the failed validation and to the last failed "
        "request (then every request succeeded)",
        f"  bake window {window:g} s; an in-place release that stays up is watched as long after its update"
        if isinstance(window, int | float) else "  bake window unknown (setup did not finish)",
    ]


def tables(result: Mapping[str, Any]) -> None:
    c.show(f"(e) releases under {result['rate']:g} MCP tools/call per second through {result['lb']}/mcp "
           "(goal: ours fails fewer requests)", HEADERS, rows(result))
    print("\n".join(notes(result)), flush=True)


def summary_rows(result: Mapping[str, Any]) -> list[list[str]]:
    out = []
    for scenario, (_, _, label) in SCENARIOS.items():
        measured = result["rows"].get(scenario, {})
        if not measured:
            continue
        naive, ours = measured.get("naive"), measured.get("ours")
        ratio = c.failed_ratio(naive["load"]["failed"], ours["load"]["failed"]) if naive and ours else "-"
        out.append([f"(e) failed requests, {label}", c.failures(naive["load"]) if naive else "-",
                    c.failures(ours["load"]) if ours else "-", ratio])
    return out
