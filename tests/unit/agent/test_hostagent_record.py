"""`hostagent record`: a release run's record (from `ops.cli release`, on stdin) joins the project's audit as
`release.run`, masked like every audit entry; anything else is refused and nothing is written."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from agent import hostagent, secretfile


def _run(monkeypatch: pytest.MonkeyPatch, root: Path, text: str) -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    return hostagent.main(["--root", str(root), "--project", "blue", "record"])


def test_a_run_record_lands_in_the_audit_masked(tmp_path, monkeypatch, capsys):
    """Risk: a reason quoting a container's output carries a secret value into the audit."""
    (tmp_path / "blue").mkdir()
    (tmp_path / "blue" / "secrets.env").write_text(secretfile.render_secrets({"TOKEN": "s3cr3t-v4lue"}))
    record = {"run": "rel-20261202T140000Z", "outcome": "flipped back", "reason": "gateway said s3cr3t-v4lue",
              "analysis": {"post": {"measurements": [{"metric": "error-ratio", "value": 0.4, "phase": "failed"}]}}}
    assert _run(monkeypatch, tmp_path, json.dumps(record)) == 0
    assert capsys.readouterr().out.startswith("run rel-20261202T140000Z (flipped back) recorded in ")
    audit = (tmp_path / "blue" / "audit.jsonl").read_text()
    entry = json.loads(audit)
    assert (entry["event"], entry["run"], entry["outcome"]) == ("release.run", record["run"], "flipped back")
    assert entry["record"]["analysis"] == record["analysis"]
    assert entry["record"]["reason"] == "gateway said ***" and "s3cr3t-v4lue" not in audit


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "record refused: not JSON"),
    ('{"outcome": "stable"}', "record refused: not a release run record (an object with `run`)"),
])
def test_anything_else_is_refused_and_nothing_is_written(tmp_path, monkeypatch, capsys, text, message):
    assert _run(monkeypatch, tmp_path, text) == 2
    assert capsys.readouterr().err.startswith(message)
    assert not (tmp_path / "blue" / "audit.jsonl").exists()
