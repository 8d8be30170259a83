"""Detached jobs of the host agent (standard library only): start a worker in its own session, follow its log,
notice when it dies without a result.

`apply`, `rollback`, `recover`, `gate` and `confirm` run in a worker (`python -m agent.hostagent _run JOB`) whose
output goes to jobs/<job>.log and whose outcome goes to jobs/<job>.result.json; the command the operator (or
Pulumi) started only follows the log. The worker holds the project's lock for the whole job, first reconciles
what a dead worker left behind (agent.recovery), masks the project's secret values in every line it prints and
in its result, and ends by trimming old jobs, reports, bundles and uploads (agent.retention).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import pool, process, retention
from agent.recovery import reconcile
from agent.rollout import EXIT_CRITICAL, EXIT_INPUT, EXIT_LOCK, EXIT_OK, Outcome, Rollout
from agent.steps import AGENT_DIR, Options
from agent.store import LockTimeout, Store, describe_holder
from agent.validate.gate import summary_line

Action = Callable[[Rollout, dict[str, Any]], tuple[str, dict[str, Any] | None]]


def log_line(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _apply(r: Rollout, spec: dict[str, Any]) -> tuple[str, None]:
    return r.apply(Path(spec["bundle"])), None


def _rollback(r: Rollout, spec: dict[str, Any]) -> tuple[str, None]:
    return r.rollback(spec.get("target")), None


def _recover(r: Rollout, spec: dict[str, Any]) -> tuple[str, None]:
    """Everything happened in reconcile, which every job runs first."""
    return "", None


def _gate(r: Rollout, spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    report = spec.get("report") or str(r.store.base / "reports" / f"gate-{spec['release']}.json")
    return pool.gate(r, spec["release"], Path(report))


def _confirm(r: Rollout, spec: dict[str, Any]) -> tuple[str, None]:
    return pool.confirm(r, spec["release"]), None


ACTIONS: dict[str, Action] = {"apply": _apply, "rollback": _rollback, "recover": _recover, "gate": _gate,
                              "confirm": _confirm}


def run_job(store: Store, job: str, **seams: Any) -> int:
    """Body of the detached worker: reconcile, then do the action, under the lock; write jobs/<job>.result.json.
    `seams` go to the Rollout (a test's scripted runner); the default runner records its children's groups."""
    store.write_job_file(f"{job}.pid", str(os.getpid()))
    spec = json.loads((store.jobs / f"{job}.spec.json").read_text())
    raw: dict[str, Any] = dict(spec["options"])
    raw["validate_args"] = tuple(raw.get("validate_args", ()))
    opts = Options(**raw)
    masker = store.masker()

    def log(message: str) -> None:
        log_line(masker(message))

    seams.setdefault("runner", process.GroupRunner(store.children))
    rollout = Rollout(store, opts, log, job=job, **seams)
    action = spec["action"]
    holder = {"job": job, "pid": os.getpid(), "action": action, "release": spec.get("release", "?"),
              "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    code, message, recovered, summary = EXIT_OK, "", None, None
    try:
        with store.lock(opts.lock_timeout, holder, lambda h: log(f"waiting for the lock ({describe_holder(h)})")):
            try:
                recovered = reconcile(rollout, spec.get("release") if action in ("gate", "confirm") else None)
                message, summary = ACTIONS[action](rollout, spec)
                if action == "recover" and not recovered:
                    message = f"project {store.project}: nothing to recover (no unfinished activation, no process " \
                              "left running)"
            finally:
                retention.trim(store, log)
    except LockTimeout as exc:
        code, message = EXIT_LOCK, f"{exc}; nothing changed"
        rollout.audit_into([], f"{action}.lock_timeout", job=job, release=spec.get("release"), reason=str(exc))
    except Outcome as exc:
        code, message, summary = exc.code, exc.message, exc.summary
        if code == EXIT_INPUT:
            rollout.audit_into([], f"{action}.refused", job=job, release=spec.get("release"), reason=message)
    except Exception as exc:  # the job must always end with a result the follower can read
        code, message = EXIT_CRITICAL, f"host agent error: {type(exc).__name__}: {exc}"
        rollout.audit_into([], f"{action}.error", job=job, reason=message)
    message = "\n".join(m for m in (recovered, message) if m)
    message = store.masker()(masker(message))  # the file may have changed during the job: both sets of values
    log_line(("OK: " if code == 0 else "FAILED: ") + message)
    write_result(store, job, {"exit": code, "message": message, "job": job, "finished": time.time(),
                              **({"summary": summary} if summary is not None else {})})
    watch_provisional(rollout, opts.lock_timeout)
    return code


def watch_provisional(r: Rollout, lock_timeout: float) -> None:
    """After its result, the worker of a provisional activation (agent.pool) stays until the release is confirmed,
    replaced or due: then it puts the release before back under the lock. A worker that does not live that long
    (a reboot) leaves it to the next job's reconcile."""
    while True:
        provisional = r.store.read_provisional()
        if not provisional or provisional.get("job") != r.job:
            return
        left = float(provisional.get("deadline", 0)) - r.now()
        if left > 0:
            r.sleep(min(left, 5.0))
            continue
        holder = {"job": r.job, "pid": os.getpid(), "action": "expire", "release": provisional.get("release"),
                  "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            with r.store.lock(max(lock_timeout, 3600.0), holder):
                provisional = r.store.read_provisional()
                if provisional and provisional.get("job") == r.job:
                    r.log(pool.expire(r, provisional))
        except (LockTimeout, Outcome) as exc:
            r.log(f"putting back the release before an unconfirmed one failed: {exc}")
        return


def write_result(store: Store, job: str, result: dict[str, Any]) -> None:
    store.write_job_file(f"{job}.result.json", json.dumps(result) + "\n")


def start_job(store: Store, action: str, spec: dict[str, Any], detach: bool) -> int:
    store.ensure()
    job = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    store.write_job_file(f"{job}.spec.json", json.dumps({"action": action, **spec}, sort_keys=True))
    fd = os.open(store.jobs / f"{job}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as out:
        worker = subprocess.Popen(  # detached: a new session, so an SSH hang-up never reaches it
            [sys.executable, "-m", "agent.hostagent", "--root", str(store.root), "--project", store.project,
             "_run", job],
            cwd=AGENT_DIR, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    print(f"job {job}: {action} started (log {store.jobs / (job + '.log')})", flush=True)
    return EXIT_OK if detach else follow(store, job, worker)


def follow(store: Store, job: str, worker: subprocess.Popen[bytes] | None = None, poll: float = 0.2) -> int:
    """Print the job's log as it grows until its result exists; return its exit code. A worker that dies without a
    result (killed, OOM) is noticed within seconds: with `worker` (our own child, reaped here) at the next poll,
    else within ten polls (its pid, not a zombie, running this job)."""
    log_path, result_path = store.jobs / f"{job}.log", store.jobs / f"{job}.result.json"
    offset, polls = 0, 0
    while True:
        done = result_path.exists()
        offset = _relay(log_path, offset)
        if done:
            result = json.loads(result_path.read_text())
            if "summary" in result:  # a gate's verdict: its last line, one JSON object (components.validation)
                print(summary_line(result["summary"]), flush=True)
            return int(result["exit"])
        polls += 1
        exited = worker.poll() if worker is not None else None
        lost = exited is not None or (worker is None and polls % 10 == 0 and not worker_alive(store, job))
        if lost and not result_path.exists():
            _relay(log_path, offset)
            message = report_lost(store, job, exited)
            print(f"FAILED: {message}", flush=True)
            return EXIT_CRITICAL
        time.sleep(poll)


def _relay(log_path: Path, offset: int) -> int:
    if not log_path.exists():
        return offset
    with open(log_path, "rb") as fh:
        fh.seek(offset)
        chunk = fh.read()
    if chunk:
        sys.stdout.write(chunk.decode(errors="replace"))
        sys.stdout.flush()
    return offset + len(chunk)


def worker_alive(store: Store, job: str) -> bool:
    """The job's worker is running: its pid is a live process (not a zombie) whose command line names the job."""
    pid_file = store.jobs / f"{job}.pid"
    if not pid_file.exists():  # not started yet: give it a moment
        return time.time() - (store.jobs / f"{job}.spec.json").stat().st_mtime < 30
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return False
    return process.running(pid, marker=job)


def report_lost(store: Store, job: str, exit_status: int | None) -> str:
    """A worker gone without a result: say what that means, record it as the job's result and in the audit log."""
    spec = json.loads((store.jobs / f"{job}.spec.json").read_text())
    action, release = spec.get("action", "?"), spec.get("release", "?")
    pid = (store.jobs / f"{job}.pid").read_text().strip() if (store.jobs / f"{job}.pid").exists() else "?"
    how = "without a result"
    if exit_status is not None and exit_status < 0:
        name = signal.Signals(-exit_status).name if -exit_status in signal.valid_signals() else str(-exit_status)
        how = f"killed by {name}" + (" (as the OOM killer does)" if -exit_status == signal.SIGKILL else "")
    elif exit_status is not None:
        how = f"exited {exit_status} without a result"
    pending = store.read_pending()
    current = store.pointer("current")
    state = (f"its {pending.get('action')} of {pending.get('release')} did not finish: the host may run part of it"
             if pending else "no activation was in progress")
    message = (f"the worker of job {job} (pid {pid}, {action} of {release}) died, {how}; {state}. "
               f"`hostagent recover` (or the next apply, rollback or gate, which recover first) kills what it "
               f"left running and restores the recorded current release ({current or 'none'})")
    try:
        store.audit(f"{action}.worker_lost", job=job, release=release, pid=pid, how=how,
                    pending=pending is not None, current=current)
    except OSError as exc:
        message += f" (audit log: {action}.worker_lost not recorded: {exc})"
    if not (store.jobs / f"{job}.result.json").exists():
        write_result(store, job, {"exit": EXIT_CRITICAL, "message": message, "job": job, "finished": time.time(),
                                  "lost": True})
    return message


def latest_job(store: Store) -> str | None:
    specs = sorted(store.jobs.glob("*.spec.json")) if store.jobs.exists() else []
    return specs[-1].name.removesuffix(".spec.json") if specs else None
