"""What a job does first, under the project's lock, before it changes anything (standard library only): put the host
back into a state the agent recorded when a worker died mid-activation.

A worker killed with SIGKILL (the OOM killer, a reboot) leaves its compose children running, `pending.json` in
place and possibly a `run` link and containers of a release that was never validated, while `current` still names
the release that ran before. `reconcile` kills the process groups the worker's ledger still names, then activates
the recorded `current` release again through the same steps as any restore, and says in the audit log what it
found and did. `hostagent recover` runs it alone; every apply, rollback, gate and confirm runs it first. It also
puts back the release before a pool host's provisional one once its confirmation is overdue (agent.pool).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from agent import pool
from agent.process import kill_leftovers
from agent.rollout import EXIT_CRITICAL, Outcome
from agent.steps import StepFailed

if TYPE_CHECKING:
    from agent.rollout import Rollout


def reconcile(r: Rollout, keep: str | None = None) -> str | None:
    """Clean up after a worker that died. Returns what was done (None: nothing to do); raises Outcome(EXIT_CRITICAL)
    when the recorded release cannot be brought back. `keep`: a provisional release this job is about (a late
    confirmation of it wins over its deadline)."""
    done: list[str] = []
    killed = kill_leftovers(r.store.children)
    if killed:
        groups = [{"pgid": k.get("pgid"), "argv": k.get("argv")} for k in killed]
        shown = "; ".join(" ".join(str(a) for a in (k.get("argv") or [])[:4]) for k in killed)
        r.log(f"killed {len(killed)} process group(s) a dead worker left running: {shown}")
        r.audit_into(done, "recover.children_killed", job=r.job, groups=groups)
        done.append(f"killed {len(killed)} process group(s) left running by a dead worker ({shown})")
    stale = r.store.read_pending()
    if stale:
        done.append(restore_recorded(r, stale))
    expired = pool.overdue(r, keep)
    if expired:
        done.append(expired)
    return "\n".join(done) or None


def restore_recorded(r: Rollout, stale: dict[str, object]) -> str:
    """Activate the recorded current release again after an activation that never finished."""
    target = r.store.pointer("current")
    interrupted = f"{stale.get('action', 'activation')} of {stale.get('release', '?')} (job {stale.get('job', '?')})"
    r.log(f"an earlier {interrupted} did not finish; restoring the recorded current release {target or '(none)'}")
    lines: list[str] = [f"an earlier {interrupted} did not finish"]
    r.audit_into(lines, "recover.stale_pending", release=stale.get("release"), stale=stale, job=r.job)
    if target is None:
        r.store.clear_pending()
        r.audit_into(lines, "recover.nothing_to_restore", release=stale.get("release"), job=r.job)
        lines.append("no release was recorded as current: nothing to restore; what runs stays for inspection")
        return "\n".join(lines)
    r.store.write_pending({"release": target, "previous": r.store.pointer("previous"), "action": "recover",
                           "job": r.job, "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    try:
        r.activate(target, restoring=True)
    except StepFailed as failure:
        r.store.clear_pending()
        r.audit_into(lines, "recover.failed", release=target, interrupted=stale.get("release"), job=r.job,
                     stage=failure.stage, reason=failure.reason, services=list(failure.services))
        lines.append(f"CRITICAL: restoring {target} failed at {failure.stage}: {failure.reason}")
        raise Outcome(EXIT_CRITICAL, "\n".join(lines)) from failure
    r.store.clear_pending()
    r.audit_into(lines, "recover.succeeded", release=target, interrupted=stale.get("release"), job=r.job)
    lines.append(f"recorded current release {target} restored and serving")
    return "\n".join(lines)
