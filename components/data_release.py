"""The data tier in the stack that owns it: its host (DataTier), its release (ReleaseRollout of project `data`) and
what the colors need to reach it.

    data = declare_data(cfg, tiers, compose, hosts=hosts, own=own, standby=lambda: ref("blue"), images=images,
                        commit=commit, registry_name=registry_name, signatures=signatures)
    data.colors_env   # STATE_URL, RAG_URL… for the colors' release env
    data.rollout.gates    # the colors' rollout waits for these
    data.output       # the stack's `data` output (followers read `env` from it)

The data release's id is `data-<12 hex>` of its own content (components.tiers.data_release_id): the data services'
pins, its env and its compose file. A release that changes only the app tier, or a flip, leaves it as it is, so the
data tier is released only when its own images or its compose file change. It is refused while the colors run two
different releases (sources.data_release_refusal): the standby stack's `release` is read only then, since a
reference to a stack that does not exist yet fails the update.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from components.config import ReleaseConfig, StackConfig
from components.config_slices import AgentPlace
from components.data_tier import DATA_PROJECT, DataTier, DataTierArgs
from components.hosts import Hosts
from components.release import ReleaseRollout, ReleaseRolloutArgs, RolloutHost
from components.sources import data_release_changes, data_release_refusal, release_record
from components.tiers import DATA, Tiers, data_env, data_release_id, published_port, tier_compose, tier_images


class DataReleaseRefused(Exception):
    """This update would release the data tier while the colors run two different releases."""


@dataclass(frozen=True)
class DataRelease:
    rollout: ReleaseRollout
    colors_env: pulumi.Output[dict[str, str]]
    output: dict[str, Any]


def data_release_settings(release: ReleaseConfig, port_prefix: str) -> ReleaseConfig:
    """The release settings of the data tier: the app's secrets, keep and validation deadline; its own port
    prefix; no compose profile (its file has none), no Prometheus phase (its selector names a color) and no trace
    phase (the data tier runs no agent whose probe sends a trace)."""
    return dataclasses.replace(release, compose_profiles="", host_port_prefix=int(port_prefix), prometheus_url=None,
                               prometheus_selector="", langfuse_host=None)


def declare_data(cfg: StackConfig, tiers: Tiers, compose: str, *, hosts: Hosts, own: pulumi.StackReference,
                 standby: Callable[[], pulumi.StackReference], images: pulumi.Input[Mapping[str, str]],
                 commit: pulumi.Input[str | None], registry_name: pulumi.Input[str] | None,
                 signatures: Sequence[pulumi.Resource] = ()) -> DataRelease:
    prefix, droplets = cfg.data.port_prefix, cfg.hosts.provider == "digitalocean"
    previous = own.get_output("data")
    host_key = cfg.ssh.host_private_key.value
    tier = DataTier("data", DataTierArgs(
        identity=cfg.identity, hosts=cfg.hosts, data=cfg.data, allowlist=cfg.ssh.allowlist,
        data_ports=tuple(published_port(d.published, prefix) for d in tiers.data_services),
        snapshot_generation=cfg.snapshot_generation if cfg.snapshot else None,
        vpc_id=hosts.vpc_id if droplets else None, key_fingerprint=hosts.uploaded_key if droplets else None,
        host_key=pulumi.Output.secret(host_key) if host_key else None, previous=previous))
    data_compose = tier_compose(compose, DATA, network=cfg.shared_network)
    env = tier.bind.apply(lambda bind: {"HOST_PORT_PREFIX": prefix, "DATA_BIND": bind})
    data_images = pulumi.Output.from_input(images).apply(lambda m: tier_images(tiers, m, DATA))
    policy = cfg.signing.policy
    candidate = pulumi.Output.all(images=data_images, env=env).apply(
        lambda v: data_release_id(v["images"], v["env"], data_compose))

    def allowed(v: dict[str, Any]) -> pulumi.Input[str]:
        rid: str = v["rid"]
        if not data_release_changes(v["previous"], rid):
            return rid
        return standby().get_output("release").apply(lambda other: _refused_or(rid, data_release_refusal(
            cfg.stack, cfg.standby_stack, v["previous"], rid, own_release=v["own"], standby_release=other)))

    release_id = pulumi.Output.all(rid=candidate, previous=previous, own=own.get_output("release")).apply(allowed)
    rollout = ReleaseRollout("data-release", ReleaseRolloutArgs(
        place=AgentPlace(cfg.hosts.root, DATA_PROJECT), release=data_release_settings(cfg.release, prefix),
        login=cfg.ssh.login,
        hosts=[RolloutHost(n, _nth(tier.addresses, i), tier.ports[i], tier.triggers[i])
               for i, n in enumerate(tier.names)],
        release_id=release_id, images=data_images, commit=commit,
        private_key=pulumi.Output.secret(cfg.ssh.private_key.value), wait_for=tier.resources,
        registry_name=registry_name, compose=data_compose, extra_env=env, signing=policy, signatures=signatures))
    colors_env = tier.private_address.apply(lambda a: data_env(tiers, address=a or None, host_port_prefix=prefix))
    record = pulumi.Output.all(rid=release_id, images=data_images, content=rollout.content, commit=commit).apply(
        lambda v: release_record(v["rid"], v["images"], v["content"], v["commit"]))
    output: dict[str, Any] = {
        "address": tier.private_address, "env": colors_env, "release": record, "validation": rollout.validation,
        # What an operator needs to reach the data host (as `hosts` for the colors): no secret in here.
        "hosts": {"names": tier.names, "addresses": tier.addresses, "ports": tier.ports,
                  "dropletIds": tier.droplet_ids, "sshUser": cfg.ssh.user, "sshHostKey": cfg.ssh.host_key,
                  "root": cfg.hosts.root, "project": DATA_PROJECT},
        "volumeId": tier.volume_id, "shape": tier.shape,
    }
    if droplets:  # what `ops.cli data backup` snapshots
        output["volume"] = {"id": tier.volume_id, "name": tier.volume_name}
    return DataRelease(rollout=rollout, colors_env=colors_env, output=output)


def _refused_or(release_id: str, reason: str | None) -> str:
    if reason:
        raise DataReleaseRefused(reason)
    return release_id


def _nth(values: pulumi.Output[list[str]], index: int) -> pulumi.Output[str]:
    return values.apply(lambda v: v[index])
