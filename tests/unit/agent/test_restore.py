"""agent.restore through an engine in memory (tests/unit/agent/volume_fake.py): a fresh project gets the data, a
project that holds data is refused unless --replace, which backs up what is there first; a corrupted tar is
refused before anything is written; directories become a backup like any other."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from agent import backup as bk
from agent import restore as rs
from agent.store import Store

from .volume_fake import RAG_IMAGE, STATE_IMAGE, Engine, files_of, with_release

NOON = 1796212800.0  # 2026-12-02T12:00:00Z
RECORDS = {"records.jsonl": b'{"a":1}\n{"a":2}\n'}
DOCS = {"documents.jsonl": b'{"d":1}\n'}


def source_backup(root: Path, engine: Engine) -> str:
    store = with_release(root, "data")
    release, volumes, compose = bk.current_release(store)
    return str(bk.take_backup(store, engine, volumes, release=release, compose=compose, label=None, keep=7,
                              timeout=60, log=lambda _l: None, now=NOON)["id"])


def restore(store: Store, engine: Engine, backup_id: str, *, replace: bool = False, only: tuple[str, ...] = (),
            fallback: dict[str, str | None] | None = None) -> dict[str, Any]:
    return rs.restore(store, engine, source=store.root / "data" / "backups", backup_id=backup_id, only=only,
                      replace=replace, keep=7, timeout=60, stop_timeout=30, fallback_images=fallback or {},
                      log=lambda _l: None)


@pytest.fixture
def engine() -> Engine:
    return Engine(volumes={"data_state-data": dict(RECORDS), "data_rag-index": dict(DOCS)})


def test_a_fresh_project_gets_every_volume_labelled_as_its_own(tmp_path: Path, engine: Engine) -> None:
    """Rule: volumes a fresh project does not have yet are created with compose's labels (its `up` adopts them)
    and filled from the backup. Risk: an `up` that warns about foreign volumes or makes empty ones beside them."""
    backup_id = source_backup(tmp_path, engine)
    engine.calls.clear()
    summary = restore(Store(tmp_path, "fresh"), engine, backup_id)
    assert engine.verbs() == ["create fresh_rag-index", "write fresh_rag-index", "create fresh_state-data",
                              "write fresh_state-data"]
    assert engine.volumes["fresh_state-data"] == RECORDS and engine.volumes["fresh_rag-index"] == DOCS
    assert engine.labels["fresh_state-data"] == {"com.docker.compose.project": "fresh",
                                                 "com.docker.compose.volume": "state-data"}
    assert summary == {"backup": backup_id, "source": "data", "release": None, "stopped": [], "replaced_backup": None,
                       "volumes": ["fresh_rag-index", "fresh_state-data"]}


def test_a_running_fresh_project_is_stopped_meanwhile_and_started_again(tmp_path: Path, engine: Engine) -> None:
    backup_id = source_backup(tmp_path, engine)
    target = with_release(tmp_path, "fresh")
    engine.volumes |= {"fresh_state-data": {}, "fresh_rag-index": {}}
    engine.containers = {"state-persistence": "running", "rag-context": "exited"}
    engine.calls.clear()
    restore(target, engine, backup_id, only=("state-data",))
    assert engine.verbs() == ["list fresh_state-data", "stop state-persistence", "write fresh_state-data",
                              "start state-persistence"]
    assert engine.volumes["fresh_state-data"] == RECORDS and engine.volumes["fresh_rag-index"] == {}


def test_a_project_holding_data_is_refused_and_left_untouched(tmp_path: Path, engine: Engine) -> None:
    """Rule: without --replace, a restore never writes into a volume that holds data (exit 2, audited). Risk: two
    data sets mixed, or the live one overwritten by a typo in --project."""
    backup_id = source_backup(tmp_path, engine)
    target = with_release(tmp_path, "fresh")
    engine.volumes |= {"fresh_state-data": {"records.jsonl": b"mine\n", "old.db": b"x"}, "fresh_rag-index": {}}
    engine.containers = {"state-persistence": "running"}
    engine.calls.clear()
    with pytest.raises(rs.Refused, match=(
            r"^project fresh: fresh_state-data is not empty \(old.db, records.jsonl\)\. Restoring there would mix two "
            r"data sets: nothing changed\. Restore into a fresh project \(another --project\), or pass --replace \(a "
            r"backup of what is there is taken first, nothing is lost\)$")) as refused:
        restore(target, engine, backup_id)
    assert refused.value.code == 2
    assert engine.verbs() == ["list fresh_rag-index", "list fresh_state-data"]
    assert engine.volumes["fresh_state-data"] == {"records.jsonl": b"mine\n", "old.db": b"x"}
    assert engine.containers == {"state-persistence": "running"}
    entry = target.audit_entries()[-1]
    assert (entry["event"], entry["backup"], entry["volumes"]) == (
        "restore.refused", backup_id, {"fresh_state-data": "not empty (old.db, records.jsonl)"})


def test_replace_backs_up_what_is_there_first(tmp_path: Path, engine: Engine) -> None:
    """Rule: --replace first takes a backup of the target's volumes (services stopped), then empties and fills
    them. Risk: the data a restore replaced is gone for good."""
    backup_id = source_backup(tmp_path, engine)
    target = with_release(tmp_path, "fresh")
    engine.volumes |= {"fresh_state-data": {"records.jsonl": b"mine\n"}, "fresh_rag-index": {}}
    engine.containers = {"state-persistence": "running", "rag-context": "running"}
    engine.calls.clear()
    summary = restore(target, engine, backup_id, replace=True)
    assert engine.verbs() == ["list fresh_rag-index", "list fresh_state-data", "stop rag-context state-persistence",
                              "read fresh_rag-index", "read fresh_state-data", "write fresh_rag-index",
                              "clear fresh_state-data", "write fresh_state-data", "start rag-context state-persistence"]
    assert engine.volumes["fresh_state-data"] == RECORDS
    kept = summary["replaced_backup"]
    manifest = bk.read_manifest(tmp_path / "fresh" / "backups", kept)
    assert manifest["label"] == f"before-restore-{backup_id}" and manifest["release"] == "r1"
    assert files_of((tmp_path / "fresh" / "backups" / kept / "state-data.tar").read_bytes()) == {
        "records.jsonl": b"mine\n"}


def test_a_corrupted_backup_is_refused_before_anything_is_written(tmp_path: Path, engine: Engine) -> None:
    backup_id = source_backup(tmp_path, engine)
    tar = tmp_path / "data" / "backups" / backup_id / "state-data.tar"
    data = bytearray(tar.read_bytes())
    data[600] ^= 1
    tar.write_bytes(bytes(data))
    engine.calls.clear()
    with pytest.raises(bk.BackupError, match=rf"^backup {backup_id}: state-data.tar is not what was written \("):
        restore(Store(tmp_path, "fresh"), engine, backup_id)
    assert engine.calls == []


def test_the_image_is_the_first_one_present(tmp_path: Path, engine: Engine) -> None:
    """Rule: the one-shot containers never pull: the backup's image, else the target's release image, else the
    source's; none present is refused naming them. Risk: a restore that needs registry credentials that expired."""
    backup_id = source_backup(tmp_path, engine)
    engine.images = {"elsewhere/state@sha256:" + "c" * 64}
    with pytest.raises(bk.BackupError, match=(
            rf"^no image with tar on this host to write volume fresh_rag-index with \(tried: {RAG_IMAGE}\): ship the "
            "project first, or `docker pull` one of them; nothing changed$")):
        restore(Store(tmp_path, "fresh"), engine, backup_id)
    restore(Store(tmp_path, "fresh"), engine, backup_id, only=("state-data",),
            fallback={"state-data": "elsewhere/state@sha256:" + "c" * 64})
    assert engine.calls[-1][engine.calls[-1].index("tar") + 1] == "elsewhere/state@sha256:" + "c" * 64
    with pytest.raises(bk.BackupError, match=f"^backup {backup_id} holds no volume caddy-data"):
        restore(Store(tmp_path, "fresh"), engine, backup_id, only=("caddy-data",))
    assert STATE_IMAGE not in engine.images


def test_directories_become_a_backup_restored_like_any_other(tmp_path: Path, engine: Engine) -> None:
    """Rule: a volume snapshot mounted read-only (or any directory) becomes a backup of the project, owners kept
    by number. Risk: a snapshot restore that needs hand-made docker commands, unchecked."""
    mounted = tmp_path / "mnt" / "volumes" / "data_state-data" / "_data"
    (mounted / "sub").mkdir(parents=True)
    (mounted / "records.jsonl").write_bytes(b'{"s":1}\n')
    (mounted / "sub" / "x").write_bytes(b"y")
    target = with_release(tmp_path, "data")
    manifest = rs.import_directories(target, {"state-data": mounted}, label="snapshot", keep=7,
                                     log=lambda _l: None, now=NOON)
    tar = tmp_path / "data" / "backups" / manifest["id"] / "state-data.tar"
    with tarfile.open(fileobj=io.BytesIO(tar.read_bytes())) as t:
        members = {m.name: (m.uid, m.uname) for m in t.getmembers()}
    assert members == {".": (os.getuid(), ""), "./records.jsonl": (os.getuid(), ""), "./sub": (os.getuid(), ""),
                       "./sub/x": (os.getuid(), "")}
    engine.volumes["data_state-data"] = {"records.jsonl": b"live\n"}
    restore(target, engine, manifest["id"], replace=True)
    assert engine.volumes["data_state-data"] == {"records.jsonl": b'{"s":1}\n', "sub/x": b"y"}
    assert engine.calls[-1][engine.calls[-1].index("tar") + 1] == STATE_IMAGE  # the release's: none recorded
