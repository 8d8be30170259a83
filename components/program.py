"""The stack as one flow: registry → images → release → hosts → data tier → rollout + validation → snapshot →
traffic.

`declare(cfg, env)` is everything `__main__.py` does after reading the config; it returns the stack outputs.
Which parts exist follows from the config alone (see docs/architecture.md, "Stacks"):
  prod  builds (Registry, ServiceImages, ImageSignatures: every pushed digest signed), owns green hosts, the data
        tier (its host, volume and release), the backup snapshot and the traffic (liveColor)
  blue  never builds: release, VPC, deploy key and the data tier's addresses come from prod through a
        StackReference; its droplets boot the base image with cloud-init, like prod's
  local existing host (the SSH stand-in, which also runs the data tier), existing registry, the local proxy as the
        traffic resource
The colors run the app tier's compose file (components.tiers), with the data tier's addresses in their env.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from components.catalog import PROD_FILE, ServiceCatalog
from components.config import StackConfig
from components.data_release import DataRelease, declare_data
from components.hosts import Hosts, HostsArgs, ReplacementGuard
from components.images import ServiceImages, ServiceImagesArgs
from components.registry import Registry, RegistryArgs
from components.release import ReleaseRollout, ReleaseRolloutArgs, RolloutHost
from components.signing import ImageSignatures, ImageSignaturesArgs
from components.slo import render_rules
from components.snapshot import Snapshot, SnapshotArgs, snapshot_name
from components.sources import (
    RUNS_KEPT,
    ChosenRelease,
    build_record,
    followed_data_env,
    followed_key,
    followed_registry,
    followed_release,
    merge_history,
    merge_runs,
    pinned_release,
    release_record,
)
from components.tiers import APP, Tiers, read_tiers, tier_compose, tier_images
from components.traffic import ColorTarget, TrafficRouter, TrafficRouterArgs


@dataclass(frozen=True)
class ProgramEnv:
    """What the program knows besides the stack config (read once by __main__.py)."""

    root: Path  # the project checkout
    organization: str
    commit: str | None
    built_at: str | None
    ci_run_url: str | None
    local_endpoint: str = ""
    release_run: Mapping[str, Any] | None = None  # a finished `ops.cli release` run to add to `releaseRuns`


def stack_ref_name(name: str, org: str, project: str) -> str:
    """A StackReference name: `stack` → org/project/stack, `project/stack` → org/project/stack, a full
    `org/project/stack` as given."""
    parts = name.split("/")
    if len(parts) == 1:
        return f"{org}/{project}/{name}"
    return f"{org}/{name}" if len(parts) == 2 else name


def _references(organization: str, project: str) -> Callable[[str], pulumi.StackReference]:
    """`ref(stack)`: one StackReference per stack, made at its first use (a reference to a stack that does not exist
    fails the update, so each is made only where it is read)."""
    refs: dict[str, pulumi.StackReference] = {}

    def ref(name: str) -> pulumi.StackReference:
        if name not in refs:
            refs[name] = pulumi.StackReference(stack_ref_name(name, organization, project))
        return refs[name]

    return ref


def declare(cfg: StackConfig, catalog: ServiceCatalog, env: ProgramEnv) -> dict[str, Any]:
    services = catalog.services
    ref = _references(env.organization, cfg.project)

    prod = ref(cfg.prod_stack) if cfg.follows_prod else None
    own = ref(cfg.stack)
    outputs: dict[str, Any] = {"color": cfg.color}

    registry_name: pulumi.Input[str] | None = None  # the DigitalOcean registry hosts pull from (None: no login)
    if cfg.builds_images or prod is None:
        registry = Registry("registry", RegistryArgs(registry=cfg.registry, region=cfg.hosts.region,
                                                     protect=cfg.hosts.protect, repositories=len(catalog.builds)))
        registry_name = registry.name
        outputs["registry"] = {"address": registry.address}
        if registry.name is not None:  # a DigitalOcean registry: standbys mint pull credentials for it by name
            outputs["registry"]["name"] = registry.name
    elif not cfg.registry.address:  # a standby mints its own pull credential for the registry prod pushes to
        registry_name = prod.get_output("registry").apply(lambda r: followed_registry(cfg.prod_stack, r))

    build: Build | None = None
    if cfg.builds_images:
        build = _build(cfg, catalog, env, registry)
        outputs["buildMetadata"] = build.metadata
        outputs["build"] = build.record
    signatures = build.signatures if build is not None else []  # every host command waits for these
    if cfg.builds:
        assert build is not None
        release_id: pulumi.Input[str] = cfg.release.release_id
        image_map: pulumi.Input[Mapping[str, str]] = build.pins
        commit: pulumi.Input[str | None] = env.commit
    else:
        chosen = _chosen_release(cfg, own, prod, services)
        release_id = chosen.apply(lambda c: c.id)
        image_map = chosen.apply(lambda c: c.images)
        commit = chosen.apply(lambda c: c.commit)  # the followed release's own commit, not this checkout's

    hosts = Hosts("hosts", _hosts_args(cfg, prod, own))
    if hosts.uploaded_key is not None:
        outputs["sshKeyFingerprint"] = hosts.uploaded_key
    compose = (env.root / "compose" / PROD_FILE).read_text()
    tiers = read_tiers(compose)
    data, colors_env = _data_tier(cfg, tiers, compose, hosts, ref, images=image_map, commit=commit,
                                  registry_name=registry_name, signatures=signatures)
    if data is not None:
        outputs["data"] = data.output
    rollout = ReleaseRollout("release", ReleaseRolloutArgs(
        place=cfg.agent_place, release=cfg.release, login=cfg.ssh.login,
        hosts=[RolloutHost(n, _nth(hosts.addresses, i), hosts.ports[i], hosts.triggers[i])
               for i, n in enumerate(hosts.names)],
        release_id=release_id, images=pulumi.Output.from_input(image_map).apply(lambda m: tier_images(tiers, m, APP)),
        commit=commit, private_key=pulumi.Output.secret(cfg.ssh.private_key.value),
        wait_for=[*hosts.resources, *(data.rollout.gates if data else ())], registry_name=registry_name,
        compose=tier_compose(compose, APP, network=cfg.shared_network), extra_env=colors_env,
        slo_rules=render_rules(cfg.slo).encode(), signing=cfg.signing.policy, signatures=signatures))
    record = pulumi.Output.all(rid=release_id, images=image_map, content=rollout.content, commit=commit).apply(
        lambda v: release_record(v["rid"], v["images"], v["content"], v["commit"]))
    outputs |= {
        "release": record,
        "releases": pulumi.Output.all(previous=own.get_output("releases"), current=record).apply(
            lambda v: merge_history(v["previous"], v["current"], cfg.release.keep)),
        "validation": rollout.validation,
        # What an operator needs to reach every host (ops.cli status/drift): no secret in here.
        "hosts": {"names": hosts.names, "addresses": hosts.addresses, "ports": hosts.ports,
                  "dropletIds": hosts.droplet_ids, "sshUser": cfg.ssh.user, "sshHostKey": cfg.ssh.host_key,
                  "root": cfg.hosts.root, "shape": hosts.shape},
        "vpcId": hosts.vpc_id,
    }

    if build is not None:  # what was built for a color, kept for the idle one to take (a pinned release)
        outputs["builds"] = pulumi.Output.all(previous=own.get_output("builds"), current=build.record).apply(
            lambda v: merge_history(v["previous"], v["current"], cfg.release.keep))
    elif prod is None:
        outputs["builds"] = own.get_output("builds")

    if cfg.snapshot:
        snap = Snapshot("snapshot", SnapshotArgs(droplet_id=hosts.droplet_ids.apply(lambda ids: ids[0]),
                                                 name=snapshot_name(cfg.identity, cfg.snapshot_generation),
                                                 wait_for=rollout.gates))
        outputs["snapshotId"] = snap.snapshot_id

    if cfg.traffic.mode != "none":
        outputs |= _traffic(cfg, catalog, env, hosts=hosts, ref=ref,
                            own_color=ColorTarget(cfg.color, cfg.stack, hosts.droplet_ids, record, rollout.validation,
                                        wait_for=[*rollout.gates, *rollout.confirms]))
    return outputs


@dataclass(frozen=True)
class Build:
    """What this update built and pushed: the images' pins, signed when the stack signs (`pins` then resolve only
    once every signature command ran), their provenance and the record exported as `build`."""

    pins: pulumi.Output[dict[str, str]]
    metadata: pulumi.Output[dict[str, Any]]
    record: pulumi.Output[dict[str, Any]]
    signatures: list[pulumi.Resource]


def _build(cfg: StackConfig, catalog: ServiceCatalog, env: ProgramEnv, registry: Registry) -> Build:
    """The images of this commit, pushed and pinned by digest, then each digest signed (cfg.signs)."""
    images = ServiceImages("images", ServiceImagesArgs(
        build=cfg.build, repo_prefix=cfg.registry.repo_prefix, catalog=catalog,
        registry_address=registry.address, registry_server=registry.server,
        push_username=registry.push_username, push_password=registry.push_password,
        release_id=cfg.release.release_id, commit=env.commit, built_at=env.built_at, ci_run_url=env.ci_run_url))
    pins, signatures = images.images, list[pulumi.Resource]()
    if cfg.signs:
        signed = ImageSignatures("signatures", ImageSignaturesArgs(
            pins=images.pins, private_key=pulumi.Output.secret(cfg.signing.private_key.value),
            password=pulumi.Output.secret(cfg.signing.password.value), registry_server=registry.server,
            push_username=registry.push_username, push_password=registry.push_password))
        pins, signatures = signed.signed, [*signed.commands]
    record = pins.apply(lambda m: build_record(cfg.release.release_id, m, env.commit))
    return Build(pins=pins, metadata=images.metadata, record=record, signatures=signatures)


def _traffic(cfg: StackConfig, catalog: ServiceCatalog, env: ProgramEnv, *, hosts: Hosts,
             ref: Callable[[str], pulumi.StackReference], own_color: ColorTarget) -> dict[str, Any]:
    """The traffic resource, pointed at this stack's color or the standby's, and the release flow's record: a
    promotion still in its bake window (`promotion`), the last `ops.cli release` runs (`releaseRuns`)."""
    if cfg.traffic.live_color == cfg.color:
        target = own_color
    else:
        standby = ref(cfg.standby_stack)
        target = ColorTarget(cfg.traffic.live_color, cfg.standby_stack,
                             standby.get_output("hosts").apply(lambda h: (h or {}).get("dropletIds") or []),
                             standby.get_output("release"), standby.get_output("validation"))
    router = TrafficRouter("traffic", TrafficRouterArgs(
        identity=cfg.identity, traffic=cfg.traffic, region=cfg.hosts.region, target=target,
        health_path=catalog.gateway_health_path, vpc_id=hosts.vpc_id, local_root=env.root,
        local_endpoint=env.local_endpoint))
    return {"liveColor": router.live_color, "endpoint": router.endpoint,
            "promotion": dict(cfg.traffic.promotion),
            "releaseRuns": ref(cfg.stack).get_output("releaseRuns").apply(
                lambda previous: merge_runs(previous, env.release_run, RUNS_KEPT))}


def _hosts_args(cfg: StackConfig, prod: pulumi.StackReference | None, own: pulumi.StackReference) -> HostsArgs:
    """The hosts' slice: a standby joins prod's VPC, takes prod's deploy key and reads prod's liveColor; every stack
    compares its droplets with the shape its last update exported (ReplacementGuard)."""
    vpc_id: pulumi.Output[Any] | None = None
    key_fingerprint: pulumi.Output[str] | None = None
    # Who sends users to this color: a standby reads the traffic owner's liveColor, the owner knows its own.
    live_color: pulumi.Input[Any] = cfg.traffic.live_color if cfg.traffic.mode != "none" else None
    traffic_stack = cfg.stack
    if prod is not None and cfg.hosts.provider == "digitalocean":
        vpc_id = prod.get_output("vpcId")
        key_fingerprint = prod.get_output("sshKeyFingerprint").apply(
            lambda f: followed_key(cfg.prod_stack, f, cfg.ssh.public_key))
        live_color, traffic_stack = prod.get_output("liveColor"), cfg.prod_stack
    guard = ReplacementGuard(previous=own.get_output("hosts").apply(lambda h: h.get("shape") if h else None),
                             live_color=live_color, traffic_stack=traffic_stack)
    host_key = cfg.ssh.host_private_key.value
    return HostsArgs(identity=cfg.identity, hosts=cfg.hosts, public_key=cfg.ssh.public_key,
                     allowlist=cfg.ssh.allowlist, vpc_id=vpc_id, key_fingerprint=key_fingerprint,
                     guard=guard, host_key=pulumi.Output.secret(host_key) if host_key else None)


def _data_tier(cfg: StackConfig, tiers: Tiers, compose: str, hosts: Hosts,
               ref: Callable[[str], pulumi.StackReference], *, images: pulumi.Input[Mapping[str, str]],
               commit: pulumi.Input[str | None], registry_name: pulumi.Input[str] | None,
               signatures: list[pulumi.Resource]) -> tuple[DataRelease | None, pulumi.Output[dict[str, str]]]:
    """The stack that owns the data tier declares it (its host, volume and release); a follower reaches the data
    tier of the stack it follows, through its `data` output. Either way: what the colors' env says about it."""
    if cfg.owns_data:
        data = declare_data(cfg, tiers, compose, hosts=hosts, own=ref(cfg.stack),
                            standby=lambda: ref(cfg.standby_stack), images=images, commit=commit,
                            registry_name=registry_name, signatures=signatures)
        return data, data.colors_env
    return None, ref(cfg.prod_stack).get_output("data").apply(lambda d: followed_data_env(cfg.prod_stack, d))


def _nth(values: pulumi.Output[list[str]], index: int) -> pulumi.Output[str]:
    return values.apply(lambda v: v[index])


def _chosen_release(cfg: StackConfig, own: pulumi.StackReference, prod: pulumi.StackReference | None,
                    services: tuple[str, ...]) -> pulumi.Output[ChosenRelease]:
    """The release a stack that does not build runs: prod's current, or a pinned id."""
    if cfg.release.source == "prod":
        assert prod is not None
        return prod.get_output("release").apply(lambda r: followed_release(cfg.prod_stack, r, services))
    pinned = str(cfg.release.pinned)
    # looked up in this order: what a color ran, then what was built for the idle color (`builds`)
    histories: dict[str, pulumi.Output[Any]] = {cfg.stack: own.get_output("releases")}
    if prod is not None:
        histories[cfg.prod_stack] = prod.get_output("releases")
    histories[f"{cfg.stack} builds"] = own.get_output("builds")
    if prod is not None:
        histories[f"{cfg.prod_stack} builds"] = prod.get_output("builds")
    return pulumi.Output.all(**histories).apply(lambda hs: pinned_release(pinned, hs, services))
