"""The one seam through which the host agent runs a process, and what it knows about processes (standard library
only).

Every docker, compose and validator command of a rollout goes through a `Runner`, so the release state machine can
be driven step by step by a scripted fake in the fast unit tier (tests/unit/agent/test_rollout_steps.py) while the
host runs the real thing (`run_process`).

Each child runs in a process group of its own: `docker compose` is the docker CLI running the compose plugin as
its own child, so a timeout kills the whole group, not just the CLI. A `GroupRunner` also records every running
group in a ledger directory (`<project>/children/<pgid>.json`, removed when the child ends): when the worker is
killed (SIGKILL, the OOM killer) its children live on, and the next job kills what the ledger still names
(`kill_leftovers`) before it changes anything.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

PROC = Path("/proc")


class Runner(Protocol):
    """Run `argv` to completion and return its exit status and text output (never raises on a non-zero exit).

    May raise `subprocess.TimeoutExpired` (past `timeout` seconds) or `OSError` (the program cannot be started).
    """

    def __call__(self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> subprocess.CompletedProcess[str]: ...


def run_process(argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None,
                cwd: Path | None = None, ledger: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `argv` in its own process group, capturing text output; no exception on a non-zero exit. Past `timeout`
    the whole group is killed (TERM, then KILL) and TimeoutExpired raised. With `ledger`, the group is recorded
    there while it runs."""
    proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=None if env is None else dict(env), cwd=cwd, process_group=0)
    record = _record(ledger, proc.pid, argv) if ledger is not None else None
    try:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid)
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(list(argv), timeout, out, err) from None
    finally:
        if proc.poll() is None:  # interrupted: never leave a child behind unrecorded
            kill_group(proc.pid)
            proc.wait()
        if record is not None:
            record.unlink(missing_ok=True)
    return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)


@dataclass(frozen=True)
class GroupRunner:
    """`run_process` recording each child's process group under `ledger` (the worker's runner)."""

    ledger: Path

    def __call__(self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return run_process(argv, timeout=timeout, env=env, cwd=cwd, ledger=self.ledger)


def _record(ledger: Path, pid: int, argv: Sequence[str]) -> Path:
    ledger.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = ledger / f"{pid}.json"
    path.write_text(json.dumps({"pgid": pid, "start": start_ticks(pid), "argv": list(argv[:6])}) + "\n")
    return path


def kill_group(pgid: int, grace: float = 5.0) -> bool:
    """TERM the process group, KILL what is left after `grace` seconds. True when the group had live members."""
    if not group_alive(pgid):
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not group_alive(pgid):
                return True
            time.sleep(0.05)
    return True


def kill_leftovers(ledger: Path, grace: float = 10.0) -> list[dict[str, Any]]:
    """Kill every process group the ledger still names (children of a worker that died) and clear the ledger.
    A group is ours while its leader still has the start time recorded, or, the leader gone, while the group has
    members (a group id is not handed out again while the group exists). Returns the records of groups killed."""
    killed: list[dict[str, Any]] = []
    if not ledger.is_dir():
        return killed
    for path in sorted(ledger.glob("*.json")):
        try:
            record = json.loads(path.read_text())
            pgid = int(record["pgid"])
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            continue
        leader = start_ticks(pgid)
        ours = leader is None or record.get("start") in (None, leader)
        if ours and kill_group(pgid, grace):
            killed.append(record)
        path.unlink(missing_ok=True)
    return killed


# what /proc says about a process (Linux; elsewhere these answer None and callers fall back) ------------------
def _stat(pid: int, proc: Path | None = None) -> list[str] | None:
    """Fields 3 onwards of /proc/<pid>/stat (after the command name, which may hold spaces)."""
    try:
        text = ((proc or PROC) / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()


def state(pid: int, proc: Path | None = None) -> str | None:
    """The process state letter (`R`, `S`, `Z` for a zombie, …), or None when there is no such process."""
    fields = _stat(pid, proc)
    return fields[0] if fields else None


def start_ticks(pid: int, proc: Path | None = None) -> int | None:
    """When the process started (clock ticks since boot): with the pid, its identity. None when it is gone."""
    fields = _stat(pid, proc)
    return int(fields[19]) if fields and len(fields) > 19 else None


def cmdline(pid: int, proc: Path | None = None) -> list[str] | None:
    try:
        raw = ((proc or PROC) / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    return raw.decode(errors="replace").split("\0")[:-1] if raw else []


def group_alive(pgid: int, proc: Path | None = None) -> bool:
    """True while the group has a member that is not a zombie (a zombie holds nothing and cannot be killed)."""
    proc = proc or PROC
    if proc.is_dir():
        for entry in proc.iterdir():
            if entry.name.isdigit():
                fields = _stat(int(entry.name), proc)
                if fields and len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
                    return True
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running(pid: int, marker: str | None = None, proc: Path | None = None) -> bool:
    """True when `pid` is a live process (not a zombie) and, with `marker`, one whose command line holds it (so a
    recycled pid never passes for the process we started)."""
    proc = proc or PROC
    if proc.is_dir():
        st = state(pid, proc)
        if st is None or st == "Z":
            return False
        args = cmdline(pid, proc)
        return marker is None or args is None or marker in args
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
