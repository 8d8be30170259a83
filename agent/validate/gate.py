"""One JSON line summing up a validation report, for a caller that reads stdout (the Pulumi ValidationGate).

    python -m agent.validate.gate --release 1a2b3c4 --exit-code "$?" <project>/reports/gate-1a2b3c4.json

Prints {"passed", "release", "checks", "failed", "duration_s"} (plus "error" when the report is missing or
unreadable) as the LAST line on stdout and exits 1 unless the validator exited 0 AND the report says passed.
Standard library only; it never prints a check's detail, only check names.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def summarize(report: Mapping[str, Any] | None, release_id: str, exit_code: int, error: str = "") -> dict[str, Any]:
    """The gate's verdict: passed only when the validator exited 0 and its report lists checks, all passed."""
    if report is None:
        why = error or f"no report (agent.validate exited {exit_code})"
        return {"passed": False, "release": release_id, "checks": 0, "failed": [], "duration_s": 0.0, "error": why}
    phases = report.get("phases") or {}
    checks = [c for phase in phases.values() for c in phase.get("checks", [])]
    failed = [str(c.get("name", "?")) for c in checks if not c.get("passed")]
    return {
        "passed": exit_code == 0 and report.get("passed") is True and bool(checks) and not failed,
        "release": release_id,
        "checks": len(checks),
        "failed": failed,
        "duration_s": round(float(report.get("duration_s", 0.0)), 3),
    }


def summary_line(summary: Mapping[str, Any]) -> str:
    return json.dumps(dict(summary), sort_keys=True, separators=(",", ":"))


def read_report(path: Path) -> tuple[dict[str, Any] | None, str]:
    """The report, or None and why it could not be read."""
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        return None, ""
    except (OSError, ValueError) as exc:
        return None, f"report {path} unreadable: {exc}"
    if not isinstance(value, dict):
        return None, f"report {path} is not a JSON object"
    return value, ""


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agent.validate.gate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("report", type=Path, help="the JSON report agent.validate wrote (--json)")
    p.add_argument("--release", required=True, help="the release id the report is about")
    p.add_argument("--exit-code", type=int, required=True, help="agent.validate's exit status")
    args = p.parse_args(argv)
    report, error = read_report(args.report)
    summary = summarize(report, args.release, args.exit_code, error)
    print(summary_line(summary), flush=True)
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
