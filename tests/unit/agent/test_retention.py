"""Retention of jobs/, reports/, diagnostics/ and incoming/: bounded by count, newest kept, never what a release
the host may need again (current, previous, active, pending) or a running job uses; and the modes of what the
agent writes there (0700 directories, 0600 job files: they quote what containers printed)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from agent import process, retention
from agent.store import Store


def _store(tmp_path: Path) -> Store:
    store = Store(tmp_path, "green")
    store.ensure()
    return store


def _aged(path: Path, age: float) -> Path:
    t = time.time() - age
    os.utime(path, (t, t))
    return path


def test_jobs_beyond_the_bound_go_whole_oldest_first_but_never_a_pending_or_running_one(tmp_path, monkeypatch):
    store = _store(tmp_path)
    ids = [f"2025010{d}T000000-{d:06d}" for d in range(1, 8)]
    for job in ids:
        for suffix in (".spec.json", ".log", ".result.json"):
            store.write_job_file(job + suffix, "{}")
    store.write_job_file(f"{ids[1]}.pid", "4242")
    monkeypatch.setattr(process, "running", lambda pid, marker: (pid, marker) == (4242, ids[1]))
    store.write_pending({"release": "r9", "job": ids[0]})
    (store.jobs / f".{ids[2]}.result.json.77.tmp").write_text("")
    dropped = retention.trim_jobs(store, keep=3)
    assert dropped == [ids[3], ids[2]]  # the newest three stay, ids[1] is running, ids[0] is pending
    assert sorted({p.name.split(".")[0] for p in store.jobs.iterdir()}) == sorted([ids[0], ids[1], *ids[4:]])


def test_reports_and_bundles_are_bounded_and_a_kept_releases_gate_report_stays(tmp_path):
    store = _store(tmp_path)
    store.set_pointer("current", "r2")
    store.set_pointer("previous", "r1")
    reports = store.base / "reports"
    for i, name in enumerate(["gate-r1.json", "gate-r0.json", "r0-j1.json", "r1-j2.json", "r2-j3.json"]):
        _aged(_touch(reports / name), 1000 - i * 100)
    for i in range(4):
        _aged(_mkdir(store.base / "diagnostics" / f"r{i}-j{i}"), 1000 - i * 100)
    assert sorted(retention.trim_reports(store, keep=2)) == ["gate-r0.json", "r0-j1.json"]
    assert sorted(p.name for p in reports.iterdir()) == ["gate-r1.json", "r1-j2.json", "r2-j3.json"]
    assert retention.trim_diagnostics(store, keep=2) == ["r1-j1", "r0-j0"]
    assert sorted(p.name for p in (store.base / "diagnostics").iterdir()) == ["r2-j2", "r3-j3"]


def test_uploads_of_releases_the_host_needs_and_one_being_unpacked_stay(tmp_path):
    store = _store(tmp_path)
    incoming = store.base / "incoming"
    store.set_pointer("current", "r1")
    store.write_pending({"release": "r5", "job": "j"})
    for i in range(6):
        _aged(_mkdir(incoming / f"r{i}"), 1000 - i * 100)
    _aged(_mkdir(incoming / ".r6.upload"), 60)
    _aged(_mkdir(incoming / ".r7.upload"), 2 * 86400)
    dropped = retention.trim_uploads(store, keep=2)
    assert sorted(dropped) == [".r7.upload", "r0", "r2"]
    assert sorted(p.name for p in incoming.iterdir()) == [".r6.upload", "r1", "r3", "r4", "r5"]


def test_trim_logs_what_it_removed_and_never_raises(tmp_path):
    store = _store(tmp_path)
    for i in range(retention.KEEP_DIAGNOSTICS + 2):
        _aged(_mkdir(store.base / "diagnostics" / f"b{i:02d}"), 1000 - i)
    logged: list[str] = []
    done = retention.trim(store, logged.append)
    assert done == {"diagnostics": ["b01", "b00"]}
    assert logged == ["retention: removed 2 from diagnostics/"]
    (store.base / "reports").chmod(0)
    try:
        if os.geteuid() != 0:  # root reads a mode-0 directory anyway
            retention.trim(store, logged.append)
            assert logged[-1].startswith("retention of reports/ skipped: ")
    finally:
        (store.base / "reports").chmod(0o700)


def test_what_quotes_container_output_is_private(tmp_path):
    """Job logs hold the failing services' last lines: they were world-readable (0644 in 0755 directories)."""
    old = os.umask(0o022)
    try:
        store = Store(tmp_path, "green")
        (store.base / "jobs").mkdir(parents=True, mode=0o755)  # left by an older agent
        store.ensure()
        store.write_job_file("j.result.json", "{}")
    finally:
        os.umask(old)
    for name in Store.PRIVATE_DIRS:
        assert stat.S_IMODE((store.base / name).stat().st_mode) == 0o700, name
    assert stat.S_IMODE((store.jobs / "j.result.json").stat().st_mode) == 0o600


def _touch(path: Path) -> Path:
    path.write_text("{}")
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path
