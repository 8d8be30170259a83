"""A data release on a scripted host: the external networks its compose config declares are created when missing,
and each service labelled `devtools.migrate` whose image changed runs its migration once, after the pull and before
anything is switched or started, with the new release's settings. A migration that fails, hangs or cannot start is a
step failure like any other: the previous release comes back and nothing of the failed one started."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent import compose as cc
from agent import hostagent, jobs, secretfile
from agent.rollout import EXIT_FAILED, Options
from agent.store import Store
from agent.validate.catalog import MIGRATE
from tests.unit.agent.rollout_fake import Reply, Rig, bundle, exited, failing, rig, state, timeout

OLD, NEW = "reg/devtools/state@sha256:" + "1" * 64, "reg/devtools/state@sha256:" + "2" * 64
RAG = "reg/devtools/rag@sha256:" + "3" * 64
NETWORK = {"data": {"name": "devtools-data", "external": True}, "default": {"name": "data_default"}}


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def config(state_image: str, *, migrate: str | None = "migrate", rag: str = RAG) -> str:
    """What `compose config --format json` prints for the data tier: a migrating service and one without."""
    labels = {MIGRATE: migrate} if migrate is not None else {}
    return json.dumps({"name": "data", "networks": NETWORK, "services": {
        "state": {"image": state_image, "labels": {"devtools.tier": "data", **labels}},
        "rag": {"image": rag, "labels": {"devtools.tier": "data"}}}})


def data_host(tmp: Path) -> Rig:
    return rig(tmp, Store(tmp / "root", "data"))


def with_config(r: Rig, release_id: str, text: str) -> Rig:
    r.host.on("config", release_id, exited(0, stdout=text))
    return r


def run_argv(r: Rig, release_id: str, job: str = "j1") -> list[str]:
    project = cc.ComposeProject("data", r.store.release_dir(release_id), ("docker-compose.yml",))
    return [*project.base(), "run", "--rm", "--no-deps", "-T", "--name", f"data-migrate-state-{job}", "state",
            "migrate"]


def test_a_first_release_creates_its_network_and_migrates_before_anything_starts(tmp_path: Path) -> None:
    """The network is missing on a new engine (inspect fails): created. The project has no release yet: the
    migration runs, with the release's own directory and release.env, under --migrate-timeout, before `up`."""
    r = with_config(data_host(tmp_path), "r1", config(OLD))
    r.host.on("net-inspect", None, exited(1, stderr="Error: No such network: devtools-data"))
    r.host.on("run", "r1", exited(0, stdout="state: migrated /data to schema 1.0.0 (was none)\n",
                                  stderr=" Network data_default  Created\n"))
    assert r.apply("r1", Options(migrate_timeout=45)).startswith("apply of r1 succeeded")
    assert r.host.calls == [("config", "r1"), ("info", None), ("pull", "r1"), ("pull", "r1"), ("net-inspect", None),
                            ("net-create", None), ("run", "r1"), ("up", "r1"), ("validate", "r1")]
    assert r.host.argvs[4:7] == [["docker", "network", "inspect", "--format", "{{.Name}}", "devtools-data"],
                                 ["docker", "network", "create", "devtools-data"], run_argv(r, "r1")]
    assert r.host.timeouts[6] == 45
    assert r.events() == ["apply.started", "network.created", "migrate.succeeded", "apply.succeeded"]
    entry = r.store.audit_entries()[2]
    assert {k: entry[k] for k in ("release", "service", "command", "image", "previous_image", "job")} == {
        "release": "r1", "service": "state", "command": "migrate", "image": OLD, "previous_image": None,
        "job": "j1"}
    assert "  state: state: migrated /data to schema 1.0.0 (was none)" in r.logged
    assert "created docker network devtools-data (external in the release's compose config)" in r.logged
    assert state(r) == ("r1", None, "r1", None)


def test_an_unchanged_image_is_not_migrated_again_and_an_existing_network_is_kept(tmp_path: Path) -> None:
    r = with_config(data_host(tmp_path), "r1", config(OLD))
    r.apply("r1")
    r.forget()
    with_config(r, "r2", config(OLD, rag="reg/devtools/rag@sha256:" + "4" * 64))
    r.apply("r2")
    assert r.host.calls == [("config", "r2"), ("info", None), ("pull", "r2"), ("pull", "r2"), ("net-inspect", None),
                            ("up", "r2"), ("validate", "r2")]
    assert r.new_events() == ["apply.started", "apply.succeeded"]


def test_a_new_image_migrates_with_the_new_release_settings(tmp_path: Path) -> None:
    r = with_config(data_host(tmp_path), "r1", config(OLD))
    r.apply("r1")
    r.forget()
    with_config(r, "r2", config(NEW))
    r.apply("r2")
    assert r.host.calls[5:7] == [("run", "r2"), ("up", "r2")]
    assert r.host.argvs[5] == run_argv(r, "r2")
    assert "--env-file" in run_argv(r, "r2") and str(r.store.release_dir("r2") / "release.env") in run_argv(r, "r2")
    assert r.new_events() == ["apply.started", "migrate.succeeded", "apply.succeeded"]
    assert r.store.audit_entries()[r.seen + 1]["previous_image"] == OLD
    assert "migration of state: `migrate` with " + NEW + " (before: " + OLD + ")" in r.logged


FAILURES: dict[str, tuple[Reply, str]] = {
    "exit": (exited(1, stderr=" Container data-state-run  Creating\nstate: BROKEN=migrate: nothing written\n"),
             "the migration of state (`migrate`) exited 1: state: BROKEN=migrate: nothing written"),
    "timeout": (timeout(seconds=300), "the migration of state did not return within 300s"),
    "oserror": (OSError(12, "Cannot allocate memory"),
                "cannot run the migration of state: [Errno 12] Cannot allocate memory"),
}


@pytest.mark.parametrize("case", FAILURES, ids=str)
def test_a_failing_migration_restores_the_previous_release_without_starting_the_new_one(tmp_path: Path,
                                                                                      case: str) -> None:
    """The new release never reaches `run` or `up`; the previous one is activated again (its own migration is not
    run: the restore runs nothing backwards), and the failure is audited once, after the migration's own entry.
    A migration past its deadline (or whose CLI failed) has its container stopped: killing the CLI leaves it
    running."""
    reply, reason = FAILURES[case]
    r = with_config(data_host(tmp_path), "r1", config(OLD))
    r.apply("r1")
    r.forget()
    with_config(r, "r2", config(NEW))
    r.host.on("run", "r2", reply)
    message = failing(r, "r2", EXIT_FAILED)
    assert message.splitlines()[:2] == [f"apply of r2 failed at migrate: {reason}", "failing services: state"]
    assert message.endswith("previous release r1 restored and serving")
    stop = [("stop", None)] if case != "exit" else []
    assert r.host.calls == [("config", "r2"), ("info", None), ("pull", "r2"), ("pull", "r2"), ("net-inspect", None),
                            ("run", "r2"), *stop, ("info", None), ("pull", "r1"), ("pull", "r1"), ("net-inspect", None),
                            ("up", "r1"),
                            ("validate", "r1")]
    if stop:
        assert r.host.argvs[6] == ["docker", "container", "stop", "--time", "10", "data-migrate-state-j1"]
    assert state(r) == ("r1", None, "r1", None)
    assert r.new_events() == ["apply.started", "migrate.failed", "apply.failed", "rollback.succeeded"]
    failed = r.store.audit_entries()[r.seen + 2]
    assert (failed["stage"], failed["reason"], failed["services"]) == ("migrate", reason, ["state"])
    assert r.store.audit_entries()[r.seen + 1]["reason"] == reason


def test_a_release_failing_after_its_migration_is_restored_without_migrating_back(tmp_path: Path) -> None:
    r = with_config(data_host(tmp_path), "r1", config(OLD))
    r.apply("r1")
    r.forget()
    with_config(r, "r2", config(NEW))
    r.host.on("up", "r2", exited(1, stderr="container data-state-1 is unhealthy"))
    failing(r, "r2", EXIT_FAILED)
    assert [c for c in r.host.calls if c[0] in ("run", "up")] == [("run", "r2"), ("up", "r2"), ("up", "r1")]
    assert r.new_events() == ["apply.started", "migrate.succeeded", "apply.failed", "rollback.succeeded"]
    assert state(r) == ("r1", None, "r1", None)


def test_a_rollback_runs_no_migration(tmp_path: Path) -> None:
    """Going back to an older image runs nothing: its migration could refuse data a newer one wrote."""
    r = with_config(data_host(tmp_path), "r1", config(OLD))
    r.apply("r1")
    with_config(r, "r2", config(NEW))
    r.apply("r2")
    r.forget()
    assert r.rollout().rollback(None).startswith("rollback of r1 succeeded")
    assert ("run", "r1") not in r.host.calls and ("up", "r1") in r.host.calls


def test_a_network_created_by_someone_else_meanwhile_is_no_failure_and_one_never_created_is(tmp_path: Path) -> None:
    r = with_config(data_host(tmp_path), "r1", config(OLD, migrate=None))
    r.host.on("net-inspect", None, exited(1), exited(0))
    r.host.on("net-create", None, exited(1, stderr="network with name devtools-data already exists"))
    assert r.apply("r1").startswith("apply of r1 succeeded")
    assert r.events() == ["apply.started", "apply.succeeded"]
    r.forget()
    with_config(r, "r2", config(OLD, migrate=None, rag="reg/devtools/rag@sha256:" + "5" * 64))
    r.host.on("net-inspect", "r2", exited(1), exited(1))
    r.host.on("net-inspect", None, exited(1), exited(1))
    r.host.on("net-create", None, exited(1, stderr="permission denied"))
    message = failing(r, "r2", EXIT_FAILED)
    assert message.splitlines()[0] == ("apply of r2 failed at network: cannot create docker network devtools-data "
                                       "(external in the release's compose config): permission denied")
    assert state(r) == ("r1", None, "r1", None)
    assert ("up", "r2") not in r.host.calls


def test_a_migrate_label_that_cannot_be_split_fails_the_step_naming_it(tmp_path: Path) -> None:
    r = with_config(data_host(tmp_path), "r1", config(OLD, migrate="migrate --to 'v2"))
    message = failing(r, "r1", EXIT_FAILED)
    assert message.splitlines()[0] == ("apply of r1 failed at migrate: service state: label devtools.migrate "
                                       "\"migrate --to 'v2\" cannot be split into arguments: No closing quotation")
    assert ("run", "r1") not in r.host.calls


def test_the_current_release_config_unreadable_runs_every_migration(tmp_path: Path) -> None:
    r = with_config(data_host(tmp_path), "r1", config(OLD))
    r.apply("r1")
    (r.store.release_dir("r1") / "resolved.json").unlink()
    r.forget()
    with_config(r, "r2", config(OLD, rag="reg/devtools/rag@sha256:" + "6" * 64))
    r.apply("r2")
    assert ("run", "r2") in r.host.calls
    assert any(line.startswith("the current release's config is unreadable (cannot read ") for line in r.logged)


def test_a_migration_output_is_masked_like_every_line_of_the_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                                 ) -> None:
    """A migration that prints a secret (a DSN in its error) puts `***` into the job log, the result and the audit
    entries, as the rest of the job does (the worker's masker)."""
    r = with_config(data_host(tmp_path), "r1", config(OLD))
    r.apply("r1")
    r.store.write_secrets(secretfile.render_secrets({"DATABASE_DSN": "postgres://app:dsn-pw-91ab@db/app"}))
    with_config(r, "r2", config(NEW))
    r.host.on("run", "r2", exited(1, stdout="connecting to postgres://app:dsn-pw-91ab@db/app\n",
                                  stderr="state: cannot reach postgres://app:dsn-pw-91ab@db/app\n"))
    r.store.write_job_file("j2.spec.json", json.dumps({"action": "apply", "options": Options().__dict__,
                                                       "bundle": str(bundle(tmp_path, "r2")), "release": "r2"}))
    assert jobs.run_job(r.store, "j2", runner=r.host, clock=r.clock, sleep=r.clock.sleep,
                        diagnose=r.diagnose) == EXIT_FAILED
    printed = capsys.readouterr().out
    result = (r.store.jobs / "j2.result.json").read_text()
    audit = (r.store.base / "audit.jsonl").read_text()
    for text in (printed, result, audit):
        assert "dsn-pw-91ab" not in text
    assert "  state: connecting to ***" in printed
    assert "apply of r2 failed at migrate: the migration of state (`migrate`) exited 1: state: cannot reach ***" \
        in printed
    assert state(r) == ("r1", None, "r1", None)


def test_the_migration_deadline_is_a_hostagent_option() -> None:
    parse = hostagent.build_parser().parse_args
    assert hostagent.options_from(parse(["--project", "data", "apply", "--bundle", "b"])).migrate_timeout == 300
    assert hostagent.options_from(parse(["--project", "data", "apply", "--bundle", "b", "--migrate-timeout", "12"])
                                  ).migrate_timeout == 12
