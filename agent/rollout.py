"""The release contract on one host (standard library only).

apply:    lock → write release → pull → switch `run` → `up -d --wait --remove-orphans` → validate
          → on failure: debug bundle, restore the previous release, bring it up, validate it, exit non-zero.
rollback: the same activation for a release already on the host (default: `previous`).

The steps themselves are agent.steps; this module is the state machine around them: pointers, pending.json, the
audit trail, the restore and retention. Nothing here deletes a volume; the only images removed are those of pruned
releases that no kept release pins.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from agent import compose as cc
from agent import metrics, signing
from agent import release as rel
from agent.compose_output import tail
from agent.steps import Options, StepFailed, Steps

__all__ = ["EXIT_CRITICAL", "EXIT_FAILED", "EXIT_INPUT", "EXIT_LOCK", "EXIT_OK", "Options", "Outcome", "Rollout",
           "SignaturesRefused", "StepFailed"]

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_LOCK, EXIT_CRITICAL = 0, 1, 2, 3, 4
COUNTED_FAILURES = ("apply.failed", "gate.failed", "apply.unconfirmed")
"""The failure events devtools_rollout_failures_total counts (a failed rollback is none of them)."""


class Outcome(Exception):
    """Ends a job with an exit code and a one-paragraph message for the operator (and, from a gate, its summary)."""

    def __init__(self, code: int, message: str, summary: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.summary = code, message, summary
        self.stage = "prepare"  # where an apply stopped, for devtools_rollout_failures_total{stage}


class SignaturesRefused(Outcome):
    """An image of the release failed signature verification: refused before anything changed (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(EXIT_INPUT, message)
        self.stage = "verify"


@dataclass
class Rollout(Steps):
    """One project's release state machine: install a bundle, activate it, restore the previous release when a
    step fails, record it all."""

    _started: float = field(init=False)

    def __post_init__(self) -> None:
        self._started = self.clock()

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
        if "signing" in manifest:
            problems += signing.policy_problems(manifest["signing"])
        if problems:
            raise Outcome(EXIT_INPUT, f"release refused, nothing changed: {'; '.join(problems)}")
        self.verify_signatures(release_id, images, signing.policy_from_manifest(manifest))
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

    def verify_signatures(self, release_id: str, images: dict[str, str], policy: signing.Policy | None) -> None:
        """Every image against the release's public keys before anything changes (agent.signing). Required and
        failing: SignaturesRefused; not required: the failures are logged and the release goes on."""
        if policy is None or not policy.public_keys:
            return
        started = self.clock()
        verdicts = signing.verify_images(images, policy, self.runner, self.opts.cosign)
        self.timings["verify"] = self.clock() - started
        message = signing.refusal(release_id, verdicts)
        if message is None:
            self.log(f"signatures of {release_id}: {len(verdicts)} images verified ({self.timings['verify']:.1f}s)")
        elif policy.require:
            raise SignaturesRefused(message)
        else:
            self.log(f"signatures not required, going on: {message}")

    # transactions -----------------------------------------------------------------------------------------
    def apply(self, bundle: Path) -> str:
        """The whole release contract for a new bundle. Returns the success message or raises Outcome."""
        self.metrics.update(metrics.seed)
        try:
            release_id = self.prepare(bundle)
        except Outcome as exc:
            self.metrics.update(metrics.count_attempt, partial(metrics.count_failure, stage=exc.stage),
                                self.outcome("failed"))
            raise
        return self.switch_to(release_id, action="apply")

    def outcome(self, name: str) -> Callable[[metrics.State], None]:
        """The change recording that the rollout ended `name` now (agent.metrics)."""
        return partial(metrics.set_outcome, outcome=name, unix_time=self.now())

    def record_steps(self) -> None:
        """The last apply's step durations, and its total so far (agent.metrics)."""
        seconds = {**self.timings, "total": self.clock() - self._started}
        self.metrics.update(partial(metrics.set_steps, seconds=seconds))

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
        self.store.write_pending({"release": release_id, "previous": prior, "action": action, "job": self.job,
                                  "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        self.store.audit(f"{action}.started", release=release_id, previous=prior, job=self.job)
        self.log(f"{action}: {prior or '(none)'} → {release_id}")
        try:
            self.activate(release_id, migrate=action == "apply")
        except StepFailed as failure:
            try:
                message = self.restore(release_id, prior, failure, action)
            finally:  # the activation is over either way, also when the restore failed too (exit 4)
                self.store.clear_pending()
                if action == "apply":
                    self.record_steps()
            raise Outcome(EXIT_FAILED, message) from failure
        except Outcome:
            self.store.clear_pending()
            raise
        if prior != release_id:
            self.store.set_pointer("previous", prior)
        self.store.set_pointer("current", release_id)
        provisional = self.mark_provisional(release_id, prior, action)
        self.store.clear_pending()
        elapsed = self.clock() - self._started
        self.store.audit(f"{action}.succeeded", release=release_id, previous=prior, job=self.job,
                         seconds=round(elapsed, 1), **({"confirm_within": provisional} if provisional else {}))
        if action == "apply":
            self.record_steps()
            self.metrics.update(metrics.count_attempt, self.outcome("succeeded"))
        self.prune()
        previous = self.store.pointer("previous")
        message = f"{action} of {release_id} succeeded in {elapsed:.1f}s (previous: {previous or 'none'})"
        if provisional and previous:
            message += f"; provisional: back to {previous} unless confirmed within {provisional}s"
        return message

    def mark_provisional(self, release_id: str, prior: str | None, action: str) -> int:
        """A pool host's apply (--confirm-within S) stays provisional: agent.pool returns it to `prior` unless it
        is confirmed within S seconds. Any other activation ends an earlier provisional state. Returns S or 0."""
        seconds = self.opts.confirm_within if action == "apply" and prior not in (None, release_id) else 0
        if not seconds:
            self.store.clear_provisional()
            return 0
        self.store.write_provisional({"release": release_id, "previous": prior, "job": self.job, "seconds": seconds,
                                      "deadline": self.now() + seconds,
                                      "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        return seconds

    def restore(self, failed: str, prior: str | None, failure: StepFailed, action: str, event: str | None = None
                ) -> str:
        """Keep what explains the failure (log lines, debug bundle), bring `prior` back, then record the failure
        (`event`, default `<action>.failed`). Returns the operator's message. Audit entries are written after the
        restore and never stop it: a disk failing at that moment must not leave the failed release running."""
        event = event or f"{action}.failed"
        self.log(f"{action} of {failed} failed at {failure.stage}: {failure.reason}")
        ended = "failed"
        try:
            message = self._restore(failed, prior, failure, action, event)
            ended = "rolled_back" if prior not in (None, failed) else "failed"
            return message
        finally:
            if event in COUNTED_FAILURES:  # a gate's or a pool's failure: its apply was counted when it ended
                attempt = (metrics.count_attempt,) if event == "apply.failed" else ()
                self.metrics.update(*attempt, partial(metrics.count_failure, stage=failure.stage),
                                    self.outcome(ended))

    def _restore(self, failed: str, prior: str | None, failure: StepFailed, action: str, event: str) -> str:
        logs = self.service_logs(failed, failure.services) if self.store.run_target() == failed else ""
        bundle = self.write_diagnostics(failed, failure.services)
        lines = [f"{action} of {failed} failed at {failure.stage}: {failure.reason}"]
        if failure.services:
            lines.append(f"failing services: {', '.join(failure.services)}")
        if logs:
            lines += ["last log lines of the failing services:", logs]
        lines.append(f"debug bundle: {bundle}")
        failed_event = {"release": failed, "previous": prior, "job": self.job, "stage": failure.stage,
                        "reason": failure.reason, "services": list(failure.services), "diagnostics": bundle}
        if prior is None:
            self.audit_into(lines, event, **failed_event)
            lines.append("no previous release on this host: nothing to restore; the failed release stays for "
                         "inspection")
            return "\n".join(lines)
        if prior == failed:
            self.audit_into(lines, event, **failed_event)
            lines.append(f"{failed} was already the current release; it stays current")
            return "\n".join(lines)
        self.log(f"restoring previous release {prior}")
        try:
            self.activate(prior, restoring=True)
        except StepFailed as second:
            self.audit_into(lines, event, **failed_event)
            self.audit_into(lines, "rollback.failed", release=prior, failed=failed, job=self.job, stage=second.stage,
                            reason=second.reason, services=list(second.services))
            lines.append(f"CRITICAL: restoring {prior} failed too at {second.stage}: {second.reason}")
            raise Outcome(EXIT_CRITICAL, "\n".join(lines)) from second
        self.audit_into(lines, event, **failed_event)
        self.audit_into(lines, "rollback.succeeded", release=prior, failed=failed, job=self.job)
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
