"""`ops.cli release`: one release through the idle color, or in place in single-color mode (ops/release_plan.py
says which updates, in which order).

build once → apply to the idle color (its validation gate is the pre-promotion analysis) → promote (the flip,
with the program's refusal rules) → post-promotion analysis of the live color for the bake window → stable, or an
automatic flip back, a diagnostics bundle from the bad color (left running), exit 1 with the reason. Every update
goes through the stack config (the flip is written to it, as a person's flip is) and the record lands in the
traffic owner's `releaseRuns` output. A promotion left half-way by a killed run (`promotion` in the owner's
outputs) is finished first: analysed again, then marked stable or flipped back. One run at a time (a lock).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from agent.remote import diagnose_command
from components.sources import RELEASE_RUN_ENV
from ops import analysis_plan, release_plan
from ops import operator_plan as plan
from ops.analysis import run_analysis
from ops.operator_host import (
    EXIT_DECLINED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Pulumi,
    collect_from,
    confirm,
    prometheus_tunnel,
    ssh_targets,
)
from ops.release_record import Record, run_id, run_markdown, utc
from ops.stacks import StackError, Stacks
from standin import localenv


@contextmanager
def release_lock(owner: str, run: str, directory: Path | None = None) -> Iterator[None]:
    """One release of a stack at a time on this machine (CI adds its concurrency group across runners)."""
    base = directory or Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    path = base / f"devtools-release-{owner.replace('/', '_')}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown"
            raise CliError(f"another release of stack {owner} is running ({holder}); wait for it, or look at "
                           f"`python -m ops.cli status --stack {owner}`", EXIT_USAGE) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"run {run}, pid {os.getpid()}, since {utc(time.time())}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


class Flow:
    """One run: the stacks, the analysis, the record, what is printed."""

    def __init__(self, stacks: Stacks, owner: str, *, out: TextIO, collect_dir: Path) -> None:
        self.stacks, self.owner, self.out, self.collect_dir = stacks, owner, out, collect_dir
        self.config = stacks.config(owner)
        try:
            self.spec = analysis_plan.spec_from_config(self.config)
        except ValueError as exc:
            raise CliError(f"stack {owner}: {exc}", EXIT_USAGE) from exc

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def situation(self) -> release_plan.Situation:
        outputs = self.stacks.outputs(self.owner)
        standby = self.config.get("standbyStack", "blue")
        try:
            standby_outputs: dict[str, Any] | None = self.stacks.outputs(standby)
        except StackError:
            standby_outputs = None
        try:
            return release_plan.situation(self.owner, self.config, outputs, standby_outputs)
        except release_plan.ReleasePlanError as exc:
            raise CliError(str(exc), EXIT_USAGE) from exc

    def update(self, step: release_plan.Update, record: Record | None = None) -> dict[str, Any]:
        self.say(f"==> {step.message}: {step.render()}")
        self.stacks.set_config(step.stack, dict(step.config))
        if record is None:
            return self.stacks.up(step.stack, step.message)
        with tempfile.TemporaryDirectory(prefix="devtools-run-") as tmp:
            path = Path(tmp) / "run.json"
            path.write_text(json.dumps(record.to_json()))
            return self.stacks.up(step.stack, step.message, extra_env={RELEASE_RUN_ENV: str(path)})

    def stack_of(self, color: str) -> str:
        return self.owner if color == self.config.get("color", "green") else self.config.get("standbyStack", "blue")

    @contextmanager
    def prometheus(self, color: str) -> Iterator[tuple[str, str]]:
        """The Prometheus the analysis asks, and the selector of `color` there: analysisPrometheusUrl (one that
        scrapes both colors, `color` labelled), else the color's first host's own (edge profile) through SSH."""
        url = self.config.get("analysisPrometheusUrl") or ""
        if url:
            yield url, f'color="{color}"'
            return
        stack = self.stack_of(color)
        try:
            hosts = plan.hosts_of(stack, self.stacks.outputs(stack))[:1]
        except plan.PlanError as exc:
            raise CliError(f"the analysis cannot reach {color}'s Prometheus: {exc}", EXIT_FAILED) from exc
        port = int(f"{self.stacks.config(stack).get('hostPortPrefix', '80')}90")
        with ssh_targets(Pulumi(self.stacks.root, dict(os.environ)), stack, hosts, None) as targets, \
                prometheus_tunnel(targets[0], port) as tunnel:
            yield tunnel, ""

    def analyse(self, record: Record, color: str, name: str = "post") -> bool:
        self.say(f"==> {name}-promotion analysis of {color}: {len(self.spec.metrics)} metric(s) every "
                 f"{self.spec.interval_s:g}s, {self.spec.count} times (bake window "
                 f"{self.spec.interval_s * self.spec.count:g}s)")
        with self.prometheus(color) as (url, selector), \
                record.step(f"{name}-analysis", f"{color} at {url}") as entry:
            result = run_analysis(self.spec, base_url=url, selector=selector, out=self.out)
            record.analysis[name] = result.to_json()
            entry["outcome"] = result.phase
        if result.phase == "inconclusive":
            self.say(f"warning: the analysis was inconclusive ({result.reason}): treated as passed")
        return result.phase != "failed"

    def instant_flip(self, color: str) -> float | None:
        """Move the load balancer now, before the update that records it (abort = instant return): the local
        proxy's own switch (the traffic resource runs the same command again, a no-op). The time it moved, or
        None where only the update moves it (a DigitalOcean load balancer)."""
        if self.config.get("traffic") != "localProxy":
            return None
        proc = subprocess.run(localenv.flip_argv(self.stacks.root, color), capture_output=True, text=True,
                              timeout=120, check=False)
        if proc.returncode != 0:
            self.say(f"warning: the instant flip to {color} failed ({proc.stderr.strip()[-300:]}); the update "
                     "moves traffic instead")
            return None
        return time.time()

    def diagnostics(self, stack: str, outputs: Mapping[str, Any], run: str) -> str:
        """A debug bundle of the bad color on each of its hosts (named after the run), then their reports and
        bundles into collect_dir/<stack>/<host>; the color stays up."""
        try:
            hosts = plan.hosts_of(stack, outputs)
            dest = self.collect_dir / stack
            with ssh_targets(Pulumi(self.stacks.root, dict(os.environ)), stack, hosts, None) as targets:
                for host, target in zip(hosts, targets, strict=True):
                    subprocess.run(target.argv(diagnose_command(host.root, host.project, run)), capture_output=True,
                                   timeout=300, check=False)
                errors = [e for h, t in zip(hosts, targets, strict=True) if (e := collect_from(t, h, dest / h.name))]
        except (plan.PlanError, CliError, OSError) as exc:
            return f"diagnostics not collected: {exc}"
        return f"diagnostics in {dest}" + (f" ({'; '.join(errors)})" if errors else "")


def release(flow: Flow, *, dry_run: bool, yes: bool) -> int:
    s = flow.situation()
    run = run_id(time.time())
    if s.promotion:
        code = resume(flow, s)
        if code != EXIT_OK or dry_run:
            return code
        s = flow.situation()
    flow.say(release_plan.render(s, run, analysis_plan.render_plan(flow.spec, f'color="{s.idle}"')))
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
        return _never_promoted(flow, s, record, str(exc))
    if release_plan.first_in_place(s):
        record.to_color = s.owner_color
        if flow.analyse(record, s.owner_color, "post"):
            record.finish("stable", f"{release} runs on {s.owner_color}, analysed under traffic")
            flow.update(release_plan.record_update(s.owner, run), record)
            return EXIT_OK
        return _roll_back_in_place(flow, s, record)
    record.to_color = s.idle
    with record.step("promote", f"traffic {s.live} -> {s.idle}"):
        flow.update(release_plan.promote_update(s, run, release, utc(time.time())))
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
    flow.say(f"run {p['run']} promoted {p['release']} to {p['color']} at {p['started']} and did not finish its "
             f"bake window: analysing {p['color']} again now")
    record = Record(run=run_id(time.time()), stack=s.owner, strategy=s.strategy, started=time.time(),
                    release=p["release"], from_color=p["from"], to_color=p["color"], resumed=p["run"])
    try:
        flow.stacks.set_config(s.owner, {"liveColor": p["color"], "promotion": dict(p)})
        return _bake(flow, s.owner, record, back_to=p["from"], bad_stack=s.stack_of(p["color"]))
    except (StackError, CliError) as exc:
        flow.say(f"error: {exc}")
        return EXIT_FAILED
    finally:
        _summary(record)


def _summary(record: Record) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path and record.outcome:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(run_markdown(record.to_json()))


def main(root: Path, owner: str, *, dry_run: bool, yes: bool, collect_dir: Path, out: TextIO = sys.stdout) -> int:
    flow = Flow(Stacks(root, out=out), owner, out=out, collect_dir=collect_dir)
    with release_lock(owner, "dry run" if dry_run else "release"):
        return release(flow, dry_run=dry_run, yes=yes)
