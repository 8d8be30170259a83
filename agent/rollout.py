"""The release contract on one host (standard library only).

apply:    lock → write release → pull → switch `run` → `up -d --wait --remove-orphans` → validate
          → on failure: debug bundle, restore the previous release, bring it up, validate it, exit non-zero.
rollback: the same activation for a release already on the host (default: `previous`).

Nothing here deletes a volume; the only images removed are those of pruned releases that no kept release pins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent import compose as cc
from agent import release as rel
from agent.compose_output import (
    compose_error,
    engine_settling,
    failed_report_services,
    parse_ps,
    tail,
    unhealthy_services,
)
from agent.process import Runner, run_process
from agent.remote import validate_argv
from agent.store import Store

AGENT_DIR = Path(__file__).resolve().parent.parent

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_LOCK, EXIT_CRITICAL = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class Options:
    wait_timeout: int = 180
    validate: bool = True
    validate_deadline: int = 120
    validate_args: tuple[str, ...] = ()
    keep: int = 5
    docker_deadline: int = 120
    engine_settle_s: float = 3.0  # after the engine came back mid-`up`, before `up` runs again
    log_lines: int = 30
    lock_timeout: float = 300.0


class StepFailed(Exception):
    def __init__(self, stage: str, reason: str, services: Sequence[str] = ()) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage, self.reason, self.services = stage, reason, tuple(services)


class Outcome(Exception):
    """Ends a job with an exit code and a one-paragraph message for the operator."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def write_diagnostics_bundle(project: str, out: Path, services: list[str] | None, lines: int) -> Path:
    """The debug bundle of a failed release (agent.diagnose, imported only when a release failed)."""
    from agent.diagnose import collect as diagnose  # noqa: PLC0415 - optional at import time, needed only on failure

    return diagnose.write_bundle(project, out, services, lines)


@dataclass
class Rollout:
    """One project's release state machine. Every process it starts goes through `runner`; `clock`, `sleep` and
    `diagnose` are seams too, so tests drive each step without a process, a socket or a wait."""

    store: Store
    opts: Options
    log: Callable[[str], None]
    job: str = "manual"
    runner: Runner = run_process
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    diagnose: Callable[[str, Path, list[str] | None, int], Path] = write_diagnostics_bundle
    _started: float = field(init=False)

    def __post_init__(self) -> None:
        self._started = self.clock()

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
    def prepare(self, bundle: Path) -> str:
        """Check and install a bundle as releases/<id>; returns the id. Bad input raises Outcome(EXIT_INPUT)."""
        manifest_path = bundle / "release.json"
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise Outcome(EXIT_INPUT, f"cannot read {manifest_path}: {exc}") from exc
        release_id = str(manifest.get("id", ""))
        images = dict(manifest.get("images", {}))
        extra = {str(k): str(v) for k, v in dict(manifest.get("env", {})).items()}
        problems = rel.check_release(release_id, images, extra)
        for name in manifest.get("compose_files", ["docker-compose.yml"]):
            if not (bundle / name).is_file():
                problems.append(f"compose_files: {name} is not in the bundle {bundle}")
        if problems:
            raise Outcome(EXIT_INPUT, f"release refused, nothing changed: {'; '.join(problems)}")
        extra.setdefault("SECRETS_ENV_FILE", str(self.store.secrets_file))
        env = rel.render_release_env(release_id, images, extra)
        try:
            target = self.store.install_release(bundle, release_id, {"release.env": env})
        except ValueError as exc:
            raise Outcome(EXIT_INPUT, str(exc)) from exc
        # The validator reads ports and labels from the resolved config. Compose would copy the host's secrets
        # env file into it, so resolve with an empty one: resolved.json never holds a secret.
        try:
            proc = self.attempt(cc.config_json(self.project_for(release_id)), 60, "config", "compose config",
                                env={**os.environ, "SECRETS_ENV_FILE": "/dev/null"})
        except StepFailed as exc:
            raise Outcome(EXIT_INPUT, f"compose could not resolve release {release_id}: {exc.reason}") from exc
        if proc.returncode != 0:
            raise Outcome(EXIT_INPUT, f"compose refused release {release_id}: {tail(proc.stderr, 5)}")
        (target / "resolved.json").write_text(proc.stdout)
        self.log(f"release {release_id} written to {target} ({len(images)} pinned images)")
        return release_id

    def validate(self, release_id: str) -> None:
        report = self.store.base / "reports" / f"{release_id}-{self.job}.json"
        argv = validate_argv(sys.executable, str(self.store.release_dir(release_id) / "resolved.json"), str(report),
                             deadline=self.opts.validate_deadline,
                             labels={"release": release_id, "project": self.store.project},
                             extra=self.opts.validate_args)
        proc = self.attempt(argv, self.opts.validate_deadline + 60, "validate", "the validator", cwd=AGENT_DIR)
        for line in proc.stdout.strip().splitlines():
            self.log(f"  {line}")
        if proc.returncode != 0:
            services: list[str] = []
            try:
                services = failed_report_services(json.loads(report.read_text())) if report.exists() else []
            except (OSError, ValueError):  # a half-written report still fails the step, naming no service
                services = []
            reason = f"validation failed (report {report})" if proc.returncode == 1 else tail(proc.stderr, 5)
            raise StepFailed("validate", reason, services)

    def activate(self, release_id: str, *, restoring: bool = False) -> None:
        """Make `release_id` the running release: pull, switch, up --wait, validate. Raises StepFailed.
        `restoring`: bringing back the previous release, which rides out an engine still settling."""
        self.wait_for_docker()
        t0 = self.clock()
        self.step(cc.pull(self.project_for(release_id)), 600, "pull")
        self.log(f"pulled images of {release_id} ({self.clock() - t0:.1f}s)")
        try:
            self.store.point_run_at(release_id)
        except OSError as exc:
            raise StepFailed("switch", f"cannot point run at {release_id}: {exc}") from exc
        live = self.project_for(release_id, self.store.run_link)
        t0 = self.clock()
        try:
            self.up(live, settle=restoring)
        except StepFailed as exc:
            raise StepFailed("up", exc.reason, self.failing_services(live)) from exc
        self.log(f"compose up --wait: all services healthy ({self.clock() - t0:.1f}s)")
        if self.opts.validate:
            t0 = self.clock()
            self.validate(release_id)
            self.log(f"validation passed ({self.clock() - t0:.1f}s)")

    def up(self, live: cc.ComposeProject, *, settle: bool) -> None:
        """`up -d --wait`. With `settle`, once more if the engine was down or still settling after a restart (up is
        idempotent): a restore must not fail on that. A new release does fail on it, and is rolled back."""
        argv, timeout = cc.up(live, self.opts.wait_timeout), self.opts.wait_timeout + 120
        try:
            self.step(argv, timeout, "up")
        except StepFailed as exc:
            if not (settle and engine_settling(exc.reason)):
                raise
            self.log(f"compose up met an engine that is restarting ({exc.reason.splitlines()[-1]}); "
                     "up again once it answers")
            self.wait_for_docker()
            self.sleep(self.opts.engine_settle_s)
            self.step(argv, timeout, "up")

    def failing_services(self, project: cc.ComposeProject) -> list[str]:
        try:
            proc = self.runner(cc.ps_json(project), timeout=30)
            return unhealthy_services(parse_ps(proc.stdout)) if proc.returncode == 0 else []
        except (subprocess.TimeoutExpired, OSError, ValueError):
            return []

    def service_logs(self, release_id: str, services: Sequence[str]) -> str:
        if not services:
            return ""
        argv = cc.logs_tail(self.project_for(release_id, self.store.run_link), services, self.opts.log_lines)
        try:
            proc = self.runner(argv, timeout=30)
        except subprocess.TimeoutExpired:
            return "(logs timed out)"
        except OSError as exc:
            return f"(logs unavailable: {exc})"
        return (proc.stdout + proc.stderr).strip()

    def write_diagnostics(self, release_id: str, services: Sequence[str]) -> str:
        out = self.store.base / "diagnostics" / f"{release_id}-{self.job}"
        try:
            return str(self.diagnose(self.store.project, out, list(services) or None, self.opts.log_lines))
        except Exception as exc:  # a broken debug bundle must never block the rollback
            return f"(no debug bundle: {exc})"

    # transactions -----------------------------------------------------------------------------------------
    def apply(self, bundle: Path) -> str:
        """The whole release contract for a new bundle. Returns the success message or raises Outcome."""
        release_id = self.prepare(bundle)
        return self.switch_to(release_id, action="apply")

    def rollback(self, target: str | None) -> str:
        release_id = target or self.store.pointer("previous")
        if release_id is None:
            raise Outcome(EXIT_INPUT, f"no previous release recorded for project {self.store.project}")
        if not self.store.release_dir(release_id).is_dir():
            kept = ", ".join(self.store.kept_releases()) or "none"
            raise Outcome(EXIT_INPUT, f"release {release_id} is not on this host (kept: {kept})")
        return self.switch_to(release_id, action="rollback")

    def switch_to(self, release_id: str, action: str) -> str:
        prior = self.store.pointer("current")
        stale = self.store.read_pending()
        if stale:
            self.store.audit("recover.stale_pending", release=stale.get("release"), stale=stale, job=self.job)
            self.log(f"an earlier {stale.get('action')} of {stale.get('release')} did not finish; "
                     f"{prior or 'nothing'} is the recorded current release")
        self.store.write_pending({"release": release_id, "previous": prior, "action": action, "job": self.job,
                                  "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        self.store.audit(f"{action}.started", release=release_id, previous=prior, job=self.job)
        self.log(f"{action}: {prior or '(none)'} → {release_id}")
        try:
            self.activate(release_id)
        except StepFailed as failure:
            try:
                message = self.restore(release_id, prior, failure, action)
            finally:  # the activation is over either way, also when the restore failed too (exit 4)
                self.store.clear_pending()
            raise Outcome(EXIT_FAILED, message) from failure
        except Outcome:
            self.store.clear_pending()
            raise
        if prior != release_id:
            self.store.set_pointer("previous", prior)
        self.store.set_pointer("current", release_id)
        self.store.clear_pending()
        elapsed = self.clock() - self._started
        self.store.audit(f"{action}.succeeded", release=release_id, previous=prior, job=self.job,
                         seconds=round(elapsed, 1))
        self.prune()
        previous = self.store.pointer("previous")
        return f"{action} of {release_id} succeeded in {elapsed:.1f}s (previous: {previous or 'none'})"

    def restore(self, failed: str, prior: str | None, failure: StepFailed, action: str) -> str:
        """Record the failure, keep a debug bundle, bring `prior` back. Returns the operator's message."""
        self.log(f"{action} of {failed} failed at {failure.stage}: {failure.reason}")
        logs = self.service_logs(failed, failure.services) if self.store.run_target() == failed else ""
        bundle = self.write_diagnostics(failed, failure.services)
        self.store.audit(f"{action}.failed", release=failed, previous=prior, job=self.job, stage=failure.stage,
                         reason=failure.reason, services=list(failure.services), diagnostics=bundle)
        lines = [f"{action} of {failed} failed at {failure.stage}: {failure.reason}"]
        if failure.services:
            lines.append(f"failing services: {', '.join(failure.services)}")
        if logs:
            lines += ["last log lines of the failing services:", logs]
        lines.append(f"debug bundle: {bundle}")
        if prior is None:
            lines.append("no previous release on this host: nothing to restore; the failed release stays for "
                         "inspection")
            return "\n".join(lines)
        if prior == failed:
            lines.append(f"{failed} was already the current release; it stays current")
            return "\n".join(lines)
        self.log(f"restoring previous release {prior}")
        try:
            self.activate(prior, restoring=True)
        except StepFailed as second:
            self.store.audit("rollback.failed", release=prior, failed=failed, job=self.job, stage=second.stage,
                             reason=second.reason, services=list(second.services))
            lines.append(f"CRITICAL: restoring {prior} failed too at {second.stage}: {second.reason}")
            raise Outcome(EXIT_CRITICAL, "\n".join(lines)) from second
        self.store.audit("rollback.succeeded", release=prior, failed=failed, job=self.job)
        lines.append(f"previous release {prior} restored and serving")
        return "\n".join(lines)

    def prune(self) -> None:
        """Drop releases beyond `keep` and the images only they pinned (never forced, never volumes)."""
        before = {rid: self.store.release_manifest(rid).get("images", {}) for rid in self.store.kept_releases()}
        dropped = self.store.prune(self.opts.keep)
        if not dropped:
            return
        still_pinned = {ref for rid, images in before.items() if rid not in dropped for ref in images.values()}
        for rid in dropped:
            for ref in sorted(set(before[rid].values()) - still_pinned):
                try:  # a non-zero exit (still in use) keeps the image too, silently: never forced
                    self.attempt(cc.image_remove(ref), 60, "prune", "docker image rm")
                except StepFailed as exc:
                    self.log(f"image {ref} kept: {exc.reason}")
        self.store.audit("prune", releases=dropped, job=self.job)
        self.log(f"pruned releases {', '.join(dropped)} (keeping {self.opts.keep})")
