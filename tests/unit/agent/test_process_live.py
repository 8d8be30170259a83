"""Real processes: each child of the agent runs in its own process group (a timeout kills the compose plugin too,
not just the docker CLI), the ledger names the groups a dead worker left running and the next job kills them, and
a follower notices a worker that is a zombie."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent import jobs, process
from agent.rollout import EXIT_CRITICAL
from agent.store import Store

pytestmark = pytest.mark.live

# a parent that starts a grandchild (as `docker` starts the compose plugin), prints its pid, then waits
TREE = "sleep 60 & echo $!; wait"


def _gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.state(pid) in (None, "Z"):
            return True
        time.sleep(0.05)
    return False


def test_a_timeout_kills_the_whole_process_group(tmp_path):
    """Risk: subprocess.run kills only the docker CLI on a timeout, and its compose plugin goes on (`up` racing the
    restore that follows)."""
    out = tmp_path / "grandchild"
    with pytest.raises(subprocess.TimeoutExpired):
        process.run_process(["sh", "-c", f"sleep 60 & echo $! > {out}; wait"], timeout=1)
    assert _gone(int(out.read_text()))


def test_the_ledger_holds_a_group_while_it_runs_and_drops_it_after(tmp_path):
    ledger = tmp_path / "children"
    seen: list[list[str]] = []

    def peek() -> None:
        time.sleep(0.5)
        seen.append(sorted(p.name for p in ledger.glob("*.json")))

    t = threading.Thread(target=peek)
    t.start()
    proc = process.GroupRunner(ledger)(["sh", "-c", "sleep 1; echo done"], timeout=10)
    t.join()
    assert proc.stdout == "done\n"
    assert len(seen[0]) == 1
    assert list(ledger.glob("*.json")) == []


def test_a_dead_workers_groups_are_killed_and_a_recycled_pid_is_left_alone(tmp_path):
    """What the next job does first: kill the groups a SIGKILLed worker's ledger still names. A record whose leader
    started at another time is another process that got the same pid: never signalled."""
    ledger = tmp_path / "children"
    ledger.mkdir()
    orphan = subprocess.Popen(["sh", "-c", TREE], stdout=subprocess.PIPE, text=True, process_group=0)
    stranger = subprocess.Popen(["sh", "-c", TREE], stdout=subprocess.PIPE, text=True, process_group=0)
    assert orphan.stdout is not None and stranger.stdout is not None
    grandchild = int(orphan.stdout.readline())
    (ledger / f"{orphan.pid}.json").write_text(json.dumps(
        {"pgid": orphan.pid, "start": process.start_ticks(orphan.pid), "argv": ["docker", "compose", "up"]}))
    (ledger / f"{stranger.pid}.json").write_text(json.dumps(
        {"pgid": stranger.pid, "start": (process.start_ticks(stranger.pid) or 0) + 1, "argv": ["docker"]}))
    try:
        killed = process.kill_leftovers(ledger, grace=2)
        assert [k["pgid"] for k in killed] == [orphan.pid]
        assert orphan.wait(timeout=5) == -signal.SIGTERM
        assert _gone(grandchild)
        assert stranger.poll() is None
        assert list(ledger.glob("*.json")) == []
    finally:
        os.killpg(stranger.pid, signal.SIGKILL)
        stranger.wait()


def test_a_follower_reattached_to_a_zombie_worker_gives_up_within_seconds(tmp_path, capsys):
    """`hostagent wait` on a worker that was SIGKILLed and never reaped: kill(pid, 0) succeeds on a zombie, and the
    follower used to poll forever."""
    store = Store(tmp_path, "green")
    store.ensure()
    job = "20250101T000000-zzzzzz"
    store.write_job_file(f"{job}.spec.json", json.dumps({"action": "apply", "release": "r2", "options": {}}))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", job])
    store.write_job_file(f"{job}.pid", str(child.pid))
    os.kill(child.pid, signal.SIGKILL)
    assert _gone(child.pid)
    codes: list[int] = []
    t = threading.Thread(target=lambda: codes.append(jobs.follow(store, job)), daemon=True)
    started = time.monotonic()
    t.start()
    t.join(15)
    child.wait()
    assert codes == [EXIT_CRITICAL], "the follower is still polling a dead worker"
    assert time.monotonic() - started < 5
    assert "died, without a result" in capsys.readouterr().out


def test_a_follower_of_its_own_killed_worker_reports_the_signal(tmp_path: Path) -> None:
    """The worker the follower started is its child: reaped by poll(), the signal that killed it is named."""
    store = Store(tmp_path, "green")
    store.ensure()
    job = "20250101T000000-yyyyyy"
    store.write_job_file(f"{job}.spec.json", json.dumps({"action": "apply", "release": "r2", "options": {}}))
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdout=subprocess.DEVNULL)
    store.write_job_file(f"{job}.pid", str(worker.pid))
    os.kill(worker.pid, signal.SIGKILL)
    started = time.monotonic()
    assert jobs.follow(store, job, worker, poll=0.05) == EXIT_CRITICAL
    assert time.monotonic() - started < 2
    assert "killed by SIGKILL" in json.loads((store.jobs / f"{job}.result.json").read_text())["message"]
