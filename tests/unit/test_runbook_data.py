"""docs/runbook.md's "Data tier" section shows exactly the commands the e2e tier runs (tests/data_commands.py,
run by tests/e2e/test_data_backup.py with its own project names): every one of them, and no other local
`ops.cli data` or `agent.hostagent` line."""

from __future__ import annotations

import re
from pathlib import Path

from tests.data_commands import RUNBOOK, lines

ROOT = Path(__file__).resolve().parents[2]


def section_commands() -> list[str]:
    text = (ROOT / "docs" / "runbook.md").read_text()
    section = text.split("\n## Data tier\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```bash\n(.*?)^```", section, re.S | re.M)
    found = [re.sub(r"\s+# .*$", "", line).strip() for block in blocks for line in block.splitlines()]
    return [line for line in found if line.startswith(("python -m ops.cli data", "python -m agent.hostagent"))]


def test_the_runbook_shows_the_commands_the_tests_run() -> None:
    """Rule: what the runbook tells an operator to type is what the e2e test ran. Risk: a documented command that
    no longer works (a renamed option), found during an incident."""
    assert sorted(section_commands()) == sorted(lines(RUNBOOK))
