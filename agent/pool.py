"""What becomes of a release after the agent's own apply (standard library only): the Pulumi gate's verdict, and a
pool host's provisional activation.

gate     validate the release that runs (activated again first when an earlier gate put the previous one back,
         so re-running `pulumi up` retries it) and print one summary line. A failed gate takes the same restore
         path as a failed apply: debug bundle, the previous release back, `gate.failed` audited after the restore.
         Current and previous swap, as in a rollback.
confirm  a pool host's apply with `--confirm-within S` is provisional: unless `confirm` arrives within S seconds
         (the program sends it to every host once every host's gate passed), the worker that applied it (or the
         next job, when that worker is gone) puts the release before back (`apply.unconfirmed`). So a failure on
         host 2 returns host 1 as well, and a pool never stays mixed. `confirm` of a release the host already
         left activates it again: the retry of a failed update ends with the whole pool on it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.remote import validate_argv
from agent.rollout import EXIT_FAILED, EXIT_INPUT, Outcome
from agent.steps import AGENT_DIR, StepFailed
from agent.validate.gate import read_report, summarize

if TYPE_CHECKING:
    from agent.rollout import Rollout


def ensure_current(r: Rollout, release_id: str) -> str | None:
    """Activate `release_id` again unless it is the current, running release. Returns the activation's message."""
    current = r.store.pointer("current")
    if current == release_id and r.store.run_target() == release_id:
        return None
    if not r.store.release_dir(release_id).is_dir():
        kept = ", ".join(r.store.kept_releases()) or "none"
        raise Outcome(EXIT_INPUT, f"release {release_id} is not on this host (kept: {kept})")
    r.log(f"{release_id} is not the running release here (current: {current or 'none'}): activating it again")
    return r.switch_to(release_id, action="apply")


def revert(r: Rollout, release_id: str, failure: StepFailed, action: str, event: str) -> str:
    """Put the release before `release_id` back after a verdict against it; returns the operator's message (the
    caller fails the job). Current and previous swap first, so a worker dying half-way is reconciled to the
    release being restored."""
    prior = r.store.pointer("previous")
    if prior is not None and prior != release_id:
        r.store.set_pointer("current", prior)
        r.store.set_pointer("previous", release_id)
        r.store.write_pending({"release": prior, "previous": release_id, "action": action, "job": r.job})
    provisional = r.store.read_provisional()
    if provisional and provisional.get("release") == release_id:
        r.store.clear_provisional()
    try:
        return r.restore(release_id, prior, failure, action, event)
    finally:
        r.store.clear_pending()


def gate(r: Rollout, release_id: str, report: Path) -> tuple[str, dict[str, Any]]:
    """The Pulumi gate on this host. Returns the message and the summary; raises Outcome (with the summary) after
    restoring the previous release when a check failed."""
    activated = ensure_current(r, release_id)
    report.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    report.unlink(missing_ok=True)  # a stale pass must never count
    argv = validate_argv(sys.executable, str(r.store.release_dir(release_id) / "resolved.json"), str(report),
                         deadline=r.opts.validate_deadline,
                         labels={"release": release_id, "project": r.store.project, "gate": "pulumi"},
                         extra=r.opts.validate_args,
                         secrets_file=str(r.store.secrets_file))
    error = ""
    try:
        proc = r.attempt(argv, r.opts.validate_deadline + 60, "validate", "the validator", cwd=AGENT_DIR)
        code = proc.returncode
        for line in proc.stdout.strip().splitlines():
            r.log(f"  {line}")
    except StepFailed as exc:
        code, error = 2, exc.reason
    r.count_traces(report)
    parsed, unreadable = read_report(report)
    summary = summarize(parsed, release_id, code, error or unreadable)
    done = [m for m in (activated,) if m]
    if summary["passed"]:
        r.audit_into(done, "gate.passed", release=release_id, checks=summary["checks"], job=r.job)
        return "\n".join([*done, f"gate of {release_id}: {summary['checks']} checks passed"]), summary
    what = ", ".join(summary["failed"]) or summary.get("error") or f"the validator exited {code}"
    failure = StepFailed("validate", f"validation gate failed: {what} (report {report})",
                         parsed.failed_services if parsed else ())
    message = revert(r, release_id, failure, "gate", "gate.failed")
    raise Outcome(EXIT_FAILED, "\n".join([*done, message]), summary)


def confirm(r: Rollout, release_id: str) -> str:
    """The pool passed: `release_id` stays (activated again if the host already went back)."""
    provisional = r.store.read_provisional()
    if r.store.pointer("current") == release_id and r.store.run_target() == release_id:
        if not (provisional and provisional.get("release") == release_id):
            return f"release {release_id} is current and not provisional: nothing to confirm"
        r.store.clear_provisional()
        r.audit_into([], "apply.confirmed", release=release_id, job=r.job, provisional_job=provisional.get("job"))
        return f"release {release_id} confirmed: it stays (provisional since {provisional.get('since')})"
    message = ensure_current(r, release_id) or ""
    r.audit_into([], "apply.confirmed", release=release_id, job=r.job, activated_again=True)
    return f"{message}\nrelease {release_id} confirmed" if message else f"release {release_id} confirmed"


def overdue(r: Rollout, keep: str | None = None) -> str | None:
    """An unconfirmed release past its deadline (its worker is gone, or waits for our lock): put the release before
    back now. `keep`: the release a gate or confirm is about, whose late confirmation wins."""
    provisional = r.store.read_provisional()
    if not provisional or provisional.get("release") == keep or r.now() < float(provisional.get("deadline", 0)):
        return None
    return expire(r, provisional)


def expire(r: Rollout, provisional: dict[str, Any]) -> str:
    """The confirmation did not come: the release before comes back. Returns what was done (raises Outcome when
    that restore failed too)."""
    release_id = str(provisional.get("release"))
    if r.store.pointer("current") != release_id:
        r.store.clear_provisional()
        return f"provisional release {release_id} is no longer current: nothing to put back"
    r.log(f"release {release_id} was not confirmed within {provisional.get('seconds')}s: putting "
          f"{r.store.pointer('previous')} back")
    failure = StepFailed("confirm", f"not confirmed within {provisional.get('seconds')}s (another host of the pool "
                                    "failed, or the update stopped)")
    return revert(r, release_id, failure, "apply", "apply.unconfirmed")
