"""One JSON line summing up a validation report, for a caller that reads stdout (the Pulumi ValidationGate, through
`hostagent gate`: agent.pool builds the summary, the job's follower prints it last).

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

from agent.validate.report import Report, ReportError, read_json


def summarize(report: Report | None, release_id: str, exit_code: int, error: str = "") -> dict[str, Any]:
    """The gate's verdict: passed only when the validator exited 0 and its report says passed, lists checks,
    and every one passed."""
    if report is None:
        why = error or f"no report (agent.validate exited {exit_code})"
        return {"passed": False, "release": release_id, "checks": 0, "failed": [], "duration_s": 0.0, "error": why}
    return {
        "passed": exit_code == 0 and report.stated_passed is True and report.passed,
        "release": release_id,
        "checks": len(report.checks),
        "failed": report.failed_names,
        "duration_s": round(report.duration_s, 3),
    }


def summary_line(summary: Mapping[str, Any]) -> str:
    return json.dumps(dict(summary), sort_keys=True, separators=(",", ":"))


def read_report(path: Path) -> tuple[Report | None, str]:
    """The report, or None and why it could not be read ("" when there is none)."""
    try:
        return read_json(path), ""
    except FileNotFoundError:
        return None, ""
    except ReportError as exc:
        return None, str(exc)


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
