"""One release run's parts (ops/release.py sequences them): the lock, the stacks' situation and updates (each
through the stack config), the analysis against the live color's Prometheus (direct, or a host's own through an
SSH tunnel), the instant flip back, the run's record into the hosts' audit, the bad color's diagnostics."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from agent.remote import agent_command, diagnose_command
from components.sources import RELEASE_RUN_ENV
from ops import analysis_plan, release_plan
from ops import operator_plan as plan
from ops.analysis import run_analysis
from ops.operator_host import (
    EXIT_FAILED,
    EXIT_USAGE,
    CliError,
    Pulumi,
    collect_from,
    prometheus_tunnel,
    ssh_targets,
)
from ops.release_record import Record
from ops.stacks import StackError, Stacks
from standin import lbctl, localenv


class Flow:
    """One run: the stacks, the analysis, the record, what is printed."""

    def __init__(self, stacks: Stacks, owner: str, *, out: TextIO, collect_dir: Path,
                 ssh_key: Path | None = None) -> None:
        self.stacks, self.owner, self.out, self.collect_dir = stacks, owner, out, collect_dir
        self.ssh_key = ssh_key  # --ssh-key; else each stack's own key
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
        self.audit(record)
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
        with ssh_targets(Pulumi(self.stacks.root, dict(os.environ)), stack, hosts, self.ssh_key) as targets, \
                prometheus_tunnel(targets[0], port) as tunnel:
            yield tunnel, ""

    def analyse(self, record: Record, color: str, title: str = "post-promotion", name: str = "post") -> bool:
        """The analysis of `color` (recorded under `name`); False when it failed."""
        self.say(f"==> {title} analysis of {color}: {len(self.spec.metrics)} metric(s) every "
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

    def serving(self) -> list[str] | None:
        """The colors the local proxy serves now (None where the load balancer is not the stand-in's haproxy)."""
        if self.config.get("traffic") != "localProxy":
            return None
        try:
            return lbctl.serving(localenv.load().lb_socket)
        except lbctl.LbError:
            return None

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

    def audit(self, record: Record) -> None:
        """The run's record into the audit of every host of the color it released (`hostagent record`, on stdin);
        a host that cannot be reached is said, never fatal: the stack's `releaseRuns` keeps the record too."""
        color = record.to_color or record.from_color
        if color is None:
            return
        stack = self.stack_of(color)
        try:
            hosts = plan.hosts_of(stack, self.stacks.outputs(stack))
            with ssh_targets(Pulumi(self.stacks.root, dict(os.environ)), stack, hosts, self.ssh_key) as targets:
                for host, target in zip(hosts, targets, strict=True):
                    proc = subprocess.run(target.argv(agent_command(host.root, host.project, ["record"])),
                                          input=json.dumps(record.to_json()), capture_output=True, text=True,
                                          timeout=60, check=False)
                    if proc.returncode != 0:
                        self.say(f"warning: {host.name}: the run's record is not in its audit: "
                                 f"{proc.stderr.strip()[-200:]}")
        except (plan.PlanError, CliError, StackError, OSError, subprocess.TimeoutExpired) as exc:
            self.say(f"warning: the run's record is not in the hosts' audit: {exc}")

    def diagnostics(self, stack: str, outputs: Mapping[str, Any], run: str) -> str:
        """A debug bundle of the bad color on each of its hosts (named after the run), then their reports and
        bundles into collect_dir/<stack>/<host>; the color stays up."""
        try:
            hosts = plan.hosts_of(stack, outputs)
            dest = self.collect_dir / stack
            with ssh_targets(Pulumi(self.stacks.root, dict(os.environ)), stack, hosts, self.ssh_key) as targets:
                for host, target in zip(hosts, targets, strict=True):
                    subprocess.run(target.argv(diagnose_command(host.root, host.project, run)), capture_output=True,
                                   timeout=300, check=False)
                errors = [e for h, t in zip(hosts, targets, strict=True) if (e := collect_from(t, h, dest / h.name))]
        except (plan.PlanError, CliError, OSError) as exc:
            return f"diagnostics not collected: {exc}"
        return f"diagnostics in {dest}" + (f" ({'; '.join(errors)})" if errors else "")
