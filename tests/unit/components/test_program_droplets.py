"""prod and blue on DigitalOcean under Pulumi's mocks: the deploy key, the backup snapshot, what a standby is built
from and takes from prod instead of declaring it again."""

from __future__ import annotations

import functools
from typing import Any

import pulumi
import pytest

from components.ssh_keys import md5_fingerprint
from tests.ssh_test_keys import DEPLOY_FINGERPRINT, HOST_PUBLIC_KEY, OTHER_DEPLOY_PUBLIC_KEY
from tests.unit.components.program_harness import Registration, World
from tests.unit.components.program_stacks import (
    COLOR_DROPLET,
    COMMAND,
    DROPLET,
    IMAGE,
    REGISTRY,
    SNAPSHOT,
    prod_outputs,
    run_stack,
)

SSH_KEY = "digitalocean:index/sshKey:SshKey"


@functools.cache
def _plain(stack: str) -> World:
    """prod, or blue following prod's usual outputs, as the stack files set them: one run per process, shared by
    the tests (which only read it)."""
    return run_stack(stack, others={"prod": prod_outputs()} if stack == "blue" else None)


def test_prod_uploads_the_deploy_key_once_and_exports_its_fingerprint():
    """prod owns the account's one upload of the deploy key; standbys refer to it by the fingerprint it exports."""
    world = _plain("prod")
    key = world.one(SSH_KEY)
    assert world.exports_plain["sshKeyFingerprint"] == key.outputs["fingerprint"]
    assert world.one(DROPLET, COLOR_DROPLET).inputs["sshKeys"] == [key.outputs["fingerprint"]]
    assert world.one(DROPLET, "data-host").inputs["sshKeys"] == [key.outputs["fingerprint"]]


def test_blue_declares_no_ssh_key_and_uses_prods():
    """DigitalOcean refuses a second upload of the same public key (422 "SSH Key is already in use"): blue's first
    `pulumi up` failed there. Blue declares no key and its droplets take the one prod uploaded."""
    world = _plain("blue")
    assert world.of_type(SSH_KEY) == []
    assert world.one(DROPLET, COLOR_DROPLET).inputs["sshKeys"] == [DEPLOY_FINGERPRINT]
    assert "sshKeyFingerprint" not in world.exports_plain


def test_blue_with_another_public_key_than_prods_is_refused():
    """Blue's droplets get prod's key while blue's rollout signs in with blue's own private key: different keys
    would fail every SSH dial ten minutes later. The program refuses at once, naming both fingerprints."""
    with pytest.raises(Exception, match=(
            r"devtools:sshPublicKey of this stack is not the deploy key stack prod uploaded \(fingerprint "
            + DEPLOY_FINGERPRINT + r"\); standbys use prod's key: set the same devtools:sshPublicKey and "
            r"devtools:sshPrivateKey as stack prod")):
        run_stack("blue", overrides={"sshPublicKey": OTHER_DEPLOY_PUBLIC_KEY}, others={"prod": prod_outputs()})


def test_blue_before_prod_uploaded_a_key_fails_clearly():
    outputs = {k: v for k, v in prod_outputs().items() if k != "sshKeyFingerprint"}
    with pytest.raises(Exception, match=r"stack prod exports no sshKeyFingerprint: run `pulumi up --stack prod` "
                                        r"first \(it uploads the deploy key standbys use\)"):
        run_stack("blue", others={"prod": outputs})


def _gate(world: World) -> Registration:
    """The primary's gate (the colors' rollout is `release`; the data tier's is `data-release`)."""
    return next(r for r in world.of_type(COMMAND) if r.name.startswith("release-") and r.name.endswith("-validate-run"))


def test_the_backup_snapshot_is_taken_after_the_primarys_validation():
    """The snapshot depended on the droplet alone, so DigitalOcean imaged the primary while cloud-init was still
    installing packages. It is a backup image of a validated primary now: it waits for the primary's gate."""
    world = _plain("prod")
    snap = world.one(SNAPSHOT)
    assert world.depends_on(snap, _gate(world))
    assert snap.inputs["dropletId"] == world.one(DROPLET, COLOR_DROPLET).outputs["id"]


def test_blue_is_built_from_the_base_image_and_cloud_init_never_from_a_snapshot():
    """A snapshot of the primary carried green's running containers, its secrets file and its data into blue.
    Standbys boot the base image with the same cloud-init as the primary, whatever prod exports."""
    droplet = _plain("blue").one(DROPLET, COLOR_DROPLET)
    assert droplet.inputs["image"] == "ubuntu-24-04-x64"
    assert droplet.inputs["userData"] == _plain("prod").one(DROPLET, COLOR_DROPLET).inputs["userData"]


FORCE_NEW = {"image", "region", "sshKeys", "userData", "monitoring", "vpcUuid", "publicNetworking", "dropletAgent",
             "gpuPartitionMode"}
"""The droplet arguments DigitalOcean replaces a droplet for (ForceNew in terraform-provider-digitalocean's
resource_droplet.go, which pulumi-digitalocean bridges)."""


def _replacing_changes(before: Registration, after: Registration) -> set[str]:
    """The inputs that differ between two runs, would replace the droplet, and are not ignored."""
    changed = {k for k in set(before.inputs) | set(after.inputs) if before.inputs.get(k) != after.inputs.get(k)}
    return (changed & FORCE_NEW) - set(after.ignore_changes)


def _blue(overrides: dict[str, str] | None = None, live: str = "green", previous: dict[str, Any] | None = None
          ) -> World:
    """blue, with prod serving `live` and blue's own last export `previous` (default: blue as it is now)."""
    if previous is None:
        previous = _plain("blue").exports_plain["hosts"]
    return run_stack("blue", overrides=overrides, others={"prod": {**prod_outputs(), "liveColor": live},
                                                          "blue": {"hosts": previous}})


def test_a_deploy_key_rotation_replaces_no_droplet():
    """Keys reach a droplet when it is created; a new deploy key reaches existing droplets over SSH (docs/runbook).
    A changed ssh_keys input would replace every droplet: protect fails prod's update, and blue would be rebuilt
    while it may serve traffic. Both colors ignore it, and so does the data droplet."""
    before, after = _plain("prod"), run_stack("prod", overrides={"sshPublicKey": OTHER_DEPLOY_PUBLIC_KEY})
    for droplet in (COLOR_DROPLET, "data-host"):
        old, new = before.one(DROPLET, droplet), after.one(DROPLET, droplet)
        assert old.inputs["sshKeys"] != new.inputs["sshKeys"]  # the key did rotate
        assert _replacing_changes(old, new) == set()
    rotated = {**prod_outputs(), "sshKeyFingerprint": md5_fingerprint(OTHER_DEPLOY_PUBLIC_KEY)}
    blue_before = _plain("blue").one(DROPLET, COLOR_DROPLET)
    blue_after = run_stack("blue", overrides={"sshPublicKey": OTHER_DEPLOY_PUBLIC_KEY}, others={"prod": rotated})
    assert _replacing_changes(blue_before, blue_after.one(DROPLET, COLOR_DROPLET)) == set()


@pytest.mark.parametrize("stack", ["prod", "blue"])
def test_every_replacing_input_is_ignored_or_guarded(stack):
    """Each ForceNew input the droplets set is either ignored (fixed at creation) or in the exported shape the next
    update compares against (where a change is refused while the droplets must not be replaced)."""
    world = _plain(stack)
    droplet = world.one(DROPLET, COLOR_DROPLET)
    shape = world.exports_plain["hosts"]["shape"]
    guarded = {"region": "region", "monitoring": "monitoring",
               "vpcUuid": "vpcIpRange" if stack == "prod" else "vpc", "image": "dropletImage"}
    for name in set(droplet.inputs) & FORCE_NEW - set(droplet.ignore_changes):
        assert guarded[name] in shape, name


def test_the_vpc_leaves_its_range_to_digitalocean_by_default():
    """A fixed 10.110.0.0/20 collided with the account's default VPCs; DigitalOcean picks a free range instead."""
    assert _plain("prod").one("digitalocean:index/vpc:Vpc").inputs == {"name": "devtools-prod", "region": "nyc3"}


def test_a_size_change_warns_that_it_powers_off_and_cannot_shrink(monkeypatch):
    """Resizing is done in place, but DigitalOcean powers the droplets off for it, and the disk only grows: the
    preview says so before anyone runs the update."""
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *_a, **_k: warnings.append(message))
    previous = _plain("prod").exports_plain["hosts"]
    assert warnings == []
    run_stack("prod", overrides={"dropletSize": "s-4vcpu-8gb"}, others={"prod": {"hosts": previous}})
    assert warnings == [
        'devtools:dropletSize "s-2vcpu-4gb" -> "s-4vcpu-8gb": DigitalOcean powers off every droplet of stack prod '
        "to resize it (all at once: this color serves nothing until they are back), and the disk grows with the "
        "size and never shrinks: a size with a smaller disk is refused from then on"]


def test_a_change_that_would_replace_protected_droplets_is_refused_naming_the_key():
    """The engine's own refusal (the resource is protected) invites removing the protection, which deletes the
    volumes with the droplets. The program refuses first, naming the key and the safe way to move."""
    previous = _plain("prod").exports_plain["hosts"]
    with pytest.raises(Exception) as err:
        run_stack("prod", overrides={"region": "fra1", "monitoring": "false"}, others={"prod": {"hosts": previous}})
    assert ('refusing to change devtools:region "nyc3" -> "fra1", devtools:monitoring true -> false on stack prod: '
            "DigitalOcean replaces (or for a smaller hostCount, deletes) droplets for that, and these are protected: "
            "they hold the data. Put the old value back; to move, bring up the other color with the new value and "
            "flip traffic to it") in str(err.value)
    refused = err.value.registrations  # type: ignore[attr-defined]
    assert not [r for r in refused if r.type in (DROPLET, "digitalocean:index/vpc:Vpc")]


def test_an_idle_standby_is_rebuilt_from_a_new_image():
    """blue holds no traffic: a new base image replaces its droplets (not protected, image not ignored)."""
    world = _blue({"dropletImage": "ubuntu-25-04-x64"}, live="green")
    droplet = world.one(DROPLET, COLOR_DROPLET)
    assert droplet.inputs["image"] == "ubuntu-25-04-x64"
    assert not droplet.protect and "image" not in droplet.ignore_changes


@pytest.mark.parametrize(("overrides", "what"), [
    ({"dropletImage": "ubuntu-25-04-x64", "hostCount": "2"},
     'devtools:dropletImage "ubuntu-24-04-x64" -> "ubuntu-25-04-x64"'),
    ({"hostCount": "1"}, "devtools:hostCount 2 -> 1"),
], ids=["image", "fewer hosts"])
def test_a_live_standby_is_never_replaced(overrides, what):
    """While prod's load balancer sends users to blue, a change that replaces (or removes) blue's droplets is
    refused before any droplet changes, with the way out: flip traffic back first."""
    previous = _blue({"hostCount": "2"}, live="blue").exports_plain["hosts"]
    with pytest.raises(Exception) as err:
        _blue(overrides, live="blue", previous=previous)
    assert (f"refusing to change {what} on stack blue while blue serves traffic (liveColor on stack prod is "
            "blue): DigitalOcean would replace (or delete) the droplets users are sent to. Flip traffic away first "
            "(`python -m ops.cli flip green --stack prod`), or put the old value back") in str(err.value)
    assert not [r for r in err.value.registrations if r.type == DROPLET]  # type: ignore[attr-defined]


def test_prod_adopting_the_accounts_registry_pushes_there_and_creates_none():
    """The documented first deploy on an account that has a registry: prod builds into it, by its name."""
    world = run_stack("prod", overrides={"registryAdopt": "true", "registryName": "legacy-registry"})
    docr = world.one(REGISTRY)
    assert docr.read_id == "legacy-registry"
    assert all(i.inputs["tags"][0].startswith("registry.digitalocean.com/legacy-registry/")
               for i in world.of_type(IMAGE))
    assert world.exports_plain["registry"]["address"] == "registry.digitalocean.com/legacy-registry"


@pytest.mark.parametrize("stack", ["prod", "blue"])
def test_every_connection_pins_the_stacks_host_key_and_ops_reads_it(stack):
    """The command provider accepted any host key, and ops.cli trusted the first key it saw. Every remote command
    now pins the public half of the host key cloud-init installed, and the `hosts` output carries it for ops.cli's
    known_hosts (StrictHostKeyChecking=yes)."""
    world = _plain(stack)
    commands = world.of_type(COMMAND)
    assert commands and {c.inputs["connection"]["hostKey"] for c in commands} == {HOST_PUBLIC_KEY}
    assert world.exports_plain["hosts"]["sshHostKey"] == HOST_PUBLIC_KEY
    assert world.one(DROPLET, COLOR_DROPLET).secret_input("userData")
