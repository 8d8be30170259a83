"""`ops.cli release` and `ops.cli history`: their arguments, and the history read from the traffic owner's
`releaseRuns` output. The release itself (ops/release.py) drives the stacks through the Automation API, so it is
imported only when a release runs: every other command starts without loading the Pulumi SDK."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ops.operator_host import EXIT_OK, Pulumi, append_step_summary
from ops.release_record import history_markdown, history_table

RELEASE_HELP = """One release through the idle color: build once, apply to the idle color (its validation gate),
promote (the flip, written to the stack config), post-promotion analysis of the live color for the bake window
(devtools:analysis* keys), then stable, or an automatic flip back with the bad color's diagnostics (it is left
running) and exit 1. With devtools:releaseStrategy inPlace (one color, or a first deploy) the release is applied
where it runs, analysed, and the previous release pinned again on failure. A promotion left half-way by a killed
run is finished first. Exit codes: 0 stable · 1 failed, flipped back or rolled back · 2 cannot start · 3 declined."""


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("release", parents=[common], help="one release through the idle color, analysed before and "
                       "after promotion, flipped back automatically", description=RELEASE_HELP)
    s.add_argument("--dry-run", action="store_true", help="print the phases and the analysis queries; change nothing")
    s.add_argument("--yes", action="store_true", help="do not ask")
    s.add_argument("--collect", type=Path, default=Path("reports/release"),
                   help="where the bad color's reports and diagnostics go (default reports/release)")
    s = sub.add_parser("history", parents=[common], help="the last release runs of the traffic owner (releaseRuns)")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.add_argument("--summary", action="store_true", help="also append the table to $GITHUB_STEP_SUMMARY")


def run_release(pulumi: Pulumi, args: argparse.Namespace) -> int:
    from ops import release  # noqa: PLC0415 - loads the Pulumi SDK (Automation API): only when a release runs

    return release.main(pulumi.cwd, args.stack, dry_run=args.dry_run, yes=args.yes, collect_dir=args.collect,
                        ssh_key=args.ssh_key)


def run_history(pulumi: Pulumi, args: argparse.Namespace) -> int:
    runs = pulumi.outputs(args.stack).get("releaseRuns") or []
    runs = [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []
    if args.json:
        print(json.dumps(runs, indent=2))
    else:
        print(history_table(runs) if runs else f"stack {args.stack} records no release run yet")
    if args.summary and runs:
        append_step_summary(history_markdown(runs))
    return EXIT_OK
