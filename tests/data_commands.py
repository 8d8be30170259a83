"""The data tier's commands as docs/runbook.md writes them (section "Data tier"): tests/e2e/test_data_backup.py runs
each one with its own project names, tests/unit/test_runbook_data.py finds each one in the runbook with the
runbook's names. So the runbook's local commands are the ones the tests run.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class Names:
    stack: str  # the stack whose `data` export names the data host
    project: str  # the data tier's project
    fresh: str  # a project restored into, fresh
    color: str  # a color whose own volumes still hold the data (before the data tier)
    backup: str  # a backup id
    directory: str  # a directory holding a volume's files (a snapshot mounted read-only)


RUNBOOK = Names(stack="local", project="data", fresh="data-restore", color="green", backup="20261202T030000Z",
                directory="DIR")


def cli(n: Names) -> dict[str, list[str]]:
    """`python -m ops.cli data …` (on the operator's machine)."""
    base = ["python", "-m", "ops.cli", "data"]
    return {"backup": [*base, "backup", "--stack", n.stack, "--label", "before-upgrade"],
            "backups": [*base, "backups", "--stack", n.stack],
            "restore": [*base, "restore", "--stack", n.stack, "--backup", n.backup, "--into", n.fresh, "--yes"],
            "replace": [*base, "restore", "--stack", n.stack, "--backup", n.backup, "--replace", "--yes"]}


def agent(n: Names) -> dict[str, list[str]]:
    """`python -m agent.hostagent …` arguments (on the host, from the agent's code directory)."""
    return {"color-backup": ["--project", n.color, "backup", "--label", "to-data-tier"],
            "color-restore": ["--project", n.project, "restore-backup", n.backup, "--from-project", n.color,
                              "--volume", "state-data", "--volume", "rag-index"],
            "import": ["--project", n.project, "import-backup", "--volume", f"state-data={n.directory}",
                       "--label", "from-snapshot"],
            "import-restore": ["--project", n.project, "restore-backup", n.backup, "--replace"]}


def lines(n: Names) -> list[str]:
    """Each command as one shell line, as the runbook shows it."""
    return ([shlex.join(argv) for argv in cli(n).values()]
            + [f"python -m agent.hostagent {shlex.join(args)}" for args in agent(n).values()])
