"""Streaming a volume's bytes through docker (standard library only): the `Docker` seam the backup and restore
run every docker command through (a scripted fake in the fast tier, `HostDocker` on a host), the hashing file a
backup's tar is written to, and the signal handling of a backup or restore.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Protocol

from agent.process import kill_group, run_process

SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Docker(Protocol):
    def run(self, argv: Sequence[str], timeout: float) -> tuple[int, str, str]:
        """(exit code, stdout, stderr); a command that cannot start or outlives `timeout` is exit code -1."""

    def read(self, argv: Sequence[str], sink: Callable[[bytes], None], timeout: float) -> tuple[int, str]:
        """Run `argv`, its stdout handed to `sink` chunk by chunk; (exit code, stderr)."""

    def write(self, argv: Sequence[str], source: IO[bytes], timeout: float) -> tuple[int, str]:
        """Run `argv` with `source` as its stdin; (exit code, stderr)."""


class Sink:
    """A 0600 file that counts and hashes what it is given."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.sha256, self.size = hashlib.sha256(), 0

    def __call__(self, chunk: bytes) -> None:
        self.sha256.update(chunk)
        self.size += len(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(self.fd, view):]

    def close(self) -> None:
        os.fsync(self.fd)
        os.close(self.fd)


class HostDocker:
    """The docker CLI, each command in its own process group, killed past its timeout."""

    def run(self, argv: Sequence[str], timeout: float) -> tuple[int, str, str]:
        try:
            proc = run_process(argv, timeout=timeout)
        except subprocess.TimeoutExpired:
            return -1, "", f"{' '.join(argv[:3])} did not finish in {timeout:.0f}s (killed)"
        except OSError as exc:
            return -1, "", f"{' '.join(argv[:2])}: {exc}"
        return proc.returncode, proc.stdout, proc.stderr

    def read(self, argv: Sequence[str], sink: Callable[[bytes], None], timeout: float) -> tuple[int, str]:
        return self._stream(argv, None, sink, timeout)

    def write(self, argv: Sequence[str], source: IO[bytes], timeout: float) -> tuple[int, str]:
        return self._stream(argv, source, None, timeout)

    @staticmethod
    def _stream(argv: Sequence[str], source: IO[bytes] | None, sink: Callable[[bytes], None] | None,
                timeout: float) -> tuple[int, str]:
        with tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(list(argv), stdin=source or subprocess.DEVNULL,
                                        stdout=subprocess.PIPE if sink else subprocess.DEVNULL, stderr=err,
                                        process_group=0)
            except OSError as exc:
                return -1, f"{' '.join(argv[:2])}: {exc}"
            expired = threading.Event()

            def expire() -> None:
                expired.set()
                kill_group(proc.pid)

            timer = threading.Timer(timeout, expire)
            timer.daemon = True
            timer.start()
            try:
                if sink is not None and proc.stdout is not None:
                    while chunk := proc.stdout.read(1 << 20):
                        sink(chunk)
                code = proc.wait()
            finally:
                timer.cancel()
                if proc.poll() is None:  # interrupted: never leave the copy running behind us
                    kill_group(proc.pid)
                    proc.wait()
            err.seek(0)
            text = err.read().decode("utf-8", "replace")
        return (-1, f"did not finish in {timeout:.0f}s (killed)") if expired.is_set() else (code, text)


class Interrupted(Exception):
    """A signal ended the command; the cleanup runs as for any failure."""


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM, SIGHUP (a dropped SSH session) and SIGINT raise Interrupted, so `finally` blocks run."""
    def stop(signum: int, _frame: object) -> None:
        raise Interrupted(f"stopped by {signal.Signals(signum).name}")

    previous = {s: signal.signal(s, stop) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Those signals held back meanwhile (an unpause or start that must run whole); delivered afterwards."""
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
