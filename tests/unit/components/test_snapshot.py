"""The primary's snapshot: named by generation, taken of the given droplet, and never deleted with the config."""

from collections.abc import Callable
from typing import Any

import pulumi

from components.snapshot import Snapshot, SnapshotArgs, snapshot_name
from tests.unit.components.program_harness import World, run_components
from tests.unit.components.stack_configs import make_config

DROPLET_SNAPSHOT = "digitalocean:index/dropletSnapshot:DropletSnapshot"


def run_snapshot(droplet_id: Callable[[], Any], name: str = "devtools-prod-primary-g1"
                 ) -> tuple[World, dict[str, Any]]:
    """Declare the Snapshot (droplet_id() is called inside the program: Outputs belong to its event loop)."""
    seen: dict[str, Any] = {}

    def program() -> None:
        snap = Snapshot("snapshot", SnapshotArgs(droplet_id=droplet_id(), name=name))
        seen["name"] = snap.name
        snap.snapshot_id.apply(lambda v: seen.__setitem__("snapshot_id", v))

    return run_components(program), seen


def test_snapshot_name_carries_stack_and_generation():
    """A new generation must be a new name: DO replaces the snapshot and the old one stays (retained)."""
    assert snapshot_name(make_config().identity, 1) == "devtools-prod-primary-g1"
    assert snapshot_name(make_config().identity, 7) == "devtools-prod-primary-g7"
    assert snapshot_name(make_config(stack="staging").identity, 1) == "devtools-staging-primary-g1"
    cfg = make_config(snapshotGeneration="7")  # the generation the program passes is the config's
    assert snapshot_name(cfg.identity, cfg.snapshot_generation) == "devtools-prod-primary-g7"


def test_snapshot_of_the_given_droplet_with_the_given_name():
    """The snapshot must be of the primary: an int droplet id (as Hosts exports it) is sent as the string DO takes."""
    world, seen = run_snapshot(lambda: pulumi.Output.from_input(400004), name="devtools-prod-primary-g3")
    snap = world.one(DROPLET_SNAPSHOT)
    assert snap.inputs == {"dropletId": "400004", "name": "devtools-prod-primary-g3"}
    assert snap.name == "snapshot-image"
    assert seen["name"] == "devtools-prod-primary-g3"
    assert seen["snapshot_id"].startswith("snap-")


def test_string_droplet_id_is_passed_through():
    """A droplet id already a string (e.g. read from another stack) is used as is."""
    world, _ = run_snapshot(lambda: "400009")
    assert world.one(DROPLET_SNAPSHOT).inputs["dropletId"] == "400009"


def test_snapshot_is_retained_on_delete_and_parented():
    """Blue droplets were created from this image: removing the config must not delete it."""
    world, _ = run_snapshot(lambda: 400004)
    snap = world.one(DROPLET_SNAPSHOT)
    assert snap.retain_on_delete
    assert snap.parent == world.one("devtools:index:Snapshot").urn


def test_snapshot_waits_for_what_it_is_given():
    """A backup image of a validated primary: the program hands it the primary's validation gate to wait for."""
    seen: dict[str, Any] = {}

    def program() -> None:
        gate = pulumi.CustomResource("test:index:Gate", "gate")
        Snapshot("snapshot", SnapshotArgs(droplet_id=400004, name="devtools-prod-primary-g1", wait_for=[gate]))
        seen["gate"] = gate

    world = run_components(program)
    assert world.depends_on(world.one(DROPLET_SNAPSHOT), world.one("test:index:Gate"))
