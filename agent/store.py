"""On-host release state (standard library only): pointers, markers, secrets file, lock, audit log; release
directories through its base agent.installs.ReleaseDirs.

Layout under <root>/<project>/:
    incoming/<id>/        what this project's last upload of <id> unpacked (ops.ship.upload_command); apply reads it
    releases/<id>/        one immutable release: compose files, release.json, release.env, resolved.json, and
                          `seq`: its install sequence number (releases are ordered by it, oldest first)
    last-seq              the last install sequence number handed out (per project; never goes back)
    run -> releases/<id>  the active release; compose's --project-directory, switched atomically
    current, previous     one line each: a release id
    pending.json          written before containers change, removed when the apply ends either way
    provisional.json      a pool host's release not yet confirmed: it returns to the one before at its deadline
    lock, lock.json       one apply/rollback at a time (flock) and who holds it
    audit.jsonl           append-only, one JSON object per event
    jobs/<job>.log|.json  output and result of each detached job (0600 files in 0700 directories, as are
    reports/, diagnostics/  validation reports and debug bundles, and incoming/)
    children/<pgid>.json  process groups the worker runs right now (killed by the next job if it died)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.installs import LAST_SEQ_FILE, SEQ_FILE, ReleaseDirs, tree_digest, write_atomic
from agent.secretfile import Masker, read_secrets_file

__all__ = ["LAST_SEQ_FILE", "SEQ_FILE", "LockTimeout", "Store", "describe_holder", "tree_digest"]


class LockTimeout(RuntimeError):
    pass


@dataclass(frozen=True)
class Store(ReleaseDirs):
    root: Path
    project: str

    @property
    def base(self) -> Path:
        return self.root / self.project

    @property
    def run_link(self) -> Path:
        return self.base / "run"

    @property
    def jobs(self) -> Path:
        return self.base / "jobs"

    @property
    def secrets_file(self) -> Path:
        return self.base / "secrets.env"

    def write_secrets(self, text: str) -> None:
        """Replace the project's secrets file; mode 0600 from its first byte (the temp file is 0600 too)."""
        self.ensure()
        tmp = self.secrets_file.with_name(f".secrets.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.secrets_file)

    def secrets(self) -> dict[str, str]:
        """The project's secrets file as it is now (KEY → value; empty when there is none or it is unreadable)."""
        try:
            return read_secrets_file(self.secrets_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            return {}

    def masker(self) -> Masker:
        """Hides the exact values of the project's secrets file in a text (what the agent prints and records)."""
        return Masker(self.secrets().values())

    def write_job_file(self, name: str, text: str) -> None:
        """A file of jobs/ (spec, pid, result): replaced in one rename, readable by root only."""
        write_atomic(self.jobs / name, text, 0o600)

    @property
    def children(self) -> Path:
        """The ledger of the worker's running process groups (agent.process.GroupRunner)."""
        return self.base / "children"

    PRIVATE_DIRS = ("jobs", "reports", "diagnostics", "incoming", "children")
    """Directories whose files may quote what containers printed: 0700, whatever the umask."""

    def ensure(self) -> None:
        self.releases.mkdir(parents=True, exist_ok=True)
        for name in self.PRIVATE_DIRS:
            d = self.base / name
            d.mkdir(mode=0o700, exist_ok=True)
            if d.stat().st_mode & 0o077:
                os.chmod(d, 0o700)  # made by an older agent (or an upload) with the umask's mode

    # pointers ---------------------------------------------------------------------------------------------
    def pointer(self, name: str) -> str | None:
        path = self.base / name
        if not path.exists():
            return None
        value = path.read_text().strip()
        return value or None

    def set_pointer(self, name: str, release_id: str | None) -> None:
        path = self.base / name
        if release_id is None:
            path.unlink(missing_ok=True)
        else:
            write_atomic(path, release_id + "\n")

    def point_run_at(self, release_id: str) -> None:
        """Swap the `run` symlink in one rename, so compose never sees a half-switched directory."""
        tmp = self.base / f".run.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(Path("releases") / release_id, tmp)
        os.replace(tmp, self.run_link)

    def run_target(self) -> str | None:
        if not self.run_link.is_symlink():
            return None
        return Path(os.readlink(self.run_link)).name

    # pending marker ---------------------------------------------------------------------------------------
    def read_pending(self) -> dict[str, Any] | None:
        path = self.base / "pending.json"
        if not path.exists():
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def write_pending(self, data: dict[str, Any]) -> None:
        write_atomic(self.base / "pending.json", json.dumps(data, sort_keys=True) + "\n")

    def clear_pending(self) -> None:
        (self.base / "pending.json").unlink(missing_ok=True)

    # provisional marker: a pool host's release that returns to the one before unless confirmed (agent.pool) -----
    def read_provisional(self) -> dict[str, Any] | None:
        path = self.base / "provisional.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        return data

    def write_provisional(self, data: dict[str, Any]) -> None:
        write_atomic(self.base / "provisional.json", json.dumps(data, sort_keys=True) + "\n")

    def clear_provisional(self) -> None:
        (self.base / "provisional.json").unlink(missing_ok=True)

    def prune(self, keep: int) -> list[str]:
        """Delete the oldest release directories beyond `keep`, never current, previous or the active one."""
        return self.prune_releases(keep, {self.pointer("current"), self.pointer("previous"), self.run_target()})

    # audit ------------------------------------------------------------------------------------------------
    def audit(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event; every string in it has the project's secret values masked (reasons quote compose's
        and the containers' output)."""
        masked: dict[str, Any] = self.masker().deep(fields)
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "event": event,
            "project": self.project,
            "host": socket.gethostname(),
            "actor": actor(),
            **masked,
        }
        line = json.dumps(entry, sort_keys=True) + "\n"
        fd = os.open(self.base / "audit.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry

    def audit_entries(self) -> list[dict[str, Any]]:
        path = self.base / "audit.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    # lock -------------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, timeout: float, holder: dict[str, Any], on_wait: Any = None) -> Iterator[None]:
        """Hold the project's lock. Waits up to `timeout` seconds, then raises LockTimeout naming the holder."""
        self.ensure()
        fd = os.open(self.base / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        announced = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    other = self.lock_holder()
                    if time.monotonic() >= deadline:
                        raise LockTimeout(
                            f"another rollout holds the lock of project {self.project} "
                            f"({describe_holder(other)}); waited {timeout:.0f}s"
                        ) from None
                    if on_wait is not None and not announced:
                        on_wait(other)
                        announced = True
                    time.sleep(0.5)
            write_atomic(self.base / "lock.json", json.dumps(holder, sort_keys=True) + "\n")
            yield
        finally:
            os.close(fd)

    def lock_holder(self) -> dict[str, Any] | None:
        path = self.base / "lock.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return data


def describe_holder(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "holder unknown"
    return (
        f"job {holder.get('job', '?')}, {holder.get('action', '?')} of release {holder.get('release', '?')}, "
        f"pid {holder.get('pid', '?')}, since {holder.get('since', '?')}"
    )


def actor() -> str:
    """Who asked: the SSH client address when over SSH, else the local user."""
    user = os.environ.get("SUDO_USER") or os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown"
    ssh = os.environ.get("SSH_CONNECTION", "").split()
    return f"{user}@{ssh[0]}" if ssh else user
