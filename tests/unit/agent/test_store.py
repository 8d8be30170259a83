"""On-host release state: immutable releases, atomic pointers, the lock, the audit log, retention."""

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from agent.store import LockTimeout, Store, tree_digest


def make_bundle(tmp: Path, name: str, text: str = "services: {}\n") -> Path:
    bundle = tmp / name
    bundle.mkdir()
    (bundle / "docker-compose.yml").write_text(text)
    (bundle / "release.json").write_text(json.dumps({"id": name, "images": {}}))
    return bundle


def test_install_is_immutable(tmp_path):
    """Re-shipping a release id with other content must fail: a rollback would restore something unknown."""
    store = Store(tmp_path / "root", "green")
    store.ensure()
    bundle = make_bundle(tmp_path, "r1")
    target = store.install_release(bundle, "r1", {"release.env": "RELEASE_ID=r1\n"})
    assert (target / "release.env").read_text() == "RELEASE_ID=r1\n"
    assert (target / "content.sha256").read_text().strip() == tree_digest(bundle)
    assert store.install_release(bundle, "r1", {"release.env": "RELEASE_ID=r1\n"}) == target
    (bundle / "docker-compose.yml").write_text("services: {changed: {}}\n")
    with pytest.raises(ValueError, match="release r1 already exists on this host with different content"):
        store.install_release(bundle, "r1", {})
    assert not [p for p in store.releases.iterdir() if p.name.startswith(".")]


def test_pointers_and_run_link(tmp_path):
    store = Store(tmp_path, "blue")
    store.ensure()
    assert store.pointer("current") is None
    store.set_pointer("current", "r2")
    assert store.pointer("current") == "r2"
    store.set_pointer("current", None)
    assert store.pointer("current") is None
    store.point_run_at("r1")
    store.point_run_at("r2")
    assert store.run_target() == "r2"
    assert store.run_link.is_symlink()


def test_prune_keeps_current_previous_and_active(tmp_path):
    """Retention must never remove what a rollback needs (current, previous, the active one)."""
    store = Store(tmp_path, "green")
    store.ensure()
    for i in range(6):
        store.install_release(make_bundle(tmp_path, f"r{i}"), f"r{i}", {})
    store.set_pointer("current", "r5")
    store.set_pointer("previous", "r0")
    store.point_run_at("r5")
    assert store.prune(3) == ["r1", "r2", "r3"]
    assert store.kept_releases() == ["r0", "r4", "r5"]
    assert store.prune(1) == ["r4"]  # keep is at least 2: current and previous


def test_audit_is_append_only_json_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("SSH_CONNECTION", "10.1.2.3 5555 10.0.0.1 22")
    monkeypatch.setenv("USER", "deploy")
    store = Store(tmp_path, "green")
    store.ensure()
    store.audit("apply.started", release="r1")
    store.audit("apply.succeeded", release="r1", seconds=1.5)
    lines = (store.base / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["event"] == "apply.started" and first["release"] == "r1" and first["actor"] == "deploy@10.1.2.3"
    assert [e["event"] for e in store.audit_entries()] == ["apply.started", "apply.succeeded"]


def test_second_holder_waits_then_fails_naming_the_first(tmp_path):
    """Two rollouts at once would interleave compose commands: the second waits, then fails clearly."""
    store = Store(tmp_path, "green")
    held, release = threading.Event(), threading.Event()

    def hold():
        with store.lock(5, {"job": "j1", "pid": 1, "action": "apply", "release": "r1", "since": "t"}):
            held.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    assert held.wait(5)
    waited: list[dict[str, object]] = []
    started = time.monotonic()
    expected = r"job j1, apply of release r1, pid 1, since t\); waited 1s"
    with pytest.raises(LockTimeout, match=expected), store.lock(1, {"job": "j2"}, on_wait=waited.append):
        pass
    assert 0.9 < time.monotonic() - started < 3
    assert waited and waited[0]["job"] == "j1"
    release.set()
    t.join()
    with store.lock(1, {"job": "j3"}):
        assert store.lock_holder() == {"job": "j3"}


def test_pending_marker_round_trip(tmp_path):
    store = Store(tmp_path, "green")
    store.ensure()
    store.write_pending({"release": "r2", "previous": "r1"})
    assert store.read_pending() == {"release": "r2", "previous": "r1"}
    store.clear_pending()
    assert store.read_pending() is None


def test_shipping_the_same_release_again_is_not_a_conflict(tmp_path):
    """Where a release came from (build time, CI run) is not what it is: re-shipping it must just converge."""
    store = Store(tmp_path / "root", "green")
    store.ensure()
    bundle = make_bundle(tmp_path, "r1")
    manifest = {"id": "r1", "images": {"a": "x"}, "source": {"built_at": "t1"}}
    (bundle / "release.json").write_text(json.dumps(manifest))
    store.install_release(bundle, "r1", {})
    (bundle / "release.json").write_text(json.dumps({**manifest, "source": {"built_at": "t2"}}))
    store.install_release(bundle, "r1", {})
    # the keys a host accepts change (signing turned on, a rotation) while a pinned release stays the same release
    (bundle / "release.json").write_text(json.dumps({**manifest, "signing": {"require": True, "public_keys": []}}))
    store.install_release(bundle, "r1", {})
    (bundle / "release.json").write_text(json.dumps({**manifest, "images": {"a": "y"}}))
    with pytest.raises(ValueError, match="different content"):
        store.install_release(bundle, "r1", {})


def install(store: Store, tmp: Path, *ids: str) -> None:
    for release_id in ids:
        store.install_release(make_bundle(tmp, release_id), release_id, {})


def test_install_order_survives_touching_release_directories(tmp_path):
    """Releases are ordered by the sequence number they were installed with: a copy, a restore from backup or a
    `touch` that changes a directory's mtime must not reorder them (retention would prune the wrong one)."""
    store = Store(tmp_path / "root", "green")
    store.ensure()
    install(store, tmp_path, "r1", "r2", "r3")
    os.utime(store.release_dir("r1"), (4_000_000_000, 4_000_000_000))
    os.utime(store.release_dir("r3"), (1_000, 1_000))
    assert store.kept_releases() == ["r1", "r2", "r3"]
    assert [(store.release_dir(r) / "seq").read_text() for r in ("r1", "r2", "r3")] == ["1\n", "2\n", "3\n"]
    store.install_release(tmp_path / "r1", "r1", {})  # the same release again: it keeps its place
    assert store.kept_releases() == ["r1", "r2", "r3"]


def test_pruning_removes_the_oldest_by_install_sequence(tmp_path):
    """Retention drops the releases installed first, whatever the directories' times say."""
    store = Store(tmp_path / "root", "green")
    store.ensure()
    install(store, tmp_path, "r0", "r1", "r2", "r3", "r4", "r5")
    for i in range(6):  # newest mtime on the oldest release
        os.utime(store.release_dir(f"r{i}"), (2_000_000_000 - i, 2_000_000_000 - i))
    store.set_pointer("current", "r5")
    store.set_pointer("previous", "r4")
    store.point_run_at("r5")
    assert store.prune(3) == ["r0", "r1", "r2"]
    assert store.kept_releases() == ["r3", "r4", "r5"]


def test_releases_of_an_older_agent_sort_first_in_mtime_order(tmp_path):
    """A host upgraded from an agent that wrote no sequence numbers keeps working: its releases (no seq file) are
    older than any numbered one and keep their mtime order among themselves, so retention prunes them first."""
    store = Store(tmp_path / "root", "green")
    store.ensure()
    for name, mtime in (("old-b", 2_000), ("old-a", 1_000)):
        store.release_dir(name).mkdir()
        (store.release_dir(name) / "release.json").write_text(json.dumps({"id": name, "images": {}}))
        os.utime(store.release_dir(name), (mtime, mtime))
    install(store, tmp_path, "r1", "r2")
    os.utime(store.release_dir("r1"), (500, 500))
    assert store.kept_releases() == ["old-a", "old-b", "r1", "r2"]
    store.set_pointer("current", "r2")
    store.set_pointer("previous", "r1")
    assert store.prune(2) == ["old-a", "old-b"]


def test_the_sequence_never_goes_back(tmp_path):
    """Numbers come from a per-project counter and never repeat, also when the counter file is lost (the highest
    number on disk wins) or the newest release was pruned (the counter remembers it)."""
    store = Store(tmp_path / "root", "green")
    store.ensure()
    install(store, tmp_path, "r1", "r2", "r3")
    (store.base / "last-seq").unlink()
    install(store, tmp_path, "r4")
    assert (store.release_dir("r4") / "seq").read_text() == "4\n"
    shutil.rmtree(store.release_dir("r4"))
    install(store, tmp_path, "r5")
    assert (store.release_dir("r5") / "seq").read_text() == "5\n"
    assert (store.base / "last-seq").read_text() == "5\n"
