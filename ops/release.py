"""`ops.cli release`: one release through the idle color, or in place in single-color mode (ops/release_plan.py
says which updates, in which order; ops/release_run.py holds the parts of a run).

build once → apply to the idle color (its validation gate is the pre-promotion analysis) → promote (the flip,
with the program's refusal rules) → post-promotion analysis of the live color for the bake window → stable, or an
automatic flip back, a diagnostics bundle from the bad color (left running), exit 1 with the reason. Every update
goes through the stack config (the flip is written to it, as a person's flip is) and the record lands in the
traffic owner's `releaseRuns` output and the released color's hosts' audit. A promotion left half-way by a killed
run (`promotion` in the owner's outputs) is finished first: analysed again, then marked stable or flipped back.
One run at a time (a lock).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

from ops import analysis_plan, release_plan
from ops.deploy_lock import release_lock
from ops.operator_host import EXIT_DECLINED, EXIT_FAILED, EXIT_OK, CliError, append_step_summary, confirm
from ops.release_record import Record, run_id, run_markdown, utc
from ops.release_run import Flow
from ops.stacks import StackError, Stacks


def release(flow: Flow, *, dry_run: bool, yes: bool) -> int:
    s = flow.situation()
    if s.promotion and dry_run:
        p = s.promotion
        flow.say(f"first: run {p['run']} moved traffic to {p['color']} ({p['release']}) at {p['started']} and did "
                 f"not finish its bake window; a release analyses {p['color']} again for a whole window, then marks "
                 f"it stable or flips back to {p['from']}, before the plan below")
    elif s.promotion:
        code = resume(flow, s)
        if code != EXIT_OK:
            return code
        s = flow.situation()
    run = run_id(time.time())  # after a resumed run: each run its own id (the record is kept by id)
    analysed = s.owner_color if release_plan.first_in_place(s) else s.idle
    flow.say(release_plan.render(s, run, analysis_plan.render_plan(flow.spec, f'color="{analysed}"')))
    if dry_run:
        return EXIT_OK
    if not confirm("Go ahead?", yes, sys.stdin, flow.out):
        flow.say("declined: nothing changed")
        return EXIT_DECLINED
    record = Record(run=run, stack=s.owner, strategy=s.strategy, started=time.time(), from_color=s.live)
    try:
        return _release(flow, s, record)
    except (StackError, CliError) as exc:
        flow.say(f"error: {exc}")
        if record.outcome is None:
            record.finish("failed", str(exc))
        return EXIT_FAILED
    finally:
        _summary(record)


def _release(flow: Flow, s: release_plan.Situation, record: Record) -> int:
    run = record.run
    try:
        with record.step("build", s.owner):
            outputs = flow.update(release_plan.build_update(s, run))
        release = str((outputs.get("build") or {}).get("id"))
        record.release = release
        idle = release_plan.idle_update(s, run, release)
        if idle is not None:
            with record.step("apply-idle", f"{release} on {s.idle} (stack {idle.stack}): its validation gate"):
                flow.update(idle)
    except StackError as exc:
        if release_plan.first_in_place(s):
            return _restored_by_the_host(flow, s, record, str(exc))
        return _never_promoted(flow, s, record, str(exc))
    if release_plan.first_in_place(s):
        record.to_color = s.owner_color
        if flow.analyse(record, s.owner_color, "post-deploy"):
            record.finish("stable", f"{release} runs on {s.owner_color}, analysed under traffic")
            flow.update(release_plan.record_update(s.owner, run), record)
            return EXIT_OK
        return _roll_back_in_place(flow, s, record)
    record.to_color = s.idle
    record.analysis["promote_started_at"] = time.time()  # the load balancer moves during this update
    try:
        with record.step("promote", f"traffic {s.live} -> {s.idle}"):
            flow.update(release_plan.promote_update(s, run, release, utc(time.time())))
    except StackError as exc:  # refused (or failed) before traffic moved: the stack file says so again
        return _promotion_failed(flow, s, record, str(exc))
    record.analysis["promoted_at"] = time.time()
    return _bake(flow, s.owner, record, back_to=s.live, bad_stack=s.idle_stack)


def _bake(flow: Flow, owner: str, record: Record, *, back_to: str, bad_stack: str) -> int:
    assert record.to_color is not None and record.release is not None
    if flow.analyse(record, record.to_color):
        record.finish("stable", f"{record.release} on {record.to_color} passed its bake window")
        with record.step("stable"):
            flow.update(release_plan.stable_update(owner, record.run, record.release), record)
        flow.say(f"done: {record.release} is stable on {record.to_color}; {back_to} keeps the previous release "
                 "(the instant flip-back target)")
        return EXIT_OK
    post = record.analysis.get("post") or {}
    why = f"post-promotion analysis failed: {post.get('reason')}"
    record.finish("flipped back", why)
    with record.step("flip-back", f"traffic {record.to_color} -> {back_to}"):
        # instant where the load balancer allows it; else the update moves it (its step's seconds say how long)
        moved = flow.instant_flip(back_to) or time.time()
        record.analysis["flipped_back_at"] = moved
        flow.update(release_plan.flip_back_update(owner, record.run, back_to, why), record)
    detected = post.get("first_failure_at")
    flow.say(f"flipped back to {back_to}: {why}"
             + (f"; {moved - float(detected):.1f}s from the first failing measurement to traffic on {back_to}, "
                f"bake window {flow.spec.interval_s * flow.spec.count:g}s" if detected else ""))
    collected = flow.diagnostics(bad_stack, flow.stacks.outputs(bad_stack), record.run)
    flow.say(f"{collected}; {record.to_color} is left running for diagnosis")
    return EXIT_FAILED


def _never_promoted(flow: Flow, s: release_plan.Situation, record: Record, why: str) -> int:
    record.finish("never promoted", f"pre-promotion: {why}")
    flow.say(f"release never promoted, traffic stays on {s.live}: {why}")
    flow.say(flow.diagnostics(s.idle_stack, flow.stacks.outputs(s.idle_stack), record.run))
    if s.idle_stack == s.standby and s.standby_release:  # its hosts put back what it ran: so does its stack file
        flow.stacks.set_config(s.standby, {"release": s.standby_release})
    # the owner's own color was the idle one: its stack file names what its host put back; else nothing changes
    update = release_plan.restore_owner_update(s, record.run) if s.idle_stack == s.owner else \
        release_plan.record_update(s.owner, record.run)
    with record.step("record"):
        flow.update(update, record)
    return EXIT_FAILED


def _promotion_failed(flow: Flow, s: release_plan.Situation, record: Record, why: str) -> int:
    """The promote update failed (the flip refused, or the load balancer's update): traffic stays where it was,
    the stack file says so again; the idle color keeps the release it validated."""
    flow.instant_flip(s.live)
    flow.stacks.set_config(s.owner, {"liveColor": s.live, "promotion": None})
    record.finish("never promoted", f"the promotion failed: {why}")
    flow.say(f"release never promoted, traffic stays on {s.live}: {record.reason}")
    with record.step("record"):
        flow.update(release_plan.record_update(s.owner, record.run), record)
    return EXIT_FAILED


def _restored_by_the_host(flow: Flow, s: release_plan.Situation, record: Record, why: str) -> int:
    """In place, the host's validation failed: it put back what it ran before; the stack is pinned to that too."""
    record.to_color = s.owner_color
    before = s.owner_release
    record.finish("rolled back" if before else "failed",
                  f"the host's validation failed{f' and it restored {before}' if before else ''}: {why}")
    flow.say(f"{record.reason}; traffic stays on {s.live}")
    flow.say(flow.diagnostics(s.owner, flow.stacks.outputs(s.owner), record.run))
    with record.step("record"):
        flow.update(release_plan.restore_owner_update(s, record.run), record)
    return EXIT_FAILED


def _roll_back_in_place(flow: Flow, s: release_plan.Situation, record: Record) -> int:
    why = f"post-deploy analysis failed: {(record.analysis.get('post') or {}).get('reason')}"
    record.finish("rolled back" if s.owner_release else "failed", why)
    if s.owner_release is None:
        flow.say(f"{why}; no earlier release to return to")
        flow.update(release_plan.record_update(s.owner, record.run), record)
        return EXIT_FAILED
    with record.step("roll-back", f"{s.owner_color} back on {s.owner_release}"):
        flow.update(release_plan.restore_owner_update(s, record.run), record)
    flow.say(f"rolled back to {s.owner_release}: {why}")
    return EXIT_FAILED


def resume(flow: Flow, s: release_plan.Situation) -> int:
    """A run was killed between its promotion and the end of its bake window: analyse the live color again for a
    whole window, then mark it stable or flip back, recorded as this run finishing that one."""
    p = s.promotion
    record = Record(run=run_id(time.time()), stack=s.owner, strategy=s.strategy, started=time.time(),
                    release=p["release"], from_color=p["from"], to_color=p["color"], resumed=p["run"])
    try:
        if flow.serving() == [p["from"]]:  # a flip back had begun (the proxy moved, its update did not finish)
            why = (f"run {p['run']} promoted {p['release']} to {p['color']} at {p['started']} and had begun to flip "
                   f"back to {p['from']}: finishing it")
            flow.say(why)
            record.finish("flipped back", why)
            flow.update(release_plan.flip_back_update(s.owner, record.run, p["from"], why), record)
            return EXIT_FAILED
        flow.say(f"run {p['run']} promoted {p['release']} to {p['color']} at {p['started']} and did not finish its "
                 f"bake window: analysing {p['color']} again now")
        flow.stacks.set_config(s.owner, {"liveColor": p["color"], "promotion": dict(p)})
        return _bake(flow, s.owner, record, back_to=p["from"], bad_stack=s.stack_of(p["color"]))
    except (StackError, CliError) as exc:
        flow.say(f"error: {exc}")
        return EXIT_FAILED
    finally:
        _summary(record)


def _summary(record: Record) -> None:
    if record.outcome:
        append_step_summary(run_markdown(record.to_json()))


def main(root: Path, owner: str, *, dry_run: bool, yes: bool, collect_dir: Path, ssh_key: Path | None = None,
         out: TextIO = sys.stdout) -> int:
    flow = Flow(Stacks(root, out=out), owner, out=out, collect_dir=collect_dir, ssh_key=ssh_key)
    with release_lock(owner, "dry run" if dry_run else "release"):
        return release(flow, dry_run=dry_run, yes=yes)
