"""The data tier's rules over what stacks exported: which data release may go out, the volume that only grows,
what a follower takes from the stack that owns the data tier; and the data release id, from its content alone."""

from __future__ import annotations

import pytest

from agent.release import RELEASE_ID, release_id_problem
from components.config_slices import StackIdentity
from components.data_tier import data_tags, volume_name, volume_snapshot_name
from components.sources import (
    FollowError,
    data_release_refusal,
    data_resize_warning,
    followed_data_env,
    volume_shrink_refusal,
)
from components.tiers import APP, DATA, data_release_id, read_tiers, tier_compose, tier_images
from tests.unit.components.program_harness import ROOT

COMPOSE = (ROOT / "compose" / "docker-compose.yml").read_text()
TIERS = read_tiers(COMPOSE)
IMAGES = {s: f"registry.digitalocean.com/devtools/{s}@sha256:{'a' * 64}" for s in TIERS.app + TIERS.data}
ENV = {"HOST_PORT_PREFIX": "80", "DATA_BIND": "10.110.0.5"}


def _changed(service: str) -> dict[str, str]:
    return {**IMAGES, service: IMAGES[service].replace("a" * 64, "b" * 64)}


def _data_id(images: dict[str, str], env: dict[str, str] = ENV, network: str | None = None) -> str:
    return data_release_id(tier_images(TIERS, images, DATA), env, tier_compose(COMPOSE, DATA, network=network))


def test_each_tier_pins_only_its_own_services():
    assert tier_images(TIERS, IMAGES, DATA) == {s: IMAGES[s] for s in ("rag-context", "state-persistence")}
    assert set(tier_images(TIERS, IMAGES, APP)) == set(TIERS.app) & set(IMAGES)


def test_the_data_release_id_comes_from_its_content_alone():
    """An app-only release (another app digest) keeps the data release, so the data tier is not released again; a
    new data image, another compose file or another release env (a host refuses one id with two contents) is a
    new data release. The id is one every host accepts."""
    rid = _data_id(IMAGES)
    assert RELEASE_ID.match(rid) and release_id_problem(rid) is None
    assert rid.startswith("data-") and len(rid) == len("data-") + 12
    assert _data_id(_changed("gateway-mcp")) == rid
    assert _data_id(_changed("orchestrator")) == rid
    assert _data_id(_changed("state-persistence")) != rid
    assert _data_id(IMAGES, network="devtools-data") != rid
    assert _data_id(IMAGES, env={**ENV, "DATA_BIND": "10.110.0.6"}) != rid
    assert len({_data_id(_changed("rag-context")), _data_id(_changed("state-persistence")), rid}) == 3


def test_a_follower_takes_the_colors_data_env_from_the_owner():
    env = {"RAG_URL": "http://10.110.0.5:8007", "STATE_URL": "http://10.110.0.5:8008"}
    assert followed_data_env("prod", {"env": env, "address": "10.110.0.5"}) == env


@pytest.mark.parametrize("exported", [None, {}, {"env": {}}, "x"], ids=["none", "empty", "no env", "not a map"])
def test_a_follower_before_the_owner_exported_its_data_tier_fails_naming_it(exported):
    with pytest.raises(FollowError) as err:
        followed_data_env("prod", exported)
    assert str(err.value) == ("stack prod exports no data tier (its `data` output): run `pulumi up --stack prod` "
                              "first (it owns the data tier this stack's colors reach)")


PREVIOUS = {"release": {"id": "data-0123456789ab"}}


def test_a_data_release_while_the_colors_run_two_releases_is_refused_naming_both_and_the_fix():
    assert data_release_refusal("prod", "blue", PREVIOUS, "data-ba9876543210", own_release={"id": "r2"},
                                standby_release={"id": "r1"}) == (
        "refusing data release data-ba9876543210 on stack prod: it changes the data tier (now data-0123456789ab) "
        "while the colors run two releases, r2 on stack prod and r1 on stack blue, and one data tier serves both. "
        "Bring stack blue to release r2 first (`pulumi up --stack blue`), or flip so both colors run one release; "
        "then run this update again")


@pytest.mark.parametrize(("previous", "release_id", "own", "standby"), [
    (PREVIOUS, "data-0123456789ab", {"id": "r2"}, {"id": "r1"}),  # the data tier does not change
    (PREVIOUS, "data-ba9876543210", {"id": "r2"}, {"id": "r2"}),  # both colors run one release
    (None, "data-ba9876543210", {"id": "r2"}, {"id": "r1"}),  # the first data release
    (PREVIOUS, "data-ba9876543210", {"id": "r2"}, None),  # no standby release yet
    (PREVIOUS, "data-ba9876543210", None, {"id": "r1"}),  # this stack exported no release yet
], ids=["unchanged", "one release", "first", "no standby", "no own release"])
def test_a_data_release_is_allowed_otherwise(previous, release_id, own, standby):
    assert data_release_refusal("prod", "blue", previous, release_id, own_release=own, standby_release=standby) is None


def test_the_volume_only_grows_and_a_smaller_size_is_refused_naming_the_key():
    previous = {"shape": {"dataVolumeSize": 20.0, "dataDropletSize": "s-1vcpu-2gb"}}  # JSON numbers read as floats
    assert volume_shrink_refusal("prod", previous, 10) == (
        "refusing devtools:dataVolumeSize 20 -> 10 on stack prod: a block volume only grows (DigitalOcean cannot "
        "shrink one) and it holds every named volume of the data tier. Put back 20 or more")
    assert volume_shrink_refusal("prod", previous, 20) is None
    assert volume_shrink_refusal("prod", previous, 40) is None
    assert volume_shrink_refusal("prod", None, 1) is None
    assert volume_shrink_refusal("prod", {"shape": {}}, 1) is None


def test_a_data_droplet_resize_is_announced():
    previous = {"shape": {"dataVolumeSize": 10, "dataDropletSize": "s-1vcpu-2gb"}}
    assert data_resize_warning("prod", previous, "s-1vcpu-2gb") is None
    assert data_resize_warning("prod", None, "s-2vcpu-4gb") is None
    assert data_resize_warning("prod", previous, "s-2vcpu-4gb") == (
        'devtools:dataDropletSize "s-1vcpu-2gb" -> "s-2vcpu-4gb": DigitalOcean powers off the data droplet of stack '
        "prod to resize it: both colors lose the data tier until it is back, and its disk never shrinks")


def test_the_volume_is_named_as_digitalocean_allows_and_the_data_droplet_is_tagged_apart_from_the_colors():
    """A volume name is lowercase letters, digits and -, a letter first, 64 at most; its device is named after it.
    The data droplet carries the stack tag (an SSH lease reaches it), never a color's or the web tag."""
    assert volume_name(StackIdentity("devtools", "prod", "green")) == "devtools-prod-data"
    assert volume_name(StackIdentity("devtools", "Staging_2.eu", "green")) == "devtools-staging-2-eu-data"
    assert volume_name(StackIdentity("9tools", "prod", "green")) == "v-9tools-prod-data"
    long = volume_name(StackIdentity("devtools", "s" * 80, "green"))
    assert len(long) == 64 and long.startswith("devtools-sss")
    assert volume_snapshot_name(StackIdentity("devtools", "prod", "green"), 3) == "devtools-prod-data-g3"
    tags = data_tags(StackIdentity("devtools", "prod", "green"))
    assert tags == ["devtools", "devtools-prod", "devtools-data"]
    assert not set(tags) & {"devtools-web", "devtools-green", "devtools-blue"}
