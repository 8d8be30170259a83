"""Signed images through the whole program under Pulumi's mocks: every pushed image has exactly one signature keyed
on its digest, an unchanged digest is not signed again, every host command waits for every signature, release.json
tells the hosts what to verify exactly when public keys are configured, and no signing secret is ever plain text.

What a mock can show: the inputs each resource is registered with and its dependencies. The engine's diff is not run
here; that a command whose inputs are identical does not run again, and that a changed trigger replaces it (and so
runs its create), is the command provider's contract (tools/pulumi-resource-command: triggers are replaceOnChanges)."""

from __future__ import annotations

import base64
import functools
import gzip
import io
import json
import tarfile
from typing import Any

import pytest

from agent.signing import manifest_section
from components import commands
from tests.compose_services import SERVICES
from tests.cosign_test_keys import PAIR_A, PAIR_B
from tests.unit.components.program_harness import Registration, World, secret_leaks
from tests.unit.components.program_stacks import (
    COMMAND,
    CREDS,
    IMAGE,
    LOCAL_COMMAND,
    prod_outputs,
    run_stack,
)
from tests.unit.components.stack_configs import SECRET_VALUES

UNSIGNED = {"requireSignedImages": "false", "signingPublicKeys": None, "signingKey": None, "signingPassword": None}
ROLLOUTS = ("release", "data-release")


@functools.cache
def _prod(**overrides: str) -> World:
    return run_stack("prod", overrides=dict(overrides))


def _signatures(world: World) -> list[Registration]:
    return [r for r in world.of_type(LOCAL_COMMAND) if r.name.startswith("signatures-")]


def _host_commands(world: World) -> list[Registration]:
    """Every command a rollout (the colors' and the data tier's) runs on a host."""
    return [r for r in world.of_type(COMMAND) if r.name.startswith(tuple(f"{p}-" for p in ROLLOUTS))]


def _shipped(world: World, rollout: str) -> list[dict[str, Any]]:
    """release.json of each upload of `rollout`."""
    out = []
    for upload in (r for r in world.of_type(COMMAND) if r.name.startswith(f"{rollout}-") and r.name.endswith(
            "-upload")):
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(base64.b64decode(upload.inputs["stdin"])))) as tar:
            member = tar.extractfile("bundle/release.json")
            assert member is not None
            out.append(json.loads(member.read()))
    return out


def test_every_image_has_exactly_one_signature_keyed_on_its_digest():
    world = _prod()
    images, signatures = world.of_type(IMAGE), _signatures(world)
    assert len(images) == len(signatures) == len(SERVICES)
    for image in images:
        service = image.name.removeprefix("images-")
        pin = f"registry.digitalocean.com/devtools/{service}@{image.outputs['digest']}"
        keyed = [s for s in signatures if s.inputs["triggers"] == [pin]]
        assert [s.name for s in keyed] == [f"signatures-{service}"]
        assert keyed[0].inputs["create"] == commands.sign_command(pin, registry_auth=True)
        assert world.depends_on(keyed[0], image)  # signed after the push
    # what the hosts run is what was signed
    signed = {s.name.removeprefix("signatures-"): s.inputs["triggers"][0] for s in signatures}
    assert world.exports_plain["release"]["images"] == signed
    assert world.exports_plain["build"]["images"] == signed


def test_the_local_stack_signs_with_the_stand_ins_key_and_no_credentials(tmp_path):
    world = run_stack("local", key_file=tmp_path / "id")
    signatures = _signatures(world)
    assert len(signatures) == len(SERVICES)
    for sig in signatures:
        pin = sig.inputs["triggers"][0]
        assert pin.startswith("127.0.0.1:5000/devtools/")
        assert sig.inputs["create"] == commands.sign_command(pin, registry_auth=False)
        assert sig.inputs["environment"] == {"COSIGN_PRIVATE_KEY": PAIR_A.private_pem, "COSIGN_PASSWORD": ""}
        assert sig.secret_input("environment")


def test_a_no_op_up_signs_nothing_and_a_new_build_signs_every_new_digest():
    """Two updates of the same commit register every signature with identical inputs (secret markers included):
    nothing is signed again. A new release id is a new build: every digest is new, so is every trigger."""
    first, again = _prod(), run_stack("prod")
    assert {s.name: s.raw for s in _signatures(first)} == {s.name: s.raw for s in _signatures(again)}
    rebuilt = run_stack("prod", overrides={"releaseId": "r2"})
    before = {s.name: s.inputs["triggers"] for s in _signatures(first)}
    after = {s.name: s.inputs["triggers"] for s in _signatures(rebuilt)}
    assert sorted(before) == sorted(after)
    assert all(before[name] != after[name] for name in before)


def test_a_stack_that_does_not_build_signs_nothing():
    blue = run_stack("blue", others={"prod": prod_outputs()})
    assert _signatures(blue) == []
    pinned = run_stack("prod", overrides={"release": "r1"}, others={"prod": prod_outputs("r1")})
    assert _signatures(pinned) == []


@pytest.mark.parametrize("overrides", [{}, {"hostCount": "2"}, {"release": "r1", "buildAlways": "true"}],
                         ids=["one host", "a pool", "a build for the idle color"])
def test_every_host_command_waits_for_every_signature(overrides):
    """Nothing reaches a host (upload, secrets, registry credential, apply, gate, a pool's confirm), for the
    colors or the data tier, before every image this update pushed is signed: each names every signature as a
    dependency (explicitly: a color that keeps a pinned release while the idle color's build is signed reads
    nothing of the signatures)."""
    world = run_stack("prod", overrides=overrides, others={"prod": prod_outputs("r1")})
    signatures = {s.urn for s in _signatures(world)}
    host_commands = _host_commands(world)
    kinds = {c.name.rsplit("-", 1)[-1] for c in host_commands}
    assert {"upload", "project", "secrets", "auth", "apply", "run"} <= kinds
    assert ("confirm" in kinds) == ("hostCount" in overrides)
    for command in host_commands:
        assert signatures <= set(command.dependencies), command.name


def test_release_json_carries_the_signing_policy_exactly_when_keys_are_configured():
    section = manifest_section([PAIR_B.public_pem], True)
    signed = _prod()
    for rollout in ROLLOUTS:
        assert [m["signing"] for m in _shipped(signed, rollout)] == [section]
    blue = run_stack("blue", others={"prod": prod_outputs()})  # a follower verifies too, signing nothing
    assert [m["signing"] for m in _shipped(blue, "release")] == [section]
    unsigned = run_stack("prod", overrides=UNSIGNED)
    assert _signatures(unsigned) == []
    for rollout in ROLLOUTS:
        assert ["signing" in m for m in _shipped(unsigned, rollout)] == [False]


def test_the_data_release_id_stays_when_only_its_signing_policy_changes():
    """Signing turned on or a key list changed is no new data release (no migration runs again): a host checks the
    policy at each apply and leaves it out of a release's identity (agent.installs.tree_digest)."""
    signed, unsigned = _prod(), run_stack("prod", overrides=UNSIGNED)
    assert signed.exports_plain["data"]["release"]["id"] == unsigned.exports_plain["data"]["release"]["id"]
    relaxed = run_stack("prod", overrides={"requireSignedImages": "false"})
    assert relaxed.exports_plain["data"]["release"]["id"] == signed.exports_plain["data"]["release"]["id"]


def test_the_signing_key_password_and_push_credentials_are_never_plain_text():
    """A scan of every resource's inputs and every stack output: the private key (whole and line by line), its
    password and the registry's write credential (as JSON, as base64, as user and password)."""
    world = _prod()
    creds = [r.outputs["dockerCredentials"] for r in world.of_type(CREDS) if r.inputs["write"]]
    assert len(creds) == 1
    auth = json.loads(creds[0])["auths"]["registry.digitalocean.com"]["auth"]
    user, _, password = base64.b64decode(auth).decode().partition(":")
    assert secret_leaks(world, [*SECRET_VALUES, *creds, auth, password]) == []
    assert all(s.secret_input("environment") for s in _signatures(world))
    assert PAIR_B.password in SECRET_VALUES and PAIR_B.private_pem.strip() in SECRET_VALUES
    assert user  # named in the docker config, inside the secret environment
