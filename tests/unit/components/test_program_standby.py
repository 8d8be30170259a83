"""The standby stack (blue) under Pulumi's mocks: what it takes from prod instead of declaring it again."""

from __future__ import annotations

import pytest

from tests.ssh_test_keys import DEPLOY_FINGERPRINT, OTHER_DEPLOY_PUBLIC_KEY
from tests.unit.components.program_stacks import DROPLET, prod_outputs, run_stack

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
