"""Retention of a project's bookkeeping (standard library only): jobs/, reports/, diagnostics/ and incoming/ are
bounded by count, newest kept, so a host that deploys every hour for a year does not fill its disk.

Never removed: anything of a job that is running or named by pending.json, the gate reports and uploads of the
releases the host may need again (current, previous, active, pending), and an upload still being unpacked (a
dot-directory younger than a day). Release directories and images have their own retention (Store.prune, by
install sequence, `--keep`). Runs at the end of every job, under the project's lock; it never fails a job.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from agent import process
from agent.store import Store

KEEP_JOBS = 40
KEEP_REPORTS = 40
KEEP_DIAGNOSTICS = 10
KEEP_UPLOADS = 3
STALE_STAGING_S = 86400


def protected_releases(store: Store) -> set[str]:
    pending = store.read_pending() or {}
    ids = {store.pointer("current"), store.pointer("previous"), store.run_target(), pending.get("release")}
    return {str(i) for i in ids if i}


def _newest_first(paths: Iterable[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: (p.stat().st_mtime, p.name), reverse=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def job_groups(jobs: Path) -> dict[str, list[Path]]:
    """jobs/ by job id (the name before the first dot: `<job>.spec.json`, `.log`, `.pid`, `.result.json`)."""
    groups: dict[str, list[Path]] = {}
    for path in jobs.iterdir() if jobs.is_dir() else []:
        groups.setdefault(path.name.lstrip(".").split(".", 1)[0], []).append(path)
    return groups


def _job_running(jobs: Path, job: str) -> bool:
    try:
        pid = int((jobs / f"{job}.pid").read_text())
    except (OSError, ValueError):
        return not (jobs / f"{job}.result.json").exists() and (jobs / f"{job}.spec.json").exists() and (
            time.time() - (jobs / f"{job}.spec.json").stat().st_mtime < 3600)
    return process.running(pid, marker=job)


def trim_jobs(store: Store, keep: int = KEEP_JOBS) -> list[str]:
    """Drop the oldest jobs beyond `keep` (job ids sort by start time); never a running or pending one."""
    groups = job_groups(store.jobs)
    pending_job = (store.read_pending() or {}).get("job")
    dropped: list[str] = []
    for job in sorted(groups, reverse=True)[keep:]:
        if job == pending_job or _job_running(store.jobs, job):
            continue
        for path in groups[job]:
            _remove(path)
        dropped.append(job)
    return dropped


def trim_reports(store: Store, keep: int = KEEP_REPORTS) -> list[str]:
    """Drop the oldest validation reports beyond `keep`; a protected release's gate report stays."""
    reports = store.base / "reports"
    guarded = {f"gate-{rid}.json" for rid in protected_releases(store)}
    candidates = [p for p in reports.iterdir() if p.name not in guarded] if reports.is_dir() else []
    dropped = _newest_first(candidates)[keep:]
    for path in dropped:
        _remove(path)
    return [p.name for p in dropped]


def trim_diagnostics(store: Store, keep: int = KEEP_DIAGNOSTICS) -> list[str]:
    diagnostics = store.base / "diagnostics"
    dropped = _newest_first(diagnostics.iterdir())[keep:] if diagnostics.is_dir() else []
    for path in dropped:
        _remove(path)
    return [p.name for p in dropped]


def trim_uploads(store: Store, keep: int = KEEP_UPLOADS, now: float | None = None) -> list[str]:
    """Keep the uploads of protected releases and the newest `keep` others; an unpacking (dot) directory only goes
    when it is a day old (its upload was killed)."""
    incoming = store.base / "incoming"
    if not incoming.is_dir():
        return []
    now = time.time() if now is None else now
    guarded = protected_releases(store)
    staging = [p for p in incoming.iterdir() if p.name.startswith(".")]
    dropped = [p for p in staging if now - p.stat().st_mtime > STALE_STAGING_S]
    others = [p for p in incoming.iterdir() if not p.name.startswith(".") and p.name not in guarded]
    dropped += _newest_first(others)[keep:]
    for path in dropped:
        _remove(path)
    return [p.name for p in dropped]


def trim(store: Store, log: Callable[[str], None]) -> dict[str, list[str]]:
    """Every trim above; a failure is logged, never raised (retention must not fail a rollout)."""
    done: dict[str, list[str]] = {}
    for name, step in (("jobs", trim_jobs), ("reports", trim_reports), ("diagnostics", trim_diagnostics),
                       ("incoming", trim_uploads)):
        try:
            dropped = step(store)
        except OSError as exc:
            log(f"retention of {name}/ skipped: {exc}")
            continue
        if dropped:
            done[name] = dropped
    if done:
        log("retention: removed " + ", ".join(f"{len(v)} from {k}/" for k, v in done.items()))
    return done
