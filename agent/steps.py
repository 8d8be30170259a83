"""The steps of an activation on one host (standard library only): wait for the engine, pull, the release's external
networks, its migrations (agent.migration), switch `run`, `up --wait`, validate, each failing only with StepFailed.

Every process goes through the `runner` (agent.process.Runner); a command that exits non-zero, hangs past its
timeout or cannot be started fails its step the same way, so agent.rollout has one restore path for all of them.
Explaining a failure (which services, their last log lines, a debug bundle) is best effort and never fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import compose as cc
from agent import metrics, migration, pulls
from agent.compose_output import (
    compose_error,
    engine_settling,
    parse_ps,
    tail,
    unhealthy_services,
)
from agent.process import Runner, run_process
from agent.remote import validate_argv
from agent.signing import COSIGN
from agent.store import Store
from agent.validate.report import read_json, read_traces

AGENT_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Options:
    wait_timeout: int = 180
    pull_timeout: int = 600  # seconds `compose pull` may take before the step fails
    migrate_timeout: int = 300  # seconds each one-shot migration may take before the step fails
    validate: bool = True
    validate_deadline: int = 120
    validate_args: tuple[str, ...] = ()
    keep: int = 5
    docker_deadline: int = 120
    engine_settle_s: float = 3.0  # after the engine came back mid-`up`, before `up` runs again
    log_lines: int = 30
    lock_timeout: float = 300.0
    confirm_within: int = 0  # a pool host's apply: provisional until confirmed within this many seconds (agent.pool)
    cosign: str = COSIGN  # the pinned verifier of image signatures (agent.signing)


class StepFailed(Exception):
    def __init__(self, stage: str, reason: str, services: Sequence[str] = ()) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage, self.reason, self.services = stage, reason, tuple(services)


def write_diagnostics_bundle(project: str, out: Path, services: list[str] | None, lines: int,
                             secrets: Mapping[str, str]) -> Path:
    """The debug bundle of a failed release (agent.diagnose, imported only when a release failed); `secrets`: the
    project's secrets file, every key and value of which the bundle masks."""
    from agent.diagnose import collect as diagnose  # noqa: PLC0415 - optional at import time, needed only on failure

    return diagnose.write_bundle(project, out, services, lines, secrets)


@dataclass
class Steps:
    """One project's activation steps. Every process goes through `runner`; `clock`, `sleep`, `now` and `diagnose`
    are seams too, so tests drive each step without a process, a socket or a wait."""

    store: Store
    opts: Options
    log: Callable[[str], None]
    job: str = "manual"
    runner: Runner = run_process
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], float] = time.time  # wall clock: deadlines that outlive the process (provisional.json)
    diagnose: Callable[[str, Path, list[str] | None, int, Mapping[str, str]], Path] = write_diagnostics_bundle
    timings: dict[str, float] = field(default_factory=dict)  # the last forward activation's steps (seconds)

    @property
    def metrics(self) -> metrics.Metrics:
        """The project's metrics (agent.metrics): recording never fails a step."""
        return metrics.Metrics(self.store.root, self.store.project, self.log)

    # plumbing ---------------------------------------------------------------------------------------------
    def attempt(self, argv: list[str], timeout: float, stage: str, what: str, *, env: dict[str, str] | None = None,
                cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run one command of `stage`. A command that hangs past `timeout` or cannot be started fails the stage
        exactly like a non-zero exit would (StepFailed), so every failure takes the same restore path."""
        try:
            return self.runner(argv, timeout=timeout, env=env, cwd=cwd)
        except subprocess.TimeoutExpired as exc:
            raise StepFailed(stage, f"{what} did not return within {timeout:.0f}s") from exc
        except OSError as exc:
            raise StepFailed(stage, f"cannot run {what}: {exc}") from exc

    def audit_into(self, lines: list[str], event: str, **fields: Any) -> None:
        """Append an audit entry; when the disk refuses it, say so in the log and in the message `lines`."""
        try:
            self.store.audit(event, **fields)
        except OSError as exc:
            note = f"audit log: {event} not recorded: {exc}"
            self.log(note)
            lines.append(note)

    def step(self, argv: list[str], timeout: float, stage: str) -> subprocess.CompletedProcess[str]:
        """A compose command that must exit 0."""
        proc = self.attempt(argv, timeout, stage, f"compose {stage}")
        if proc.returncode != 0:
            raise StepFailed(stage, f"`docker compose {stage}` exited {proc.returncode}: {compose_error(proc.stderr)}")
        return proc

    def project_for(self, release_id: str, directory: Path | None = None) -> cc.ComposeProject:
        manifest = self.store.release_manifest(release_id)
        files = tuple(manifest.get("compose_files", ["docker-compose.yml"]))
        return cc.ComposeProject(self.store.project, directory or self.store.release_dir(release_id), files)

    def wait_for_docker(self) -> None:
        deadline = self.clock() + self.opts.docker_deadline
        last = ""
        announced = False
        while self.clock() < deadline:
            try:
                proc = self.attempt(cc.docker_info(), 15, "docker", "docker info")
            except StepFailed as exc:
                last = exc.reason
            else:
                if proc.returncode == 0:
                    return
                last = tail(proc.stderr, 2)
            if not announced:
                self.log(f"docker engine not answering ({last}); waiting up to {self.opts.docker_deadline}s")
                announced = True
            self.sleep(1)
        raise StepFailed("docker", f"docker engine did not answer within {self.opts.docker_deadline}s: {last}")

    # steps ------------------------------------------------------------------------------------------------
    def validate(self, release_id: str) -> None:
        report = self.store.base / "reports" / f"{release_id}-{self.job}.json"
        argv = validate_argv(sys.executable, str(self.store.release_dir(release_id) / "resolved.json"), str(report),
                             deadline=self.opts.validate_deadline,
                             labels={"release": release_id, "project": self.store.project},
                             extra=self.opts.validate_args,
                             secrets_file=str(self.store.secrets_file))
        proc = self.attempt(argv, self.opts.validate_deadline + 60, "validate", "the validator", cwd=AGENT_DIR)
        for line in proc.stdout.strip().splitlines():
            self.log(f"  {line}")
        self.count_traces(report)
        if proc.returncode != 0:
            services: list[str] = []
            try:
                services = read_json(report).failed_services
            except (OSError, ValueError):  # no report, or a half-written one: the step fails, naming no service
                services = []
            reason = f"validation failed (report {report})" if proc.returncode == 1 else tail(proc.stderr, 5)
            raise StepFailed("validate", reason, services)

    def count_traces(self, report: Path) -> None:
        """A report with a `traces` section (the validator's trace phase on) adds to the trace probe counters."""
        agents = read_traces(report)
        if agents:
            self.metrics.update(lambda state: metrics.count_traces(state, agents))

    def activate(self, release_id: str, *, restoring: bool = False, migrate: bool = False) -> None:
        """Make `release_id` the running release: pull, networks, (migrate,) switch, up --wait, validate. Raises
        StepFailed. `restoring`: bringing back the previous release, which rides out an engine still settling.
        `migrate`: moving forward to the release (an apply), so its migrations run; a restore or rollback runs none.
        A forward activation's step durations are left in `timings` (what it reached)."""
        timings = {} if restoring else self.timings
        timings.clear()
        self.wait_for_docker()
        t0 = self.clock()
        try:
            self.pull(release_id, settle=restoring)
        finally:
            timings["pull"] = self.clock() - t0
        self.log(f"pulled images of {release_id} ({timings['pull']:.1f}s)")
        self.ensure_networks(release_id)
        if migrate:
            self.migrate(release_id)
        try:
            self.store.point_run_at(release_id)
        except OSError as exc:
            raise StepFailed("switch", f"cannot point run at {release_id}: {exc}") from exc
        live = self.project_for(release_id, self.store.run_link)
        t0 = self.clock()
        try:
            self.up(live, settle=restoring)
        except StepFailed as exc:
            timings["up"] = self.clock() - t0
            raise StepFailed("up", exc.reason, self.failing_services(live)) from exc
        timings["up"] = self.clock() - t0
        self.log(f"compose up --wait: all services healthy ({timings['up']:.1f}s)")
        if self.opts.validate:
            t0 = self.clock()
            try:
                self.validate(release_id)
            finally:
                timings["validate"] = self.clock() - t0
            self.log(f"validation passed ({timings['validate']:.1f}s)")

    def pull(self, release_id: str, *, settle: bool = False) -> None:
        """The `pull` step, each image timed (agent.pulls); with `settle` (a restore), a pull that met the engine
        restarting runs once more when it answers, as `up` does."""
        pulls.pull(self, release_id, settle=settle)

    def resolved(self, release_id: str, stage: str) -> dict[str, Any]:
        """A release's resolved compose config (resolved.json, written when it was installed)."""
        path = self.store.release_dir(release_id) / "resolved.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise StepFailed(stage, f"cannot read {path}: {exc}") from exc
        return data if isinstance(data, dict) else {}

    def ensure_networks(self, release_id: str) -> None:
        """Create each network the release declares external that the engine does not have yet (compose refuses to
        start without it). Another project creating it at the same moment is no failure."""
        for name in migration.external_networks(self.resolved(release_id, "network")):
            if self.attempt(cc.network_inspect(name), 30, "network", "docker network inspect").returncode == 0:
                continue
            proc = self.attempt(cc.network_create(name), 60, "network", "docker network create")
            if proc.returncode != 0:
                if self.attempt(cc.network_inspect(name), 30, "network", "docker network inspect").returncode != 0:
                    raise StepFailed("network", f"cannot create docker network {name} (external in the release's "
                                     f"compose config): {tail(proc.stderr, 3)}")
                continue
            self.log(f"created docker network {name} (external in the release's compose config)")
            self.audit_into([], "network.created", network=name, release=release_id, job=self.job)

    def migrate(self, release_id: str) -> None:
        """Run the release's one-shot migrations (agent.migration) with its own compose settings, before any of its
        containers start. A migration that exits non-zero, outlives --migrate-timeout or cannot start fails the
        `migrate` step, naming its service; each one is audited (`migrate.succeeded` / `migrate.failed`)."""
        current = self.store.pointer("current")
        if current == release_id:
            return
        before: dict[str, Any] | None = None
        if current is not None:
            try:
                before = self.resolved(current, "migrate")
            except StepFailed as exc:  # unknown images before: every migration runs (each is safe to repeat)
                self.log(f"the current release's config is unreadable ({exc.reason}); running every migration")
                before = {}
        try:
            planned = migration.migrations(self.resolved(release_id, "migrate"), before)
        except ValueError as exc:
            raise StepFailed("migrate", str(exc)) from exc
        for m in planned:
            self.run_migration(release_id, m)

    def run_migration(self, release_id: str, m: migration.Migration) -> None:
        name = migration.container_name(self.store.project, m.service, self.job)
        argv = cc.run_once(self.project_for(release_id), m.service, m.args, name=name)
        fields = {"release": release_id, "service": m.service, "command": m.command, "image": m.image,
                  "previous_image": m.previous, "job": self.job}
        self.log(f"migration of {m.service}: `{m.command}` with {m.image} (before: {m.previous or 'none'})")
        t0 = self.clock()
        try:
            proc = self.attempt(argv, self.opts.migrate_timeout, "migrate", f"the migration of {m.service}")
        except StepFailed as exc:
            try:  # its CLI was killed, the container would run on: stopped, `--rm` removes it
                self.attempt(cc.container_stop(name, 10), 60, "migrate", "docker container stop")
            except StepFailed as stop:
                self.log(f"container {name} not stopped: {stop.reason}")
            self.audit_into([], "migrate.failed", **fields, reason=exc.reason)
            raise StepFailed("migrate", exc.reason, [m.service]) from exc
        for line in (proc.stdout + proc.stderr).strip().splitlines()[-200:]:
            self.log(f"  {m.service}: {line}")
        seconds = round(self.clock() - t0, 1)
        if proc.returncode != 0:
            reason = f"the migration of {m.service} (`{m.command}`) exited {proc.returncode}: " \
                     f"{compose_error(proc.stderr, 3)}"
            self.audit_into([], "migrate.failed", **fields, reason=reason, seconds=seconds)
            raise StepFailed("migrate", reason, [m.service])
        self.audit_into([], "migrate.succeeded", **fields, seconds=seconds)
        self.log(f"migration of {m.service} done ({seconds:.1f}s)")

    def settled_step(self, argv: list[str], timeout: float, stage: str, *, settle: bool) -> None:
        """`step`, and with `settle` (a restore) once more if it met the engine down or still settling after a
        restart: the command is idempotent and a restore must not fail on that. A new release does fail on it, and
        is rolled back."""
        try:
            self.step(argv, timeout, stage)
        except StepFailed as exc:
            if not (settle and engine_settling(exc.reason)):
                raise
            self.log(f"compose {stage} met an engine that is restarting ({exc.reason.splitlines()[-1]}); "
                     f"{stage} again once it answers")
            self.wait_for_docker()
            self.sleep(self.opts.engine_settle_s)
            self.step(argv, timeout, stage)

    def up(self, live: cc.ComposeProject, *, settle: bool) -> None:
        """`up -d --wait`, ridden through an engine settling after a restart when `settle` (settled_step)."""
        self.settled_step(cc.up(live, self.opts.wait_timeout), self.opts.wait_timeout + 120, "up", settle=settle)

    def failing_services(self, project: cc.ComposeProject) -> list[str]:
        try:
            proc = self.runner(cc.ps_json(project), timeout=30)
            return unhealthy_services(parse_ps(proc.stdout)) if proc.returncode == 0 else []
        except (subprocess.TimeoutExpired, OSError, ValueError):
            return []

    def service_logs(self, release_id: str, services: Sequence[str]) -> str:
        """The failing services' last log lines, the project's secret values masked (a service that fails may print
        its environment)."""
        if not services:
            return ""
        argv = cc.logs_tail(self.project_for(release_id, self.store.run_link), services, self.opts.log_lines)
        try:
            proc = self.runner(argv, timeout=30)
        except subprocess.TimeoutExpired:
            return "(logs timed out)"
        except OSError as exc:
            return f"(logs unavailable: {exc})"
        return self.store.masker()((proc.stdout + proc.stderr).strip())

    def write_diagnostics(self, release_id: str, services: Sequence[str]) -> str:
        out = self.store.base / "diagnostics" / f"{release_id}-{self.job}"
        try:
            return str(self.diagnose(self.store.project, out, list(services) or None, self.opts.log_lines,
                                     self.store.secrets()))
        except Exception as exc:  # a broken debug bundle must never block the rollback
            return f"(no debug bundle: {exc})"
