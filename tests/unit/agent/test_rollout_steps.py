"""The activation's steps on one host against a scripted runner (no process, no socket, no wait): the good path,
and what each step failing (non-zero exit, timeout, a program that cannot start) does to the pointers, the `run`
link, pending.json, the audit trail and the operator's message. The restore itself: test_rollout_restore.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from agent.rollout import EXIT_FAILED, EXIT_INPUT, Options, Outcome
from agent.store import Store
from tests.unit.agent.rollout_fake import UNHEALTHY_PS, Reply, bundle, exited, failing, rig, serving, state, timeout


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """fsync is durability against a power cut, which no test here exercises; on a busy disk it is most of their
    time (the fast tier's budget)."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def test_a_first_apply_runs_every_step_in_order_and_records_it(tmp_path: Path) -> None:
    """The contract's order: resolve the config, wait for the engine, pull, switch `run`, up --wait, validate.
    Risk: a step skipped or reordered (e.g. up before the switch) runs the wrong release's files."""
    r = rig(tmp_path)
    assert r.apply("r1") == "apply of r1 succeeded in 0.0s (previous: none)"
    assert r.host.calls == [("config", "r1"), ("info", None), ("pull", "r1"), ("up", "r1"), ("validate", "r1")]
    assert state(r) == ("r1", None, "r1", None)
    assert r.events() == ["apply.started", "apply.succeeded"]
    assert (r.store.release_dir("r1") / "resolved.json").read_text() == '{"services": {}}\n'


def test_each_step_runs_under_its_own_bound(tmp_path: Path) -> None:
    """`--pull-timeout`, `--wait-timeout` and `--validate-deadline` bound their steps (up and the validator get
    their own wait plus a margin). Risk: a step without a bound hangs a job, and the lock, forever."""
    r = rig(tmp_path)
    r.apply("r1", Options(pull_timeout=7, wait_timeout=40, validate_deadline=20))
    bounds = dict(zip(r.host.calls, r.host.timeouts, strict=True))
    assert (bounds[("pull", "r1")], bounds[("up", "r1")], bounds[("validate", "r1")]) == (7, 160, 80)


def test_compose_config_resolves_with_an_empty_secrets_file(tmp_path: Path) -> None:
    """resolved.json is read by the validator: rendered with the real secrets file it would hold every secret."""
    r = rig(tmp_path)
    r.apply("r1")
    env = r.host.envs[r.host.calls.index(("config", "r1"))]
    assert env is not None and env["SECRETS_ENV_FILE"] == "/dev/null"
    assert f"SECRETS_ENV_FILE={r.store.secrets_file}" in (r.store.release_dir("r1") / "release.env").read_text()


def test_a_good_apply_over_a_running_release_makes_it_previous(tmp_path: Path) -> None:
    """After a success the release that ran before is `previous`: the one a rollback brings back."""
    r = serving(tmp_path, "r1")
    assert r.apply("r2") == "apply of r2 succeeded in 0.0s (previous: r1)"
    assert state(r) == ("r2", "r1", "r2", None)
    assert r.new_events() == ["apply.started", "apply.succeeded"]
    assert r.logged[-3:] == ["pulled images of r2 (0.0s)", "compose up --wait: all services healthy (0.0s)",
                             "validation passed (0.0s)"]


CONFIG_FAILURES: dict[str, tuple[Reply, str]] = {
    "exit": (exited(1, stderr="service web: image must be set"),
             "compose refused release r2: service web: image must be set"),
    "timeout": (timeout(seconds=60), "compose could not resolve release r2: compose config did not return within 60s"),
    "oserror": (FileNotFoundError(2, "No such file or directory"),
                "compose could not resolve release r2: cannot run compose config: [Errno 2] No such file or directory"),
}


@pytest.mark.parametrize("case", CONFIG_FAILURES, ids=str)
def test_a_release_compose_cannot_resolve_changes_nothing(tmp_path: Path, case: str) -> None:
    """compose refusing the bundle (or not answering) is refused input: exit 2 before any container, pointer or
    audit entry changes. Risk: a hung or missing compose escaping as a crash (exit 4) for an unchanged host."""
    reply, message = CONFIG_FAILURES[case]
    r = serving(tmp_path, "r1")
    r.host.on("config", "r2", reply)
    assert failing(r, "r2", EXIT_INPUT) == message
    assert r.host.calls == [("config", "r2")]
    assert state(r) == ("r1", None, "r1", None)
    assert r.new_events() == []


REPORT = "{base}/reports/r2-j1.json"
NEW_RELEASE_FAILURES: dict[str, tuple[str, Reply, str, str]] = {
    # id: (step, reply, stage, reason)
    "pull-exit": ("pull", exited(1, stderr="manifest unknown"), "pull",
                  "`docker compose pull` exited 1: manifest unknown"),
    "up-exit": ("up", exited(1, stderr=" Container green-api-1  Waiting\ncontainer green-api-1 is unhealthy"), "up",
                "`docker compose up` exited 1: container green-api-1 is unhealthy"),
    "validate-exit-1": ("validate", 1, "validate", f"validation failed (report {REPORT})"),
    "validate-exit-2": ("validate", exited(2, stderr="validate: no such file"), "validate", "validate: no such file"),
    "pull-timeout": ("pull", timeout(seconds=600), "pull", "compose pull did not return within 600s"),
    "pull-oserror": ("pull", OSError(24, "Too many open files"), "pull",
                     "cannot run compose pull: [Errno 24] Too many open files"),
    "up-timeout": ("up", timeout(seconds=300), "up", "compose up did not return within 300s"),
    "up-oserror": ("up", OSError(12, "Cannot allocate memory"), "up",
                   "cannot run compose up: [Errno 12] Cannot allocate memory"),
    "validate-timeout": ("validate", timeout(seconds=180), "validate", "the validator did not return within 180s"),
    "validate-oserror": ("validate", PermissionError(13, "Permission denied"), "validate",
                         "cannot run the validator: [Errno 13] Permission denied"),
}


@pytest.mark.parametrize("case", NEW_RELEASE_FAILURES, ids=str)
def test_a_new_release_failing_at_a_step_brings_the_previous_one_back(tmp_path: Path, case: str) -> None:
    """Any failed step of a new release ends with exit 1, the previous release re-activated (pulled, switched,
    up, validated), the pointers unchanged, pending.json gone and the failure audited. Risk: a step failure that
    escapes this path leaves the host on a half-switched or unvalidated release."""
    step, reply, stage, reason = NEW_RELEASE_FAILURES[case]
    r = serving(tmp_path, "r0", "r1")
    r.host.on(step, "r2", reply)
    message = failing(r, "r2", EXIT_FAILED)
    reason = reason.format(base=r.store.base)
    bundle_dir = r.store.base / "diagnostics" / "r2-j1"
    assert message.splitlines()[0] == f"apply of r2 failed at {stage}: {reason}"
    assert message.endswith(f"debug bundle: {bundle_dir}\nprevious release r1 restored and serving")
    assert state(r) == ("r1", "r0", "r1", None)
    assert r.new_events() == ["apply.started", "apply.failed", "rollback.succeeded"]
    failed = r.store.audit_entries()[r.seen + 1]
    assert (failed["release"], failed["previous"], failed["stage"], failed["reason"], failed["diagnostics"]) == (
        "r2", "r1", stage, reason, str(bundle_dir))
    assert r.host.calls[-4:] == [("info", None), ("pull", "r1"), ("up", "r1"), ("validate", "r1")]


def test_an_unhealthy_service_is_named_with_its_last_log_lines(tmp_path: Path) -> None:
    """When `up --wait` fails the operator reads which service and why, without logging in to the host."""
    r = serving(tmp_path, "r1")
    r.host.on("up", "r2", exited(1, stderr="container green-api-1 is unhealthy"))
    r.host.on("ps", "r2", exited(0, stdout=UNHEALTHY_PS))
    r.host.on("logs", "r2", exited(0, stdout="api-1 | boom: cannot bind :8080\n"))
    message = failing(r, "r2", EXIT_FAILED)
    assert message == "\n".join([
        "apply of r2 failed at up: `docker compose up` exited 1: container green-api-1 is unhealthy",
        "failing services: api",
        "last log lines of the failing services:",
        "api-1 | boom: cannot bind :8080",
        f"debug bundle: {r.store.base / 'diagnostics' / 'r2-j1'}",
        "previous release r1 restored and serving",
    ])
    assert r.bundles == [("r2-j1", ["api"])]
    assert r.host.calls[:6] == [("config", "r2"), ("info", None), ("pull", "r2"), ("up", "r2"), ("ps", "r2"),
                                ("logs", "r2")]
    assert r.host.argvs[5][-1] == "api"


def test_a_failed_validation_names_the_services_of_its_report(tmp_path: Path) -> None:
    """The validator's report says which service failed a check; the message and the audit entry carry it."""
    r = serving(tmp_path, "r1")
    report = r.store.base / "reports" / "r2-j1.json"

    def validator(argv: list[str]) -> subprocess.CompletedProcess[str]:
        report.write_text(json.dumps({"phases": {"health": {"checks": [{"service": "web", "passed": False},
                                                                       {"service": "api", "passed": True}]}}}))
        return exited(1, stdout="FAIL web /health 503\n")(argv)

    r.host.on("validate", "r2", validator)
    message = failing(r, "r2", EXIT_FAILED)
    assert message.splitlines()[:2] == [f"apply of r2 failed at validate: validation failed (report {report})",
                                        "failing services: web"]
    assert "  FAIL web /health 503" in r.logged
    assert r.store.audit_entries()[r.seen + 1]["services"] == ["web"]


def test_an_engine_that_never_answers_fails_the_docker_step(tmp_path: Path) -> None:
    """`docker info` is polled until the deadline (the clock moves only by the rollout's own sleeps)."""
    r = rig(tmp_path)
    r.host.on("info", None, *[exited(1, stderr="Cannot connect to the Docker daemon")] * 10)
    with pytest.raises(Outcome) as caught:
        r.apply("r1", Options(docker_deadline=3))
    message = caught.value.message
    assert caught.value.code == EXIT_FAILED
    assert message.splitlines()[0] == ("apply of r1 failed at docker: docker engine did not answer within 3s: "
                                       "Cannot connect to the Docker daemon")
    assert r.host.calls.count(("info", None)) == 3
    assert r.logged.count("docker engine not answering (Cannot connect to the Docker daemon); waiting up to 3s") == 1
    assert state(r) == (None, None, None, None)


def test_pruning_removes_releases_beyond_keep_and_only_their_images(tmp_path: Path) -> None:
    """Retention drops the oldest releases and `docker image rm` (never forced) only for images no kept release
    pins; a refused image removal is no failure."""
    r = serving(tmp_path, "r1", "r2")
    r.host.on("rm", None, exited(1, stderr="image is being used by stopped container"))
    bundle(tmp_path, "r3", services=("api",))
    r.rollout(Options(keep=2)).apply(tmp_path / "incoming" / "r3")
    assert r.store.kept_releases() == ["r2", "r3"]
    removed = [argv[-1] for argv in r.host.argvs if argv[:3] == ["docker", "image", "rm"]]
    assert removed == ["registry.example/api-r1@" + "sha256:" + "a" * 64,
                       "registry.example/web-r1@" + "sha256:" + "a" * 64]
    assert r.new_events() == ["apply.started", "apply.succeeded", "prune"]


class FullDisk(Store):
    """A store whose `run` link cannot be switched to one release (no space left for the new symlink)."""

    def point_run_at(self, release_id: str) -> None:
        if release_id == "r2":
            raise OSError(28, "No space left on device")
        super().point_run_at(release_id)


def test_a_run_link_that_cannot_be_switched_fails_the_switch_step(tmp_path: Path) -> None:
    """Switching `run` is a step like the others: its failure restores the previous release."""
    r = rig(tmp_path, FullDisk(tmp_path / "root", "green"))
    r.apply("r1")
    r.forget()
    message = failing(r, "r2", EXIT_FAILED)
    assert message.splitlines()[0] == "apply of r2 failed at switch: cannot point run at r2: [Errno 28] No space " \
                                      "left on device"
    assert state(r) == ("r1", None, "r1", None)
    assert r.new_events() == ["apply.started", "apply.failed", "rollback.succeeded"]


@pytest.mark.parametrize("reply", [timeout(seconds=30), OSError(24, "Too many open files")], ids=["timeout", "oserror"])
def test_failing_services_and_their_logs_are_best_effort(tmp_path: Path, reply: BaseException) -> None:
    """`ps` and `logs` only explain a failure: when they hang or cannot start, the restore still happens."""
    r = serving(tmp_path, "r1")
    r.host.on("up", "r2", exited(1, stderr="container green-api-1 is unhealthy"))
    r.host.on("ps", "r2", exited(0, stdout=UNHEALTHY_PS))
    r.host.on("logs", "r2", reply)
    message = failing(r, "r2", EXIT_FAILED)
    assert message.splitlines()[1:4] == ["failing services: api", "last log lines of the failing services:",
                                         "(logs timed out)" if isinstance(reply, subprocess.TimeoutExpired)
                                         else "(logs unavailable: [Errno 24] Too many open files)"]
    r.forget()
    r.host.on("up", "r3", exited(1, stderr="container green-api-1 is unhealthy"))
    r.host.on("ps", "r3", reply)
    message = failing(r, "r3", EXIT_FAILED)
    assert "failing services" not in message and message.endswith("previous release r1 restored and serving")
    assert state(r) == ("r1", None, "r1", None)


@pytest.mark.parametrize("reply", [timeout(seconds=60), OSError(24, "Too many open files")], ids=["timeout", "oserror"])
def test_an_image_removal_that_hangs_or_cannot_start_never_fails_a_good_apply(tmp_path: Path,
                                                                               reply: BaseException) -> None:
    """Pruning runs after the release is validated and recorded: an image it cannot remove stays, logged."""
    r = serving(tmp_path, "r1", "r2")
    r.host.always["rm"] = reply
    assert r.rollout(Options(keep=2)).apply(bundle(tmp_path, "r3")).startswith("apply of r3 succeeded")
    assert state(r) == ("r3", "r2", "r3", None)
    assert r.store.kept_releases() == ["r2", "r3"]
    kept = [line for line in r.logged if line.startswith("image registry.example/")]
    reason = "docker image rm did not return within 60s" if isinstance(reply, subprocess.TimeoutExpired) else \
        "cannot run docker image rm: [Errno 24] Too many open files"
    assert kept == [f"image registry.example/{s}-r1@sha256:{'a' * 64} kept: {reason}" for s in ("api", "web")]
    assert r.new_events() == ["apply.started", "apply.succeeded", "prune"]
