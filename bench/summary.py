"""The final table: one row per measure, naive vs ours, with the ratio or the goal."""

from __future__ import annotations

from typing import Any

from bench import common as c
from bench import release_flow_table, validator


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def _zero_goal(load: dict[str, Any]) -> str:
    """Goal 0 failed; when it is missed only by overload, say that nothing went down."""
    if load["failed"] == 0:
        return "goal 0: met"
    return "goal 0: NOT met" + (" (0 down: all overload)" if load.get("down", 0) == 0 else "")


def _release_rows(ab: dict[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    for key in ("agent", "gateway"):
        measured = ab["rows"].get(key, {})
        if not measured:
            continue
        naive, ours = measured.get("naive"), measured.get("ours")
        if key == "gateway":
            note = "ours recreates the gateway: (c) is the zero-downtime path"
        else:
            note = _zero_goal(ours["load"]) if ours else "-"
        name = f"{key} change ({ab['changes'][key]})"

        def cell(row: dict[str, Any] | None, text: str) -> str:
            return "-" if row is None else (text if row["ok"] else f"{text} (release FAILED)")

        gap = {w: r["load"]["longest_gap_s"] if r else None for w, r in (("naive", naive), ("ours", ours))}
        healthy = {w: r["healthy_after_s"] if r else None for w, r in (("naive", naive), ("ours", ours))}
        rows += [
            [f"(a) failed requests, {name}", cell(naive, c.failures(naive["load"]) if naive else ""),
             cell(ours, c.failures(ours["load"]) if ours else ""), note],
            [f"(a) longest gap, {name}", cell(naive, c.seconds(gap["naive"])), cell(ours, c.seconds(gap["ours"])),
             c.compare(gap["naive"], gap["ours"])],
            [f"(a) release until all healthy, {name}", cell(naive, c.seconds(healthy["naive"])),
             cell(ours, c.seconds(healthy["ours"]) + " (validated)"), c.compare(healthy["naive"], healthy["ours"])],
        ]
    for key, measured in ab["rows"].items():
        counts = {w: f"{len(r['recreated'])}/{r['containers']}" for w, r in measured.items()}
        if counts:
            goal = f"goal 1/9: {verdict(len(measured['ours']['recreated']) == 1)}" if "ours" in measured else "-"
            rows.append([f"(b) containers recreated, {key} change", counts.get("naive", "-"), counts.get("ours", "-"),
                         goal])
    return rows


def _flip_rows(result: dict[str, Any]) -> list[list[str]]:
    load = result["load"]
    return [["(c) failed requests, flip green→blue→green", "-", c.failures(load), _zero_goal(load)],
            ["(c) longest gap during the flips", "-", c.seconds(load["longest_gap_s"]), "-"]]


def _validator_rows(d: dict[str, Any]) -> list[list[str]]:
    out = []
    for model, label in validator.MODELS.items():
        m = d["models"][model]
        med = m["median_s"]
        out.append([f"(d) validation wall time, {d['delay_s'] * 1000:.0f} ms {label}", c.seconds(med["curl"]),
                    c.seconds(med["validator"]),
                    f"{m['ratio']:.1f}x faster (goal ≥ {d['goal']:.0f}x: {verdict(m['ratio'] >= d['goal'])})"])
    return out


def rows(results: dict[str, Any]) -> list[list[str]]:
    """Rows for every result present (results kept from an earlier run of another shape are left out)."""
    out: list[list[str]] = []
    for key, make in (("ab", _release_rows), ("c", _flip_rows), ("d", _validator_rows),
                      ("e", release_flow_table.summary_rows)):
        if key in results:
            try:
                out += make(results[key])
            except (KeyError, TypeError):
                out.append([f"({key}) result from an older run cannot be read: run it again", "-", "-", "-"])
    return out
