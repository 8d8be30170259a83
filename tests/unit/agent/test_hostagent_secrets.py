"""`hostagent secrets`: stdin into the project's 0600 file in the form compose reads back exactly; a value that
cannot be carried is refused before anything changes, naming the line and key, never the value."""

from __future__ import annotations

import io
import json
import stat
import sys
from pathlib import Path

import pytest

from agent import hostagent, secretfile
from tests.unit.agent import compose_dotenv


def _run(monkeypatch: pytest.MonkeyPatch, root: Path, data: bytes) -> int:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    return hostagent.main(["--root", str(root), "--project", "green", "secrets"])


def test_secrets_land_in_a_0600_file_compose_reads_back_exactly(tmp_path, monkeypatch, capsys):
    """Risk: a `$`, ` #` or a PEM key altered on its way into the containers (or one key injected per PEM line)."""
    pem = "-----BEGIN KEY-----\nAAAA\n-----END KEY-----\n"
    values = {"PASS": "pa$$word #1", "PEM": pem, "QUOTE": 'say "hi"'}
    assert _run(monkeypatch, tmp_path, secretfile.render_secrets(values).encode()) == 0
    path = tmp_path / "green" / "secrets.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert compose_dotenv.parse(path.read_text()) == values
    out = capsys.readouterr()
    assert out.out.startswith("3 secrets written to ")
    audit = [json.loads(line) for line in (tmp_path / "green" / "audit.jsonl").read_text().splitlines()]
    assert [(e["event"], e["keys"]) for e in audit] == [("secrets.updated", ["PASS", "PEM", "QUOTE"])]
    for value in ("pa$$word", "AAAA", "hi"):
        assert value not in out.out + out.err + (tmp_path / "green" / "audit.jsonl").read_text()


@pytest.mark.parametrize(("data", "expected"), [
    (b"A=1\nPASS=hunter2\0\n", "secrets refused, nothing changed: secrets line 2: PASS: the value holds a NUL "
                               "character, which no environment variable can carry\n"),
    (b"A=1\nPASS=hunter2\xff\n", "secrets refused, nothing changed: secrets line 2: not UTF-8 text\n"),
    (b'PASS="hunter2\n', 'secrets refused, nothing changed: secrets line 1 (PASS): a double-quoted value must end '
                         'with `"` on its own line (a newline inside it is written \\n)\n'),
])
def test_a_value_that_cannot_be_carried_is_refused_and_nothing_changes(tmp_path, monkeypatch, capsys, data,
                                                                        expected):
    """The old file stays (the containers keep what they had) and the error never shows the value."""
    (tmp_path / "green").mkdir()
    (tmp_path / "green" / "secrets.env").write_text('OLD="kept"\n')
    assert _run(monkeypatch, tmp_path, data) == 2
    assert capsys.readouterr().err == expected
    assert (tmp_path / "green" / "secrets.env").read_text() == 'OLD="kept"\n'
    assert not (tmp_path / "green" / "audit.jsonl").exists()
