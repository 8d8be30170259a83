"""Registry pull credentials: minted per release with an expiry, handed to each host on SSH stdin before its
apply, and never in user data (where any container could read them from the metadata service, snapshots copied
them, and a running droplet never saw a new one)."""

from __future__ import annotations

import pytest

from components import commands
from components.release import PULL_CREDENTIAL_SECONDS, ReleaseRollout
from tests.unit.components import stack_configs as sc
from tests.unit.components.program_harness import World, run_components, secret_leaks
from tests.unit.components.program_stacks import COMMAND, CREDS, DROPLET, prod_outputs, run_stack
from tests.unit.components.test_rollout import HOSTS, IMAGES, rollout_args

REGISTRY_AUTH = ("cd /opt/devtools/code && /opt/devtools/venv/bin/python -m agent.hostagent --root /opt/devtools "
                 "--project green registry-auth")


def _rollout(registry_name: str | None = "devtools") -> World:
    cfg = sc.make_config()

    def program() -> None:
        ReleaseRollout("rel", rollout_args(cfg, HOSTS, "1a2b3c4", IMAGES, "1a2b3c4d5e", registry_name=registry_name))

    return run_components(program)


def test_each_release_mints_an_expiring_read_only_credential():
    """A credential without expiry lived forever on every host; now each release (and each new host) mints a
    read-only one that expires after a week (long enough to retry a failed rollout); the replaced one is revoked
    when the provider deletes it."""
    world = _rollout()
    creds = world.one(CREDS)
    assert creds.inputs == {"registryName": "devtools", "write": False, "expirySeconds": 7 * 24 * 3600}
    assert PULL_CREDENTIAL_SECONDS == 604800
    content = commands.content_hash(commands.manifest("1a2b3c4", IMAGES, commands.release_env(sc.make_config()
                                                                                                .release),
                                                      "1a2b3c4d5e"))
    assert creds.replacement_trigger == {"content": content, "hosts": ["400001", "400002"]}
    assert creds.parent == world.one("devtools:index:ReleaseRollout").urn


def test_the_credential_reaches_each_host_on_stdin_before_its_apply():
    """The delivery's command line carries nothing secret (it is logged and kept in state); the credential is its
    stdin, a Pulumi secret, with output logging off. It runs after the upload (the agent code) and before the
    apply (which pulls)."""
    world = _rollout()
    credential = world.one(CREDS).outputs["dockerCredentials"]
    for host in ("green-1", "green-2"):
        deliver = world.one(COMMAND, f"{host}-registry-auth")
        assert deliver.inputs["create"] == REGISTRY_AUTH
        assert deliver.secret_input("stdin") and deliver.inputs["stdin"] == credential
        assert deliver.inputs["logging"] == "none"
        assert {"stdout", "stderr"} <= set(deliver.additional_secret_outputs)
        assert world.depends_on(deliver, world.one(COMMAND, f"{host}-upload"))
        assert world.depends_on(world.one(COMMAND, f"{host}-apply"), deliver)
    assert secret_leaks(world, [credential, "do-read-token"]) == []


def test_without_a_registry_to_log_in_to_nothing_is_minted():
    """The local stand-in's registry needs no login: no credential, no delivery."""
    world = _rollout(None)
    assert world.of_type(CREDS) == []
    assert not [r for r in world.of_type(COMMAND) if r.name.endswith("-registry-auth")]


@pytest.mark.parametrize("stack", ["prod", "blue"])
def test_no_credential_in_user_data_and_each_stack_mints_its_own(stack):
    """No droplet's user data (either color's, the data droplet's) holds a credential; blue mints its own against
    the registry prod exports (by name), rather than reading prod's long-lived one, and in prod the data tier's
    rollout mints its own as the colors' does."""
    world = run_stack(stack, others={"prod": prod_outputs()})
    droplets = world.of_type(DROPLET)
    assert len(droplets) == {"prod": 2, "blue": 1}[stack]
    for droplet in droplets:
        user_data = droplet.inputs["userData"]
        assert "auths" not in user_data and "/root/.docker" not in user_data
    pull = [c for c in world.of_type(CREDS) if c.inputs["write"] is False]
    assert sorted((c.name, c.inputs["registryName"], c.inputs["expirySeconds"]) for c in pull) == {
        "prod": [("data-release-pull", "devtools", 604800), ("release-pull", "devtools", 604800)],
        "blue": [("release-pull", "devtools", 604800)]}[stack]
    assert "registryPullAuth" not in world.exports


def test_blue_before_prod_exports_its_registry_fails_clearly():
    outputs = {k: v for k, v in prod_outputs().items() if k != "registry"}
    with pytest.raises(Exception, match=r"stack prod exports no registry name: run `pulumi up --stack prod` first"):
        run_stack("blue", others={"prod": outputs})
