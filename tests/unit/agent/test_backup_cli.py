"""`hostagent backup | backups | restore-backup | import-backup`: input refused with its fix, exit codes, what is
printed and audited (the engine in memory of tests/unit/agent/volume_fake.py stands in for docker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import backup_cli, hostagent
from agent.store import Store

from .volume_fake import Engine, with_release

VOLUMES = {"data_state-data": {"records.jsonl": b"1\n2\n"}, "data_rag-index": {}}


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Engine:
    fake = Engine(volumes={k: dict(v) for k, v in VOLUMES.items()}, containers={"state-persistence": "running"})
    monkeypatch.setattr(backup_cli, "HostDocker", lambda: fake)
    return fake


def agent(root: Path, project: str, *args: str) -> int:
    return hostagent.main(["--root", str(root), "--project", project, *args])


def test_backup_list_and_restore_through_the_cli(tmp_path: Path, engine: Engine,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with_release(tmp_path, "data")
    assert agent(tmp_path, "data", "backup", "--label", "before-upgrade") == 0
    out = capsys.readouterr().out.splitlines()
    backup_id = out[-1].split()[1]
    assert out[0] == "paused state-persistence" and out[-2].startswith("unpaused state-persistence after ")
    assert out[-1] == (f"backup {backup_id} of project data (release r1) written to "
                       f"{tmp_path}/data/backups/{backup_id}")
    entry = Store(tmp_path, "data").audit_entries()[-1]
    assert (entry["event"], entry["backup"], entry["release"], entry["label"], entry["paused"], entry["volumes"]) == (
        "backup.succeeded", backup_id, "r1", "before-upgrade", ["state-persistence"],
        {"rag-index": 10240, "state-data": 10240})
    assert agent(tmp_path, "data", "backups") == 0
    assert capsys.readouterr().out == (
        f"backups of project data in {tmp_path}/data/backups (oldest first):\n"
        f"  {backup_id}  release r1  rag-index 10240 B, state-data 10240 B  label before-upgrade\n")
    assert agent(tmp_path, "fresh", "restore-backup", backup_id, "--from-project", "data") == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"restored backup {backup_id} of project data into project fresh: fresh_rag-index, fresh_state-data")
    assert engine.volumes["fresh_state-data"] == {"records.jsonl": b"1\n2\n"}
    assert Store(tmp_path, "fresh").audit_entries()[-1]["event"] == "restore.succeeded"

    assert agent(tmp_path, "data", "restore-backup", backup_id) == 2  # its own volumes hold data
    err = capsys.readouterr().err
    assert err.startswith("restore failed: project data: data_state-data is not empty (records.jsonl). ")
    assert [e["event"] for e in Store(tmp_path, "data").audit_entries()][-1] == "restore.refused"


@pytest.mark.parametrize("case", [
    (["backup", "--label", "no spaces"], 2, "--label 'no spaces' must be 1-40 letters, digits, '.', '_' or '-', "
                                            "starting with a letter or digit\n"),
    (["backup", "--keep", "0"], 2, "--keep 0: keep at least the backup just written (1 or more)\n"),
    (["restore-backup", "20261202T120000Z", "--from-project", "../x"], 2,
     "--from-project '../x' must match ^[a-z0-9][a-z0-9_-]*\\Z; --keep at least 1\n"),
    (["import-backup", "--volume", "state-data"], 2, "--volume 'state-data': expected NAME=DIR once per volume "
                                                     "(NAME such as state-data, DIR the absolute path of a "
                                                     "directory)\n"),
    (["import-backup", "--volume", "state-data=relative"], 2, "--volume 'state-data=relative': expected NAME=DIR "
                                                              "once per volume (NAME such as state-data, DIR the "
                                                              "absolute path of a directory)\n"),
])
def test_bad_input_is_refused_naming_the_option(tmp_path: Path, engine: Engine, capsys: pytest.CaptureFixture[str],
                                                case: tuple[list[str], int, str]) -> None:
    args, code, message = case
    with_release(tmp_path, "data")
    assert agent(tmp_path, "data", *args) == code
    assert capsys.readouterr().err == message
    assert engine.calls == []


def test_a_project_without_a_release_has_nothing_to_back_up(tmp_path: Path, engine: Engine,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert agent(tmp_path, "data", "backup") == 2
    assert capsys.readouterr().err == ("backup failed: project data has no release on this host: nothing to back "
                                       "up\n")
    entry = Store(tmp_path, "data").audit_entries()[-1]
    assert (entry["event"], entry["reason"]) == ("backup.failed", "project data has no release on this host: "
                                                                  "nothing to back up")
    assert agent(tmp_path, "data", "restore-backup", "20261202T120000Z") == 2
    assert capsys.readouterr().err == (f"restore failed: no backup '20261202T120000Z' in {tmp_path}/data/backups "
                                       "(newest: none); `hostagent backups` lists them\n")


def test_a_backup_waits_for_the_projects_lock(tmp_path: Path, engine: Engine,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Rule: a backup never runs beside an apply (which recreates the containers it paused). Risk: a pause that an
    apply's `up` undoes half-way, or an apply that finds its services frozen."""
    store = with_release(tmp_path, "data")
    holder = {"job": "j1", "action": "apply", "release": "r2", "pid": 1, "since": "then"}
    with store.lock(1, holder):
        assert agent(tmp_path, "data", "backup", "--lock-timeout", "0") == 3
    assert capsys.readouterr().err == ("another rollout holds the lock of project data (job j1, apply of release r2, "
                                       "pid 1, since then); waited 0s\n")
    assert engine.calls == []
