"""One changing run per stack at a time on this machine: `ops.cli release` and `ops.cli registry-gc` take the same
lock (CI adds the deploy concurrency group across runners). The file says who holds it."""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ops.operator_host import EXIT_USAGE, CliError
from ops.release_record import utc

__all__ = ["lock_path", "release_lock"]


def lock_path(owner: str, directory: Path | None = None) -> Path:
    base = directory or Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    return base / f"devtools-release-{owner.replace('/', '_')}.lock"


@contextmanager
def release_lock(owner: str, run: str, directory: Path | None = None) -> Iterator[None]:
    """One release (or registry-gc) of a stack at a time on this machine; a SIGKILLed run's lock goes with it."""
    path = lock_path(owner, directory)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown"
            raise CliError(f"another run on stack {owner} holds its lock ({holder}); wait for it, or look at "
                           f"`python -m ops.cli status --stack {owner}`", EXIT_USAGE) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"run {run}, pid {os.getpid()}, since {utc(time.time())}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
