"""agent.backup: every docker argv as an exact string, and a backup taken through an engine in memory
(tests/unit/agent/volume_fake.py): consistent (paused meanwhile, always unpaused), checksummed, private, bounded."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from agent import backup as bk
from agent import compose as cc
from agent.store import Store
from agent.volume_io import Interrupted, interruptible

from .volume_fake import RAG_IMAGE, STATE_IMAGE, Engine, files_of, with_release

IMAGE = "127.0.0.1:5000/devtools/state-persistence@sha256:" + "b" * 64
NOON = 1796212800.0  # 2026-12-02T12:00:00Z
PROJECT = cc.ComposeProject("data", Path("/opt/devtools/data/run"), ("docker-compose.yml",))
BASE = ("docker compose --project-name data --project-directory /opt/devtools/data/run --file "
        "/opt/devtools/data/run/docker-compose.yml --env-file /opt/devtools/data/run/release.env")


def test_every_docker_command_of_a_backup_and_a_restore() -> None:
    """Rule: the volume is read by a one-shot container of the image that runs on it, without network, read-only,
    as root, never pulling; a restore writes it the same way; nothing removes a volume."""
    assert " ".join(bk.read_argv("data_state-data", IMAGE)) == (
        "docker run --rm --network none --user 0:0 --pull never -v data_state-data:/v:ro --entrypoint tar "
        f"{IMAGE} -C /v -cf - .")
    assert " ".join(bk.write_argv("data_state-data", IMAGE)) == (
        "docker run --rm -i --network none --user 0:0 --pull never -v data_state-data:/v --entrypoint tar "
        f"{IMAGE} -C /v -xf -")
    assert " ".join(bk.entries_argv("data_state-data", IMAGE)) == (
        "docker run --rm --network none --user 0:0 --pull never -v data_state-data:/v:ro --entrypoint ls "
        f"{IMAGE} -A /v")
    assert " ".join(bk.clear_argv("data_state-data", IMAGE)) == (
        "docker run --rm --network none --user 0:0 --pull never -v data_state-data:/v --entrypoint find "
        f"{IMAGE} /v -mindepth 1 -maxdepth 1 -exec rm -rf {{}} +")
    assert bk.volume_inspect_argv("data_state-data") == [
        "docker", "volume", "inspect", "--format", "{{json .Labels}}", "data_state-data"]
    assert bk.volume_create_argv("fresh", "state-data", "fresh_state-data") == [
        "docker", "volume", "create", "--label", "com.docker.compose.project=fresh",
        "--label", "com.docker.compose.volume=state-data", "fresh_state-data"]
    assert bk.image_present_argv(IMAGE) == ["docker", "image", "inspect", "--format", "{{.Id}}", IMAGE]
    assert " ".join(cc.pause(PROJECT, ["rag-context", "state-persistence"])) == (
        f"{BASE} pause rag-context state-persistence")
    assert " ".join(cc.unpause(PROJECT, ["state-persistence"])) == f"{BASE} unpause state-persistence"
    assert " ".join(cc.stop(PROJECT, ["state-persistence"], 30)) == f"{BASE} stop --timeout 30 state-persistence"
    assert " ".join(cc.start(PROJECT, ["state-persistence"])) == f"{BASE} start state-persistence"
    for argv in (cc.stop(PROJECT, ["a"], 1), cc.pause(PROJECT, ["a"]), bk.clear_argv("v", IMAGE)):
        assert argv[1] != "volume" and "down" not in argv and "--volumes" not in argv and "prune" not in argv


def test_the_volumes_of_a_release_come_from_its_resolved_config(tmp_path: Path) -> None:
    store = with_release(tmp_path, "data")
    release, volumes, compose = bk.current_release(store)
    assert release == "r1"
    assert volumes == [bk.VolumeSource("rag-index", "data_rag-index", ("rag-context",), RAG_IMAGE),
                       bk.VolumeSource("state-data", "data_state-data", ("state-persistence",), STATE_IMAGE)]
    assert compose == cc.ComposeProject("data", store.run_link, ("docker-compose.yml",))
    assert bk.current_release(Store(tmp_path, "nothing-here")) == (None, [], None)


def backup(store: Store, engine: Engine, keep: int = 7, now: float = NOON) -> dict[str, Any]:
    release, volumes, compose = bk.current_release(store)
    return bk.take_backup(store, engine, volumes, release=release, compose=compose, label="nightly", keep=keep,
                          timeout=60, log=lambda _line: None, now=now)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_backup_pauses_what_mounts_the_volumes_reads_each_and_unpauses(tmp_path: Path) -> None:
    """Rule: the running containers that mount the volumes are paused while the volumes are read (one consistent
    moment), unpaused after; each tar is written 0600 in a 0700 directory with its size and sha256 in the
    manifest. Risk: a copy of a file half-written, or a backup anyone on the host can read."""
    store = with_release(tmp_path, "data")
    engine = Engine(volumes={"data_state-data": {"records.jsonl": b'{"a":1}\n{"a":2}\n'},
                             "data_rag-index": {"documents.jsonl": b'{"d":1}\n'}},
                    containers={"state-persistence": "running", "rag-context": "running"})
    manifest = backup(store, engine)
    assert engine.verbs() == ["pause rag-context state-persistence", "read data_rag-index", "read data_state-data",
                              "unpause rag-context state-persistence"]
    assert engine.containers == {"state-persistence": "running", "rag-context": "running"}
    where = tmp_path / "data" / "backups" / "20261202T120000Z"
    tar = (where / "state-data.tar").read_bytes()
    assert files_of(tar) == {"records.jsonl": b'{"a":1}\n{"a":2}\n'}
    assert manifest["volumes"][1] == {"name": "state-data", "docker_volume": "data_state-data",
                                      "file": "state-data.tar", "size": len(tar),
                                      "sha256": hashlib.sha256(tar).hexdigest(), "image": STATE_IMAGE,
                                      "services": ["state-persistence"]}
    assert {k: manifest[k] for k in ("id", "project", "release", "label", "created", "paused", "pruned")} == {
        "id": "20261202T120000Z", "project": "data", "release": "r1", "label": "nightly",
        "created": "2026-12-02T12:00:00Z", "paused": ["rag-context", "state-persistence"], "pruned": []}
    assert json.loads((where / "manifest.json").read_text()) == {k: v for k, v in manifest.items() if k != "pruned"}
    assert (mode(where.parent), mode(where), mode(where / "state-data.tar"), mode(where / "manifest.json")) == (
        0o700, 0o700, 0o600, 0o600)
    assert not (where.parent / "paused.json").exists()


def test_a_stopped_service_is_not_paused_and_a_second_backup_in_the_same_second_gets_its_own_id(
        tmp_path: Path) -> None:
    store = with_release(tmp_path, "data")
    engine = Engine(volumes={"data_state-data": {}, "data_rag-index": {}},
                    containers={"state-persistence": "exited", "rag-context": "running"})
    assert backup(store, engine)["paused"] == ["rag-context"]
    assert backup(store, engine)["id"] == "20261202T120000Z-2"
    assert bk.backup_ids(tmp_path / "data" / "backups") == ["20261202T120000Z", "20261202T120000Z-2"]


def test_a_failed_read_unpauses_and_leaves_no_backup(tmp_path: Path) -> None:
    """Rule: whatever fails, the containers are unpaused and the partial backup is gone. Risk: a data tier left
    frozen by a backup, or a truncated tar that a restore later trusts."""
    store = with_release(tmp_path, "data")
    engine = Engine(volumes={"data_state-data": {"r": b"x"}, "data_rag-index": {}},
                    containers={"state-persistence": "running", "rag-context": "running"},
                    fail={"data_state-data:/v:ro": (1, "tar: short read")})
    with pytest.raises(bk.BackupError, match=r"^reading volume data_state-data failed \(exit 1\): tar: short read$"):
        backup(store, engine)
    assert engine.verbs()[-1] == "unpause rag-context state-persistence"
    assert engine.containers == {"state-persistence": "running", "rag-context": "running"}
    assert os.listdir(tmp_path / "data" / "backups") == []


def test_a_signal_mid_backup_unpauses_too(tmp_path: Path) -> None:
    """Rule: SIGTERM or SIGHUP (a dropped SSH session) ends the backup through the same cleanup. Risk: the data
    tier frozen because the operator's connection dropped."""
    store = with_release(tmp_path, "data")
    engine = Engine(volumes={"data_state-data": {}, "data_rag-index": {}},
                    containers={"state-persistence": "running", "rag-context": "running"},
                    during_read=lambda: os.kill(os.getpid(), signal.SIGHUP))
    with pytest.raises(Interrupted, match="stopped by SIGHUP"), interruptible():
        backup(store, engine)
    assert engine.containers == {"state-persistence": "running", "rag-context": "running"}
    assert os.listdir(tmp_path / "data" / "backups") == []


def test_a_failed_unpause_is_critical_and_the_next_backup_unpauses_first(tmp_path: Path) -> None:
    store = with_release(tmp_path, "data")
    engine = Engine(volumes={"data_state-data": {}, "data_rag-index": {}},
                    containers={"state-persistence": "running", "rag-context": "exited"},
                    fail={" unpause ": (1, "daemon busy")})
    with pytest.raises(bk.BackupError, match="compose unpause state-persistence failed, they are still paused: "
                                             "daemon busy; the next `hostagent --project data backup` unpauses them"
                       ) as failed:
        backup(store, engine)
    assert failed.value.code == 4
    assert json.loads((tmp_path / "data" / "backups" / "paused.json").read_text())["services"] == [
        "state-persistence"]
    engine.fail.clear()
    engine.calls.clear()
    backup(store, engine, now=NOON + 60)
    assert engine.verbs()[:2] == ["unpause state-persistence", "pause state-persistence"]
    assert store.audit_entries()[-1]["event"] == "backup.unpaused"


def test_retention_keeps_the_newest_and_never_the_one_just_written(tmp_path: Path) -> None:
    store = with_release(tmp_path, "data")
    engine = Engine(volumes={"data_state-data": {}, "data_rag-index": {}})
    for i in range(4):
        backup(store, engine, keep=3, now=NOON + i)
    base = tmp_path / "data" / "backups"
    assert bk.backup_ids(base) == ["20261202T120001Z", "20261202T120002Z", "20261202T120003Z"]
    assert bk.prune(base, 1, ["20261202T120001Z"]) == ["20261202T120002Z"]
    assert bk.backup_ids(base) == ["20261202T120001Z", "20261202T120003Z"]


def test_a_missing_volume_is_refused_before_anything_is_paused(tmp_path: Path) -> None:
    store = with_release(tmp_path, "data")
    engine = Engine(volumes={"data_rag-index": {}}, containers={"rag-context": "running"})
    with pytest.raises(bk.BackupError, match=r"^volume data_state-data of project data does not exist on this "
                                             r"host's engine$"):
        backup(store, engine)
    assert engine.verbs() == [] and engine.containers == {"rag-context": "running"}


def test_an_unknown_backup_names_the_newest_ones(tmp_path: Path) -> None:
    store = with_release(tmp_path, "data")
    backup(store, Engine(volumes={"data_state-data": {}, "data_rag-index": {}}))
    base = tmp_path / "data" / "backups"
    for wrong in ("20261202T130000Z", "../../etc"):
        with pytest.raises(bk.BackupError, match=rf"^no backup '{wrong}' in {base} \(newest: 20261202T120000Z\); "
                                                 r"`hostagent backups` lists them$"):
            bk.read_manifest(base, wrong)
