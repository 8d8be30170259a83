"""ServiceImages: build and push one image per service of the catalog, and pin each by its digest.

Every image is tagged `<registry>/<prefix>/<service>:<release id>` (for humans) and pinned as
`<registry>/<prefix>/<service>@sha256:…` (what hosts run). Builds share a registry cache per repository
(`:buildcache`, mode max), so an unchanged service rebuilds from cache. Images are retained on delete: a rollback
needs the previous release's images to stay in the registry.

Per-release OCI labels (revision/version) are opt-in (`stamp_revision`): baked into the image they give every
service a new digest on every release, and the hosts would then recreate all containers instead of the changed one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_docker_build as docker_build

from agent.release import DIGEST
from components.catalog import BuildSpec, ServiceCatalog, image_repo
from components.config import BuildConfig

__all__ = ["CACHE_TAG", "ServiceImages", "ServiceImagesArgs", "cache_ref", "digest_ref", "oci_labels",
           "release_metadata", "release_tag"]

CACHE_TAG = "buildcache"


def release_tag(repo: str, release_id: str) -> str:
    """The human tag of one release's image: `<repo>:<release id>`."""
    return f"{repo}:{release_id}"


def cache_ref(repo: str) -> str:
    """The registry build cache of one repository (read and written by every build of that service)."""
    return f"{repo}:{CACHE_TAG}"


def digest_ref(repo: str, digest: str) -> str:
    """What a host runs: `<repo>@sha256:<64 hex>`; anything else is refused (hosts run digest pins only)."""
    if not DIGEST.fullmatch(digest):
        raise ValueError(f"{repo}: the build returned digest {digest!r}, not sha256:<64 hex>")
    return f"{repo}@{digest}"


def oci_labels(service: str, release_id: str, commit: str | None, stamp_revision: bool) -> dict[str, str]:
    """Image labels: the service name always; revision/version only when stamping (a new digest every release)."""
    labels = {"org.opencontainers.image.title": service}
    if stamp_revision:
        labels["org.opencontainers.image.version"] = release_id
        if commit:
            labels["org.opencontainers.image.revision"] = commit
    return labels


def release_metadata(release_id: str, tags: Mapping[str, str], digests: Mapping[str, str], *, commit: str | None,
                     built_at: str | None, ci_run_url: str | None) -> dict[str, Any]:
    """The release's provenance as a stack output: tags and digests by service (sorted), commit, time, CI run."""
    return {
        "release": release_id,
        "tags": {s: tags[s] for s in sorted(tags)},
        "digests": {s: digests[s] for s in sorted(digests)},
        "commit": commit,
        "built_at": built_at,
        "ci_run_url": ci_run_url,
    }


@dataclass(frozen=True)
class ServiceImagesArgs:
    build: BuildConfig  # platform, build on preview, registry cache, builder
    repo_prefix: str  # repository path prefix inside the registry (RegistryConfig.repo_prefix)
    catalog: ServiceCatalog
    registry_address: pulumi.Input[str]  # where repositories live (Registry.address)
    registry_server: pulumi.Input[str]  # what to log in to (Registry.server)
    push_username: pulumi.Input[str] | None  # None: the registry needs no login (local)
    push_password: pulumi.Input[str] | None
    release_id: str
    commit: str | None
    built_at: str | None  # passed in: the program reads no clock
    ci_run_url: str | None
    stamp_revision: bool = False  # bake OCI revision/version labels (every service gets a new digest)


class ServiceImages(pulumi.ComponentResource):
    images: pulumi.Output[dict[str, str]]
    """service → `<registry>/<prefix>/<service>@sha256:…`, the release's digest pins."""
    pins: dict[str, pulumi.Output[str]]
    """The same pins one by one (what components.signing signs, one command per service)."""
    metadata: pulumi.Output[dict[str, Any]]
    """The release's provenance: release, tags and digests by service, commit, built_at, ci_run_url."""

    def __init__(self, name: str, args: ServiceImagesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("devtools:index:ServiceImages", name, None, opts)
        if (args.push_username is None) != (args.push_password is None):
            raise ValueError("ServiceImages: push_username and push_password are given together or not at all")
        registries = None
        if args.push_username is not None and args.push_password is not None:
            registries = [docker_build.RegistryArgs(address=args.registry_server,
                                                    username=pulumi.Output.secret(args.push_username),
                                                    password=pulumi.Output.secret(args.push_password))]
        tags: dict[str, pulumi.Output[str]] = {}
        digests: dict[str, pulumi.Output[str]] = {}
        pins: dict[str, pulumi.Output[str]] = {}
        for service, spec in args.catalog.builds.items():
            repo = _repo(args.registry_address, args.repo_prefix, service)
            image = self._image(f"{name}-{service}", spec, repo, args, registries)
            tags[service] = repo.apply(lambda r: release_tag(r, args.release_id))
            digests[service] = image.digest
            pins[service] = pulumi.Output.all(repo=repo, digest=image.digest).apply(
                lambda v: digest_ref(v["repo"], v["digest"]))
        self.pins = pins
        self.images = _as_dict(pins)
        self.metadata = pulumi.Output.all(tags=_as_dict(tags), digests=_as_dict(digests)).apply(
            lambda v: release_metadata(args.release_id, v["tags"], v["digests"], commit=args.commit,
                                       built_at=args.built_at, ci_run_url=args.ci_run_url))
        self.register_outputs({"images": self.images, "metadata": self.metadata})

    def _image(self, resource_name: str, spec: BuildSpec, repo: pulumi.Output[str], args: ServiceImagesArgs,
               registries: list[docker_build.RegistryArgs] | None) -> docker_build.Image:
        build = args.build
        cache = repo.apply(cache_ref)
        return docker_build.Image(
            resource_name,
            push=True,
            tags=[repo.apply(lambda r: release_tag(r, args.release_id))],
            context=docker_build.BuildContextArgs(location=str(spec.context)),
            dockerfile=docker_build.DockerfileArgs(location=str(spec.dockerfile)),
            build_args=dict(spec.args),
            platforms=[docker_build.Platform(build.platform)],
            build_on_preview=build.on_preview,
            cache_from=[docker_build.CacheFromArgs(registry=docker_build.CacheFromRegistryArgs(ref=cache))]
            if build.cache else None,
            cache_to=[docker_build.CacheToArgs(registry=docker_build.CacheToRegistryArgs(
                ref=cache, mode=docker_build.CacheMode.MAX, image_manifest=True, oci_media_types=True))]
            if build.cache else None,
            registries=registries,
            builder=docker_build.BuilderConfigArgs(name=build.builder) if build.builder else None,
            labels=oci_labels(spec.service, args.release_id, args.commit, args.stamp_revision),
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
        )


def _repo(address: pulumi.Input[str], prefix: str, service: str) -> pulumi.Output[str]:
    """`<address>/<prefix>/<service>` once the registry's address is known."""
    return pulumi.Output.from_input(address).apply(lambda a: image_repo(a, prefix, service))


def _as_dict(outputs: Mapping[str, pulumi.Output[str]]) -> pulumi.Output[dict[str, str]]:
    """{service: Output[str]} → Output[{service: str}] (an empty mapping stays an empty dict)."""
    if not outputs:
        return pulumi.Output.from_input({})
    return pulumi.Output.all(**outputs).apply(lambda values: {k: str(v) for k, v in values.items()})
