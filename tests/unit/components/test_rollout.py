"""ReleaseRollout under mocks: per host upload → secrets → apply → gate, hosts in turn, no-op when unchanged."""

import dataclasses
import hashlib

import pulumi
import pytest

from agent.secretfile import render_secrets
from components import commands
from components.release import ReleaseRollout, ReleaseRolloutArgs, RolloutHost
from tests.compose_services import SERVICES
from tests.unit.components import stack_configs as sc
from tests.unit.components.program_harness import World, run_components, secret_leaks

CMD = "command:remote:Command"
IMAGES = {s: f"registry.example/devtools/{s}@sha256:" + "a" * 64 for s in SERVICES}
HOSTS = (RolloutHost("green-1", "203.0.113.11", 22, "400001"), RolloutHost("green-2", "203.0.113.12", 22, "400002"))


def rollout_args(cfg, hosts, release_id, images, commit, *, registry_name=None) -> ReleaseRolloutArgs:
    """ReleaseRolloutArgs as components/program.py builds them from a stack config."""
    return ReleaseRolloutArgs(place=cfg.agent_place, release=cfg.release, login=cfg.ssh.login, hosts=hosts,
                              release_id=release_id, images=images, commit=commit, private_key=sc.SSH_PRIVATE_KEY,
                              registry_name=registry_name)


def _run(cfg=None, *, images=None, hosts=HOSTS[:1], release_id="1a2b3c4", commit="1a2b3c4d5e") -> World:
    cfg = cfg or sc.make_config()

    def program():
        ReleaseRollout("rel", rollout_args(cfg, hosts, release_id, images or IMAGES, commit))

    return run_components(program)


def _release(cfg, images=IMAGES, commit="1a2b3c4d5e"):
    return commands.manifest("1a2b3c4", images, commands.release_env(cfg.release), commit)


def test_children_in_order_under_the_component():
    world = _run()
    rollout = world.one("devtools:index:ReleaseRollout")
    names = [r.name for r in world.registrations if r.parent == rollout.urn]
    assert names == ["rel-green-1-upload", "rel-green-1-project", "rel-green-1-secrets", "rel-green-1-apply",
                     "rel-green-1-validate"]
    assert world.one("devtools:index:ValidationGate").name == "rel-green-1-validate"


def test_no_remote_command_sends_previous_outputs_to_sshd():
    """None of our scripts reads PULUMI_COMMAND_STDOUT/STDERR; sending them only draws sshd AcceptEnv refusals."""
    commands_seen = [r for r in _run().registrations if r.type == CMD]
    assert len(commands_seen) == 5
    assert all(r.inputs["addPreviousOutputInEnv"] is False for r in commands_seen)


def test_exact_create_strings_and_payload():
    """Every host command is the pure builder's text; the upload's stdin is the reproducible bundle."""
    cfg = sc.make_config()
    world = _run(cfg)
    content = commands.content_hash(_release(cfg))
    upload = world.one(CMD, "green-1-upload")
    assert upload.inputs["create"] == commands.upload_script("/opt/devtools", "green", "1a2b3c4",
                                                             commands.bundle_sha256(_release(cfg)))
    assert upload.inputs["stdin"] == commands.bundle_payload(_release(cfg))
    assert upload.inputs["logging"] == "stderr"
    secrets = world.one(CMD, "green-1-secrets")
    assert secrets.inputs["create"] == (
        "cd /opt/devtools/code && /opt/devtools/venv/bin/python -m agent.hostagent --root /opt/devtools "
        "--project green secrets")
    assert secrets.inputs["logging"] == "none"
    apply = world.one(CMD, "green-1-apply")
    assert apply.inputs["create"] == (
        f": release-content={content} && cd /opt/devtools/code && /opt/devtools/venv/bin/python -m agent.hostagent "
        "--root /opt/devtools --project green apply --bundle /opt/devtools/green/incoming/1a2b3c4 --keep 5 "
        "--validate-deadline 120")
    assert apply.inputs["logging"] == "stdoutAndStderr"
    gate = world.one(CMD, "green-1-validate-run")
    assert gate.inputs["create"] == commands.validate_script(cfg.agent_place, cfg.release.validator, "1a2b3c4")
    # the gate re-runs for new content and whenever the apply is replaced (its id, "cmd-N" under mocks)
    assert gate.inputs["triggers"][0] == content
    assert gate.inputs["triggers"][1].startswith("cmd-")
    assert len(gate.inputs["triggers"]) == 2


def test_secrets_only_on_stdin_as_a_secret():
    """App secrets and the SSH key appear in no plain input: state, diffs and logs show them."""
    world = _run(sc.make_config(hostCount="2"), hosts=HOSTS)
    assert secret_leaks(world, sc.SECRET_VALUES) == []
    for host in ("green-1", "green-2"):
        secrets = world.one(CMD, f"{host}-secrets")
        assert secrets.secret_input("stdin")
        assert secrets.inputs["stdin"] == render_secrets({"LANGFUSE_PUBLIC_KEY": sc.LANGFUSE_PUBLIC,
                                                          "LANGFUSE_SECRET_KEY": sc.LANGFUSE_SECRET})
        assert {"stdout", "stderr"} <= set(secrets.additional_secret_outputs)
    for reg in world.of_type(CMD):
        assert reg.secret_input("connection"), reg.name
        assert reg.inputs["connection"]["privateKey"] == sc.SSH_PRIVATE_KEY


def test_apply_waits_for_upload_and_secrets_and_gate_for_apply():
    world = _run()
    upload, secrets, apply = (world.one(CMD, f"green-1-{s}") for s in ("upload", "secrets", "apply"))
    assert world.depends_on(secrets, upload)
    assert {upload.urn, secrets.urn} <= set(apply.dependencies)
    assert world.depends_on(world.one(CMD, "green-1-validate-run"), apply)
    assert world.depends_on(world.one("devtools:index:ValidationGate"), apply)


def test_hosts_roll_one_after_another():
    """A bad release must stop on the first host: host 2 starts only after host 1's gate passed."""
    world = _run(sc.make_config(hostCount="2"), hosts=HOSTS)
    first_gate = world.one(CMD, "green-1-validate-run")
    second_upload = world.one(CMD, "green-2-upload")
    assert world.depends_on(second_upload, first_gate)
    assert not world.depends_on(world.one(CMD, "green-1-upload"), world.one(CMD, "green-2-validate-run"))
    assert world.one(CMD, "green-2-apply").inputs["connection"]["host"] == "203.0.113.12"


def test_same_inputs_twice_is_a_no_op():
    """Rollouts re-run only when the release changes, never on every `pulumi up`."""
    first, second = _run(), _run()
    for name in ("upload", "secrets", "apply", "validate-run"):
        a, b = first.one(CMD, f"green-1-{name}"), second.one(CMD, f"green-1-{name}")
        assert a.raw == b.raw, name


def test_a_changed_digest_updates_the_apply_and_keeps_the_host_identity():
    """A new release is an in-place update of the same rollout slot, never a replacement of the host's resources."""
    changed = {**IMAGES, "cicd": IMAGES["cicd"].replace("a" * 64, "b" * 64)}
    before, after = _run(), _run(images=changed)
    old, new = before.one(CMD, "green-1-apply"), after.one(CMD, "green-1-apply")
    assert old.inputs["create"] != new.inputs["create"]
    assert old.inputs["triggers"] == new.inputs["triggers"]
    assert old.inputs["connection"] == new.inputs["connection"]
    assert before.one(CMD, "green-1-upload").inputs["stdin"] != after.one(CMD, "green-1-upload").inputs["stdin"]
    assert before.one(CMD, "green-1-secrets").raw == after.one(CMD, "green-1-secrets").raw
    assert (before.one(CMD, "green-1-validate-run").inputs["triggers"]
            != after.one(CMD, "green-1-validate-run").inputs["triggers"])


def test_a_new_commit_with_the_same_digests_changes_nothing_on_the_host():
    """Source metadata is not content: re-running the apply for it would be a pointless rollout."""
    before, after = _run(), _run(commit="ffffffffff")
    assert before.one(CMD, "green-1-apply").raw == after.one(CMD, "green-1-apply").raw


@pytest.mark.parametrize(("override", "changed"), [
    ({"appSecrets": {"LANGFUSE_SECRET_KEY": "rotated", "LANGFUSE_PUBLIC_KEY": sc.LANGFUSE_PUBLIC}}, "secrets"),
    (None, "host"),
])
def test_rotated_secrets_or_a_new_host_replace_the_apply(override, changed):
    """Replacement re-runs the same release on the host; the create string (the release) stays the same."""
    base = _run()
    other = _run(sc.make_config(**override)) if override else _run(hosts=(RolloutHost("green-1", "203.0.113.11",
                                                                                      22, "400099"),))
    old, new = base.one(CMD, "green-1-apply"), other.one(CMD, "green-1-apply")
    assert old.inputs["create"] == new.inputs["create"]
    assert old.inputs["triggers"] != new.inputs["triggers"]
    assert new.secret_input("triggers")
    rendered = render_secrets({"LANGFUSE_PUBLIC_KEY": sc.LANGFUSE_PUBLIC, "LANGFUSE_SECRET_KEY": sc.LANGFUSE_SECRET})
    assert old.inputs["triggers"] == ["400001", hashlib.sha256(rendered.encode()).hexdigest()]


def test_without_app_secrets_the_hosts_secrets_file_is_written_empty():
    """The local stand-in has no app secrets: the secrets step still runs, with nothing on stdin, so the host's
    file holds exactly the stack's appSecrets (none), and the apply waits for it."""
    cfg = sc.make_local_config()
    world = _run(cfg, hosts=(RolloutHost("local-1", "127.0.0.1", 2222, "127.0.0.1:2222"),))
    secrets = world.one(CMD, "local-1-secrets")
    assert secrets.inputs["stdin"] == ""
    assert secrets.secret_input("stdin")
    apply = world.one(CMD, "local-1-apply")
    assert apply.inputs["triggers"] == ["127.0.0.1:2222", hashlib.sha256(b"").hexdigest()]
    # registration is concurrent, so the order of the recorded dependencies varies: compare them as a set
    assert sorted(apply.dependencies) == sorted([world.one(CMD, f"local-1-{step}").urn
                                                 for step in ("upload", "project", "secrets")])
    assert "--validate-arg=--prometheus=http://127.0.0.1:9390" in apply.inputs["create"]
    assert apply.inputs["connection"]["port"] == 2222


def test_removing_every_app_secret_empties_the_file_before_the_apply_runs_again():
    """A key dropped from appSecrets must leave the host and the containers: the same secrets step is updated to
    an empty stdin (not deleted, which Pulumi would do only after the apply), and the apply is replaced."""
    before = _run()
    after = _run(sc.make_config(appSecrets={}))
    old, new = before.one(CMD, "green-1-secrets"), after.one(CMD, "green-1-secrets")
    assert (old.inputs["create"], old.inputs["triggers"]) == (new.inputs["create"], new.inputs["triggers"])
    assert old.inputs["stdin"] != "" and new.inputs["stdin"] == ""
    apply = after.one(CMD, "green-1-apply")
    assert new.urn in apply.dependencies
    assert before.one(CMD, "green-1-apply").inputs["triggers"] != apply.inputs["triggers"]
    assert apply.inputs["triggers"][1] == hashlib.sha256(b"").hexdigest()


def test_validation_output_collects_every_host():
    held = {}
    cfg = sc.make_config(hostCount="2")

    def program():
        held["rollout"] = ReleaseRollout("rel", rollout_args(cfg, HOSTS, "1a2b3c4", IMAGES, "c1"))
        pulumi.export("validation", held["rollout"].validation)
        pulumi.export("manifest", held["rollout"].manifest)

    world = run_components(program)
    content = commands.content_hash(_release(cfg, commit="c1"))
    summary = {"passed": True, "checks": 16, "failed": [], "duration_s": 1.2}
    assert world.exports_plain["validation"] == {
        "release": "1a2b3c4", "content": content, "passed": True, "hosts": {"green-1": summary, "green-2": summary}}
    assert world.exports_plain["manifest"] == _release(cfg, commit="c1")
    assert [g.host_name for g in held["rollout"].gates] == ["green-1", "green-2"]
    assert len(held["rollout"].applies) == 2


def test_destroy_stops_the_project_and_nothing_else_replaces_it():
    """Destroying the stack runs `hostagent stop` (containers down, volumes kept). The resource that carries it
    depends on the host alone: a new release or rotated secrets must never run its delete (that would stop what
    the rollout just started)."""
    world = _run()
    project = world.one(CMD, "green-1-project")
    assert project.inputs["delete"] == ("cd /opt/devtools/code && /opt/devtools/venv/bin/python -m agent.hostagent "
                                        "--root /opt/devtools --project green stop")
    assert project.inputs["create"] == ("cd /opt/devtools/code && /opt/devtools/venv/bin/python -m agent.hostagent "
                                        "--root /opt/devtools --project green status --compact")
    assert project.inputs["triggers"] == ["400001"]  # the droplet id only
    assert "1a2b3c4" not in project.inputs["create"] + project.inputs["delete"]
    apply = world.one(CMD, "green-1-apply")
    assert project.urn in apply.dependencies  # destroy order: the apply goes first, then the stop


def test_a_pool_never_stays_mixed_each_host_is_provisional_until_every_gate_passed():
    """Two hosts behind one load balancer: a failure on host 2 must not leave host 1 on the new release. Each
    host's apply (and gate) is provisional, earlier hosts for longer; one confirm per host waits for every gate.
    When host 2 fails no confirm runs and host 1 puts the previous release back by itself (agent.pool)."""
    cfg = sc.make_config(hostCount="2")
    world = _run(cfg, hosts=HOSTS)
    content = commands.content_hash(_release(cfg))
    for host, window in (("green-1", 1800), ("green-2", 900)):
        apply = world.one(CMD, f"{host}-apply")
        assert apply.inputs["create"] == commands.apply_script(cfg.agent_place, "1a2b3c4", content, keep=5,
                                                               validator=cfg.release.validator,
                                                               confirm_within=window)
        assert apply.inputs["create"].endswith(f" --confirm-within {window}")
        gate = world.one(CMD, f"{host}-validate-run")
        assert gate.inputs["create"] == commands.validate_script(cfg.agent_place, cfg.release.validator, "1a2b3c4",
                                                                 window)
        confirm = world.one(CMD, f"{host}-confirm")
        assert confirm.inputs["create"] == (
            "cd /opt/devtools/code && /opt/devtools/venv/bin/python -m agent.hostagent --root /opt/devtools "
            "--project green confirm --release 1a2b3c4")
        assert confirm.inputs["connection"]["host"] == apply.inputs["connection"]["host"]
        assert confirm.inputs["triggers"][0] == content
        assert confirm.inputs["triggers"][1].startswith("cmd-")  # the apply's id: a replaced apply confirms again
        assert len(confirm.inputs["triggers"]) == 2
        for other in ("green-1", "green-2"):
            assert world.depends_on(confirm, world.one(CMD, f"{other}-validate-run"))
    assert not world.depends_on(world.one(CMD, "green-2-upload"), world.one(CMD, "green-1-confirm"))
    rollout = world.one("devtools:index:ReleaseRollout")
    assert [r.name for r in world.registrations if r.parent == rollout.urn][-2:] == ["rel-green-1-confirm",
                                                                                     "rel-green-2-confirm"]


def test_a_single_host_is_final_at_once():
    """One host: its gate is the last thing that can fail, so nothing is provisional and nothing confirms."""
    world = _run()
    assert not [r for r in world.of_type(CMD) if r.name.endswith("-confirm")]
    assert "--confirm-within" not in world.one(CMD, "green-1-apply").inputs["create"]
    assert "--confirm-within" not in world.one(CMD, "green-1-validate-run").inputs["create"]


def test_a_tier_ships_its_own_compose_file_with_its_env_merged_over_the_release_env():
    """The data tier (project `data`) reuses the rollout: its compose file travels in the bundle instead of
    compose/'s, its env (port prefix, bind address) is merged over the release env, and both decide the content,
    so the upload checks exactly these bytes and a changed address re-runs the apply."""
    compose = b"# the data tier\nservices: {}\n"
    cfg = sc.make_config()
    place = dataclasses.replace(cfg.agent_place, project="data")

    def program(bind: str) -> World:
        def declare() -> None:
            ReleaseRollout("data-release", dataclasses.replace(
                rollout_args(cfg, (RolloutHost("data-1", "203.0.113.21", 22, "400021"),), "data-0123456789ab",
                             IMAGES, "c1"),
                place=place, compose=compose,
                extra_env=pulumi.Output.from_input({"HOST_PORT_PREFIX": "83", "DATA_BIND": bind})))
        return run_components(declare)

    world = program("10.110.0.5")
    manifest = commands.manifest("data-0123456789ab", IMAGES, {"COMPOSE_PROFILES": "edge", "HOST_PORT_PREFIX": "83",
                                                               "DATA_BIND": "10.110.0.5"}, "c1")
    upload = world.one(CMD, "data-1-upload")
    assert upload.inputs["stdin"] == commands.bundle_payload(manifest, compose)
    assert upload.inputs["create"] == commands.upload_script("/opt/devtools", "data", "data-0123456789ab",
                                                             commands.bundle_sha256(manifest, compose))
    content = commands.content_hash(manifest, compose)
    assert content != commands.content_hash(manifest)  # the compose file is part of the content
    apply = world.one(CMD, "data-1-apply")
    assert apply.inputs["create"] == (
        f": release-content={content} && cd /opt/devtools/code && /opt/devtools/venv/bin/python -m agent.hostagent "
        "--root /opt/devtools --project data apply --bundle /opt/devtools/data/incoming/data-0123456789ab --keep 5 "
        "--validate-deadline 120")
    moved = program("10.110.0.6").one(CMD, "data-1-apply")
    assert moved.inputs["create"] != apply.inputs["create"]
