"""components.images: one pushed, digest-pinned image per service, with a registry cache, under Pulumi mocks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.catalog import load_service_catalog
from components.config import StackConfig
from components.images import (
    ServiceImages,
    ServiceImagesArgs,
    cache_ref,
    digest_ref,
    oci_labels,
    release_metadata,
    release_tag,
)
from tests.compose_services import SERVICES
from tests.unit.components.program_harness import World, run_components, secret_leaks
from tests.unit.components.stack_configs import COMMIT, make_config, make_local_config

ROOT = Path(__file__).resolve().parents[3]
IMAGE = "docker-build:index:Image"
DOCR = "registry.digitalocean.com/devtools"
DIGEST = "sha256:" + "0123456789abcdef" * 4
PUSH_PASSWORD = "dop_v1_push_password_for_tests"


def run_images(config: StackConfig, *, address: str = DOCR, server: str = "registry.digitalocean.com",
               creds: bool = True, release_id: str = COMMIT, stamp_revision: bool = False) -> World:
    catalog = load_service_catalog(ROOT / "compose", config.build.app_root)

    def program() -> None:
        images = ServiceImages("images", ServiceImagesArgs(
            build=config.build, repo_prefix=config.registry.repo_prefix, catalog=catalog, registry_address=address,
            registry_server=server,
            push_username="push-user" if creds else None, push_password=PUSH_PASSWORD if creds else None,
            release_id=release_id, commit="1a2b3c4d5e6f", built_at="2025-01-02T03:04:05+00:00",
            ci_run_url="https://ci.example/run/7", stamp_revision=stamp_revision))
        pulumi.export("images", images.images)
        pulumi.export("metadata", images.metadata)

    return run_components(program)


def test_pure_names_are_exact() -> None:
    """Tags are for humans, digests for hosts, one cache per repository: the names must never drift."""
    repo = "registry.digitalocean.com/devtools/gateway-mcp"
    assert release_tag(repo, "1a2b3c4") == "registry.digitalocean.com/devtools/gateway-mcp:1a2b3c4"
    assert cache_ref(repo) == "registry.digitalocean.com/devtools/gateway-mcp:buildcache"
    assert digest_ref(repo, DIGEST) == f"registry.digitalocean.com/devtools/gateway-mcp@{DIGEST}"


@pytest.mark.parametrize("digest", ["", "sha256:abc", "sha512:" + "0" * 64, DIGEST.upper(), DIGEST + "0"])
def test_digest_ref_refuses_anything_but_a_sha256(digest: str) -> None:
    """Hosts run digest pins only; a tag or truncated digest in the release would be refused on the host."""
    with pytest.raises(ValueError, match="not sha256:<64 hex>"):
        digest_ref("r/s", digest)


def test_oci_labels_are_release_independent_unless_stamped() -> None:
    """Labels that change every release give every image a new digest, so hosts would recreate all nine
    containers for a one-service change; revision/version are baked in only on request."""
    assert oci_labels("cicd", "1a2b3c4", "1a2b3c4d5e", stamp_revision=False) == {
        "org.opencontainers.image.title": "cicd"}
    assert oci_labels("cicd", "1a2b3c4", "1a2b3c4d5e", stamp_revision=True) == {
        "org.opencontainers.image.title": "cicd", "org.opencontainers.image.version": "1a2b3c4",
        "org.opencontainers.image.revision": "1a2b3c4d5e"}
    assert oci_labels("cicd", "v1", None, stamp_revision=True) == {
        "org.opencontainers.image.title": "cicd", "org.opencontainers.image.version": "v1"}


def test_release_metadata_is_sorted_and_complete() -> None:
    """The release's provenance output is the same document for the same release (stable diffs)."""
    assert release_metadata("r1", {"b": "x/b:r1", "a": "x/a:r1"}, {"b": DIGEST, "a": DIGEST}, commit="c0ffee",
                            built_at="2025-01-02T03:04:05+00:00", ci_run_url=None) == {
        "release": "r1", "tags": {"a": "x/a:r1", "b": "x/b:r1"}, "digests": {"a": DIGEST, "b": DIGEST},
        "commit": "c0ffee", "built_at": "2025-01-02T03:04:05+00:00", "ci_run_url": None}
    assert list(release_metadata("r1", {"b": "1", "a": "2"}, {}, commit=None, built_at=None,
                                 ci_run_url=None)["tags"]) == ["a", "b"]


def test_one_pushed_image_per_service_retained_on_delete() -> None:
    """Every service gets its image pushed; images are retained on delete because a rollback needs them."""
    world = run_images(make_config())
    images = world.of_type(IMAGE)
    assert sorted(r.name for r in images) == sorted(f"images-{s}" for s in SERVICES)
    component = world.one("devtools:index:ServiceImages")
    for reg in images:
        service = reg.name.removeprefix("images-")
        assert reg.parent == component.urn
        assert reg.retain_on_delete, reg.name
        assert reg.inputs["push"] is True
        assert reg.inputs["tags"] == [f"{DOCR}/{service}:1a2b3c4"]
        assert reg.inputs["tags"][0].endswith(":1a2b3c4")


def test_build_inputs_come_from_the_catalog() -> None:
    """Context, Dockerfile and args come from docker-compose.override.yml under devtools:appRoot."""
    world = run_images(make_config(buildPlatform="linux/arm64"))
    app = ROOT / "examples" / "app"
    reg = world.one(IMAGE, "images-rag-context")
    assert reg.inputs["context"] == {"location": str(app)}
    assert reg.inputs["dockerfile"] == {"location": str(app / "Dockerfile")}
    assert reg.inputs["buildArgs"] == {"SERVICE": "rag-context"}
    assert reg.inputs["platforms"] == ["linux/arm64"]
    assert reg.inputs["labels"] == {"org.opencontainers.image.title": "rag-context"}


def test_registry_cache_per_repository() -> None:
    """Unchanged services rebuild from the registry cache (mode max keeps every stage's layers)."""
    reg = run_images(make_config()).one(IMAGE, "images-cicd")
    ref = f"{DOCR}/cicd:buildcache"
    assert reg.inputs["cacheFrom"] == [{"registry": {"ref": ref}}]
    [cache_to] = reg.inputs["cacheTo"]
    assert cache_to["registry"]["ref"] == ref
    assert cache_to["registry"]["mode"] == "max"
    assert cache_to["registry"]["imageManifest"] is True
    assert cache_to["registry"]["ociMediaTypes"] is True


def test_build_on_preview_follows_config() -> None:
    """`pulumi preview` does not build by default (a PR preview must not need a docker engine)."""
    assert run_images(make_config()).one(IMAGE, "images-cicd").inputs["buildOnPreview"] is False
    world = run_images(make_config(buildOnPreview="true"))
    assert all(r.inputs["buildOnPreview"] is True for r in world.of_type(IMAGE))


def test_push_login_is_secret() -> None:
    """The registry password reaches the build only as a secret; plain, it would land in state and diffs."""
    world = run_images(make_config())
    for reg in world.of_type(IMAGE):
        assert reg.secret_input("registries"), reg.name  # the SDK marks the whole list holding a secret
        assert reg.inputs["registries"] == [{"address": "registry.digitalocean.com", "username": "push-user",
                                             "password": PUSH_PASSWORD}]
    assert secret_leaks(world, [PUSH_PASSWORD]) == []


def test_existing_registry_without_login() -> None:
    """The local registry needs no login: no registries entry, repos under its address and repoPrefix."""
    world = run_images(make_local_config(), address="127.0.0.1:5000", server="127.0.0.1:5000", creds=False)
    reg = world.one(IMAGE, "images-gateway-mcp")
    assert "registries" not in reg.inputs
    assert reg.inputs["tags"] == ["127.0.0.1:5000/devtools/gateway-mcp:1a2b3c4"]
    assert "cacheFrom" not in reg.inputs and "cacheTo" not in reg.inputs  # buildCache false on the stand-in
    cached = run_images(make_local_config(buildCache="true"), address="127.0.0.1:5000", server="127.0.0.1:5000",
                        creds=False).one(IMAGE, "images-gateway-mcp")
    assert cached.inputs["cacheFrom"] == [{"registry": {"ref": "127.0.0.1:5000/devtools/gateway-mcp:buildcache"}}]


def test_build_cache_can_be_turned_off() -> None:
    """A plain docker engine (the `docker` BuildKit driver) cannot export a cache: with buildCache false the images
    declare none, so the build does not fail on a cache export."""
    world = run_images(make_config(buildCache="false"))
    for image in world.of_type(IMAGE):
        assert "cacheFrom" not in image.inputs and "cacheTo" not in image.inputs


def test_images_output_pins_every_service_by_the_built_digest() -> None:
    """The release is service → repo@sha256 of exactly the image that was pushed; hosts run nothing else."""
    world = run_images(make_local_config(), address="127.0.0.1:5000", server="127.0.0.1:5000", creds=False)
    images: dict[str, str] = world.exports_plain["images"]
    assert set(images) == set(SERVICES)
    for service, pin in images.items():
        assert re.fullmatch(rf"127\.0\.0\.1:5000/devtools/{service}@sha256:[0-9a-f]{{64}}", pin), pin
        digest = world.one(IMAGE, f"images-{service}").outputs["digest"]
        assert pin == f"127.0.0.1:5000/devtools/{service}@{digest}"


def test_metadata_output() -> None:
    """The release output records tags, digests and provenance passed in (the program reads no clock)."""
    world = run_images(make_config())
    meta: dict[str, Any] = world.exports_plain["metadata"]
    digests = {s: world.one(IMAGE, f"images-{s}").outputs["digest"] for s in SERVICES}
    assert meta == {
        "release": "1a2b3c4",
        "tags": {s: f"{DOCR}/{s}:1a2b3c4" for s in sorted(SERVICES)},
        "digests": {s: digests[s] for s in sorted(SERVICES)},
        "commit": "1a2b3c4d5e6f", "built_at": "2025-01-02T03:04:05+00:00", "ci_run_url": "https://ci.example/run/7",
    }


def test_a_new_release_changes_only_the_tags() -> None:
    """Between two releases nothing but the tag of a service's build changes, so an unchanged service can keep
    its digest (from cache) and its container is not recreated."""
    before = {r.name: r.inputs for r in run_images(make_config(), release_id="r1").of_type(IMAGE)}
    after = {r.name: r.inputs for r in run_images(make_config(), release_id="r2").of_type(IMAGE)}
    for name, inputs in before.items():
        assert {k: v for k, v in inputs.items() if k != "tags"} == \
               {k: v for k, v in after[name].items() if k != "tags"}, name
        assert inputs["tags"] != after[name]["tags"]


def test_stamped_labels_reach_the_build() -> None:
    """With stamp_revision the OCI revision/version labels are set on every image."""
    reg = run_images(make_config(), stamp_revision=True).one(IMAGE, "images-cicd")
    assert reg.inputs["labels"] == {"org.opencontainers.image.title": "cicd",
                                    "org.opencontainers.image.version": "1a2b3c4",
                                    "org.opencontainers.image.revision": "1a2b3c4d5e6f"}


def test_half_a_login_is_refused() -> None:
    """A username without a password (or the reverse) is a wiring mistake; the push would fail unauthorised."""
    config = make_config()
    catalog = load_service_catalog(ROOT / "compose", config.build.app_root)

    def program() -> None:
        ServiceImages("images", ServiceImagesArgs(
            build=config.build, repo_prefix=config.registry.repo_prefix, catalog=catalog, registry_address=DOCR,
            registry_server="registry.digitalocean.com",
            push_username="u", push_password=None, release_id="r", commit=None, built_at=None, ci_run_url=None))

    with pytest.raises(Exception, match="push_username and push_password are given together or not at all"):
        run_components(program)


def test_builder_is_named_only_when_configured() -> None:
    """The provider's default builder unless buildBuilder names one (the stand-in's buildkitd: devtools-local)."""
    assert "builder" not in run_images(make_config()).one(IMAGE, "images-cicd").inputs
    world = run_images(make_config(buildBuilder="devtools-local"))
    images = world.of_type(IMAGE)
    assert len(images) == len(SERVICES) and all(r.inputs["builder"] == {"name": "devtools-local"} for r in images)
