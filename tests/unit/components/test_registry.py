"""components.registry: the DOCR tier, docker credentials, and the Registry component under Pulumi mocks."""

from __future__ import annotations

import base64
import json
from typing import Any

import pulumi
import pytest

from components.registry import Registry, RegistryArgs, docker_login, registry_tier
from tests.unit.components.program_harness import World, is_secret, run_components
from tests.unit.components.stack_configs import make_config, make_local_config

DOCR = "digitalocean:index/containerRegistry:ContainerRegistry"
CREDS = "digitalocean:index/containerRegistryDockerCredentials:ContainerRegistryDockerCredentials"


@pytest.mark.parametrize(("repositories", "requested", "expected"), [
    (0, "auto", "starter"), (1, "auto", "starter"), (2, "auto", "basic"), (5, "auto", "basic"),
    (6, "auto", "professional"), (9, "auto", "professional"),
    (1, "starter", "starter"), (5, "basic", "basic"), (1, "professional", "professional"),
    (500, "professional", "professional"),
])
def test_registry_tier_table(repositories: int, requested: str, expected: str) -> None:
    """auto picks the smallest DOCR tier that holds every repository; pushes beyond the limit are refused."""
    assert registry_tier(repositories, requested) == expected


@pytest.mark.parametrize(("repositories", "requested", "message"), [
    (2, "starter", "devtools:registryTier: starter holds at most 1 repository, the release builds 2"),
    (9, "basic", "devtools:registryTier: basic holds at most 5 repositories, the release builds 9"),
    (1, "premium", "devtools:registryTier: 'premium' is not a tier (auto, starter, basic, professional)"),
])
def test_registry_tier_too_small_names_the_key(repositories: int, requested: str, message: str) -> None:
    """An explicit tier that cannot hold the release fails at preview, not halfway through the pushes."""
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        registry_tier(repositories, requested)


def docker_json(server: str, user: str, password: str) -> str:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return json.dumps({"auths": {server: {"auth": auth}}})


def test_docker_login_reads_user_and_password() -> None:
    """The push credentials come from DOCR's docker config; a wrong split would fail every push."""
    text = docker_json("registry.digitalocean.com", "tok-user", "tok:with:colons")
    assert docker_login(text, "registry.digitalocean.com") == ("tok-user", "tok:with:colons")
    assert docker_login(docker_json("https://registry.digitalocean.com/", "u", "p"),
                        "registry.digitalocean.com") == ("u", "p")


PASSWORD = "dop_v1_supersecretpassword"


@pytest.mark.parametrize(("text", "message"), [
    (f"not json {PASSWORD}", "docker credentials for registry.digitalocean.com: not JSON"),
    (json.dumps({"auth": PASSWORD}), "no `auths` object"),
    (docker_json("other.example.com", "u", PASSWORD),
     "no `auth` for that server (servers: other.example.com)"),
    (json.dumps({"auths": {"registry.digitalocean.com": {"auth": PASSWORD + "!"}}}),
     "`auth` is not base64 of user:password"),
    (json.dumps({"auths": {"registry.digitalocean.com": {"auth": base64.b64encode(PASSWORD.encode()).decode()}}}),
     "`auth` is not base64 of user:password"),
])
def test_docker_login_errors_never_show_the_value(text: str, message: str) -> None:
    """A malformed credential fails with what is missing; the error (and its cause chain) must not carry the
    password into a log."""
    with pytest.raises(ValueError) as caught:
        docker_login(text, "registry.digitalocean.com")
    assert message in str(caught.value)
    assert PASSWORD not in str(caught.value)
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def run_registry(config: Any, repositories: int = 9) -> World:
    def program() -> None:
        registry = Registry("registry", RegistryArgs(registry=config.registry, region=config.hosts.region,
                                                     protect=config.hosts.protect, repositories=repositories))
        pulumi.export("address", registry.address)
        pulumi.export("server", registry.server)
        pulumi.export("name", registry.name)
        pulumi.export("push_username", registry.push_username)
        pulumi.export("push_password", registry.push_password)

    return run_components(program)


def test_docr_is_protected_and_sized_for_nine_repositories() -> None:
    """The registry holds every release a rollback needs: it is protected, and 9 repos need professional."""
    world = run_registry(make_config())
    docr = world.one(DOCR)
    assert docr.protect
    assert docr.inputs["subscriptionTierSlug"] == "professional"
    assert docr.inputs["name"] == "devtools"
    assert docr.inputs["region"] == "nyc3"
    assert docr.parent == world.one("devtools:index:Registry").urn
    assert world.exports_plain["address"] == "registry.digitalocean.com/devtools"
    assert world.exports_plain["server"] == "registry.digitalocean.com"


def test_docr_protect_follows_config() -> None:
    """devtools:protect false (a throwaway stack) leaves the registry deletable."""
    assert not run_registry(make_config(protect="false")).one(DOCR).protect


def test_builds_get_write_credentials_and_hosts_none_from_here() -> None:
    """Builds get write credentials; the hosts' read-only ones are minted per release by the rollout
    (tests/unit/components/test_pull_credentials.py) against the registry's name, never once here for good."""
    world = run_registry(make_config())
    push = world.one(CREDS)
    assert push.name == "registry-push"
    assert push.inputs["write"] is True
    assert push.inputs["registryName"] == "devtools" == world.exports_plain["name"]
    assert "expirySeconds" not in push.inputs
    assert world.depends_on(push, world.one(DOCR))


def test_credentials_are_secret_outputs() -> None:
    """The push login stays a secret end to end: a plain output would print the token in logs."""
    world = run_registry(make_config())
    for name in ("push_username", "push_password"):
        assert is_secret(world.exports[name]), name
    assert not is_secret(world.exports["address"]) and not is_secret(world.exports["name"])
    assert world.exports_plain["push_username"].startswith("do-write-token-")
    assert world.exports_plain["push_password"] == world.exports_plain["push_username"]


def test_existing_registry_creates_nothing_and_has_no_credentials() -> None:
    """With devtools:registryAddress the program must not create (or pay for) a DOCR, and has no creds."""
    world = run_registry(make_local_config())
    assert [r for r in world.registrations if r.custom] == []
    assert world.exports_plain["address"] == world.exports_plain["server"] == "127.0.0.1:5000"
    for name in ("name", "push_username", "push_password"):
        assert world.exports_plain.get(name) is None


def test_an_adopted_registry_is_read_never_created_changed_or_deleted() -> None:
    """DigitalOcean allows one registry per account and registry names are global: an account that already has
    one (made by the old scripts) adopts it by name. The program reads it (Resource.get): no create, so no
    'one registry per account' refusal; not managed, so the stack never changes its tier or deletes it."""
    world = run_registry(make_config(registryAdopt="true", registryName="legacy-registry"))
    docr = world.one(DOCR)
    assert docr.read_id == "legacy-registry"
    assert docr.raw == {} and not docr.protect  # nothing declared: the stack does not manage it
    assert docr.parent == world.one("devtools:index:Registry").urn
    assert world.exports_plain["address"] == "registry.digitalocean.com/legacy-registry"
    assert world.one(CREDS, "registry-push").inputs["registryName"] == "legacy-registry"


def test_an_adopted_registry_too_small_for_the_release_is_refused() -> None:
    """An adopted registry keeps its own subscription tier: one that cannot hold every repository would fail
    halfway through the pushes, so the run stops first, saying what to change."""
    with pytest.raises(Exception, match=(
            r"devtools:registryAdopt: registry legacy-basic is on the basic tier, which holds at most 5 "
            r"repositories; the release builds 9: upgrade its subscription \(DigitalOcean control panel, Container "
            r"Registry, Settings\) or build fewer services")):
        run_registry(make_config(registryAdopt="true", registryName="legacy-basic"))
    run_registry(make_config(registryAdopt="true", registryName="legacy-basic"), repositories=5)


def test_explicit_tier_too_small_fails_the_program() -> None:
    """A starter registry cannot hold 9 repositories; the run fails before anything is created."""
    with pytest.raises(Exception, match="devtools:registryTier: starter holds at most 1 repository"):
        run_registry(make_config(registryTier="starter"))
