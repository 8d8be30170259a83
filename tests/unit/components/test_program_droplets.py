"""prod and blue on DigitalOcean under Pulumi's mocks: the deploy key, the backup snapshot, what a standby is built
from and takes from prod instead of declaring it again."""

from __future__ import annotations

import pytest

from tests.ssh_test_keys import DEPLOY_FINGERPRINT, OTHER_DEPLOY_PUBLIC_KEY
from tests.unit.components.program_harness import Registration, World
from tests.unit.components.program_stacks import COMMAND, DROPLET, SNAPSHOT, prod_outputs, run_stack

SSH_KEY = "digitalocean:index/sshKey:SshKey"


def test_prod_uploads_the_deploy_key_once_and_exports_its_fingerprint():
    """prod owns the account's one upload of the deploy key; standbys refer to it by the fingerprint it exports."""
    world = run_stack("prod")
    key = world.one(SSH_KEY)
    assert world.exports_plain["sshKeyFingerprint"] == key.outputs["fingerprint"]
    assert world.one(DROPLET).inputs["sshKeys"] == [key.outputs["fingerprint"]]


def test_blue_declares_no_ssh_key_and_uses_prods():
    """DigitalOcean refuses a second upload of the same public key (422 "SSH Key is already in use"): blue's first
    `pulumi up` failed there. Blue declares no key and its droplets take the one prod uploaded."""
    world = run_stack("blue", others={"prod": prod_outputs()})
    assert world.of_type(SSH_KEY) == []
    assert world.one(DROPLET).inputs["sshKeys"] == [DEPLOY_FINGERPRINT]
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
    return next(r for r in world.of_type(COMMAND) if r.name.endswith("-validate-run"))


def test_the_backup_snapshot_is_taken_after_the_primarys_validation():
    """The snapshot depended on the droplet alone, so DigitalOcean imaged the primary while cloud-init was still
    installing packages. It is a backup image of a validated primary now: it waits for the primary's gate."""
    world = run_stack("prod")
    snap = world.one(SNAPSHOT)
    assert world.depends_on(snap, _gate(world))
    assert snap.inputs["dropletId"] == world.one(DROPLET).outputs["id"]


def test_blue_is_built_from_the_base_image_and_cloud_init_never_from_a_snapshot():
    """A snapshot of the primary carried green's running containers, its secrets file and its data into blue.
    Standbys boot the base image with the same cloud-init as the primary, whatever prod exports."""
    prod = run_stack("prod")
    outputs = {**prod_outputs(), "registryPullAuth": prod.exports_plain["registryPullAuth"]}
    droplet = run_stack("blue", others={"prod": outputs}).one(DROPLET)
    assert droplet.inputs["image"] == "ubuntu-24-04-x64"
    assert droplet.inputs["userData"] == prod.one(DROPLET).inputs["userData"]
