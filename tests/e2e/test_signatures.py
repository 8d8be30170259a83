"""Signed images end to end on the stand-in (registry 2.8, dockerd, sshd, the pinned cosign on the host): a release
whose every image is signed applies with signatures required, and the registry holds each signature next to its
image; a release with one image pushed without a signature, or signed by a key the release does not accept, is
refused before anything changes (exit 2, the service and the reason named, the previous release serving with the
same containers, one audit entry); during a rotation a release signed by either key applies, and once the old key is
removed its images are refused.

The tests share one compose project and run in file order.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent.containers import PROJECT_LABEL
from standin import localenv
from tests.cosign_keys import KeyPair, key_pair, registry_holds_signature
from tests.e2e.conftest import Host, build_release
from tests.e2e.releases import Serving, changed_app, variant

PROJECT, PREFIX = "signed", "86"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    home = tmp_path_factory.mktemp("cosign-keys")
    return {"old": key_pair(home, "old"), "new": key_pair(home, "new")}


@pytest.fixture(scope="module")
def serving(local_env: localenv.LocalEnv, host: Host, keys: dict[str, KeyPair]) -> Serving:
    pins = build_release(local_env, "signed-base")
    for ref in pins["images"].values():
        keys["old"].sign(ref)
    s = Serving(host, PROJECT, PREFIX, pins, public_keys=(keys["old"].public,))
    proc = s.ship(pins)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "signatures of signed-base: 9 images verified" in proc.stdout + proc.stderr
    s.write_marker()
    s.assert_serving()
    return s


def containers() -> dict[str, tuple[str, str]]:
    """Each running container of the project: (id, started at)."""
    ids = subprocess.run(["docker", "ps", "-q", "--filter", f"label={PROJECT_LABEL}={PROJECT}"],
                         capture_output=True, text=True, check=True).stdout.split()
    inspected = json.loads(subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True,
                                          check=True).stdout)
    return {c["Name"]: (c["Id"], c["State"]["StartedAt"]) for c in inspected}


def refused(serving: Serving, pins: dict[str, Any], keys: tuple[Path, ...]) -> str:
    """Ship `pins` requiring `keys`, expecting a refusal that changes nothing; returns the run's output."""
    before, events = containers(), len(serving.host.audit(PROJECT))
    proc = serving.host.ship(pins, PROJECT, "--validate-deadline", "20", env={"HOST_PORT_PREFIX": PREFIX},
                             public_keys=keys)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "pulled images of" not in out and f"release {pins['release']} written" not in out, out
    assert containers() == before  # not one container restarted or replaced
    new = serving.host.audit(PROJECT)[events:]
    assert [(e["event"], e.get("release")) for e in new] == [("apply.refused", pins["release"])], new
    serving.assert_serving()
    return out


def test_a_signed_release_applies_and_the_registry_holds_every_signature(serving: Serving) -> None:
    """Rule: signatures are OCI artifacts next to the image. Risk: a signature that exists only where it was made."""
    assert all(registry_holds_signature(ref) for ref in serving.pins["images"].values())
    assert serving.host.status(PROJECT)["services"]["gateway-mcp"]["signature"] == {"verified": True,
                                                                                    "detail": "signed"}


def test_an_image_pushed_without_a_signature_is_refused_before_anything_changes(
        local_env: localenv.LocalEnv, serving: Serving, keys: dict[str, KeyPair], tmp_path: Path) -> None:
    """Risk: a digest pushed with the registry's credentials alone (no signing key) runs on the hosts."""
    pins = variant(local_env, serving.pins, "signed-unsigned", "cicd",
                   app_root=changed_app(tmp_path, "cicd", "unsigned"))
    assert not registry_holds_signature(pins["images"]["cicd"])
    out = refused(serving, pins, (keys["old"].public,))
    assert (f"release signed-unsigned refused, nothing changed: 1 of 9 images failed signature verification: cicd "
            f"({pins['images']['cicd']}): unsigned: the registry holds no signature for this digest") in out, out


def test_an_image_signed_by_another_key_is_refused(local_env: localenv.LocalEnv, serving: Serving,
                                                   keys: dict[str, KeyPair], tmp_path: Path) -> None:
    pins = variant(local_env, serving.pins, "signed-otherkey", "documentation",
                   app_root=changed_app(tmp_path, "documentation", "otherkey"))
    keys["new"].sign(pins["images"]["documentation"])
    out = refused(serving, pins, (keys["old"].public,))
    assert (f"documentation ({pins['images']['documentation']}): signed by another key, or the signature is not of "
            "this digest") in out, out
    assert "1 of 9 images failed" in out


def test_during_a_rotation_both_keys_apply_and_a_removed_key_refuses_its_images(
        local_env: localenv.LocalEnv, serving: Serving, keys: dict[str, KeyPair], tmp_path: Path) -> None:
    """Rotation: the new key signs while both are accepted; then the old key is removed and what only it signed
    is refused. Risk: a rotation that needs a flag day, or a removed key that still lets its images in."""
    both = (keys["old"].public, keys["new"].public)
    pins = variant(local_env, serving.pins, "signed-rotation", "feature-dev",
                   app_root=changed_app(tmp_path, "feature-dev", "rotation"))
    keys["new"].sign(pins["images"]["feature-dev"])
    proc = serving.host.ship(pins, PROJECT, "--validate-deadline", "20", "--wait-timeout", "40",
                             env={"HOST_PORT_PREFIX": PREFIX}, public_keys=both)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    serving.pins = pins
    serving.assert_serving()

    # the old key removed: the eight images only it signed are refused, the new key's image is not named
    later = {**pins, "release": "signed-oldkey-removed"}
    out = refused(serving, later, (keys["new"].public,))
    assert "8 of 9 images failed signature verification" in out, out
    assert "feature-dev (" not in out and "gateway-mcp (" in out
