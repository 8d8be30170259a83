"""The data tier's host: where compose project `data` runs, once per environment, and never flips.

    data = DataTier("data", DataTierArgs(identity=cfg.identity, hosts=cfg.hosts, data=cfg.data, ...))
    data.bind               # DATA_BIND: the address the data services publish on
    data.private_address    # what the colors dial (droplets), "" on an existing host (the colors use names)

digitalocean: one data droplet (the base image and cloud-init, in prod's VPC, with the deploy key), protected and
retained on delete, never replaced by new user data, image or keys; a block volume (ext4, protected, retained)
attached to it, which cloud-init mounts at /var/lib/docker/volumes before docker starts, so every named volume of
the data project lives on the volume and survives the droplet; a firewall admitting SSH from the allowlist and the
data services' published ports from the colors' droplet tags only; with `snapshot`, a snapshot of the volume per
snapshotGeneration, which the data release waits for. DigitalOcean has no snapshot schedule for volumes (droplet
backups leave attached volumes out): scheduled snapshots with retention are `ops.cli data backup`'s, run by a
scheduled workflow. existing: nothing is created; the data project runs on the first existing host.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_digitalocean as digitalocean

from components.config import DataConfig, HostsConfig
from components.config_keys import COLORS
from components.config_slices import StackIdentity, stack_tag
from components.hosts import SSH_PORT, cloud_config, color_tag, ssh_firewall_rules
from components.sources import data_resize_warning, volume_shrink_refusal

LOOPBACK = "127.0.0.1"
DATA_PROJECT = "data"
IGNORED = ["userData", "image", "sshKeys"]
"""What a data droplet never changes for: cloud-init runs at the first boot only, the image is fixed at creation,
and keys reach a running droplet over SSH (docs/runbook.md). Any of these would replace it."""


def data_tag(project: str) -> str:
    """The tag of the data droplet (never the web tag: the load balancer does not reach it)."""
    return f"{project}-{DATA_PROJECT}"


def data_tags(identity: StackIdentity) -> list[str]:
    """The data droplet's tags: the project, the stack (an SSH lease reaches it) and the data tag."""
    p = identity.project
    return [p, stack_tag(p, identity.stack), data_tag(p)]


def volume_name(identity: StackIdentity) -> str:
    """The block volume's name (DigitalOcean: lowercase letters, digits and -, a letter first, 64 at most); its
    device on the droplet is named after it (components.cloud_init.volume_device)."""
    name = re.sub(r"[^a-z0-9-]", "-", f"{identity.project}-{identity.stack}-{DATA_PROJECT}".lower())
    return (name if name[0].isalpha() else f"v-{name}")[:64]


def volume_snapshot_name(identity: StackIdentity, generation: int) -> str:
    """The data volume's safety snapshot of one snapshotGeneration (a new generation is a new snapshot)."""
    return f"{identity.project}-{identity.stack}-{DATA_PROJECT}-g{generation}"


class DataTierRefused(Exception):
    """This update would change the data tier's host in a way that loses data (a smaller volume)."""


@dataclass(frozen=True)
class DataTierArgs:
    identity: StackIdentity  # names and tags
    hosts: HostsConfig  # provider, region, image, monitoring, host root, existing hosts
    data: DataConfig  # droplet size, volume size
    allowlist: tuple[str, ...]  # CIDRs the SSH rule admits
    data_ports: tuple[int, ...]  # the data services' published ports (components.tiers.published_port)
    snapshot_generation: int | None = None  # a volume snapshot of this generation; None: none
    vpc_id: pulumi.Input[str] | None = None  # the colors' VPC (droplets)
    key_fingerprint: pulumi.Input[str] | None = None  # the deploy key prod uploaded (droplets)
    host_key: pulumi.Input[str] | None = None  # secret: the stack's SSH host key (private half) → cloud-init
    previous: pulumi.Input[Any] = None  # this stack's last `data` output (None: the first update)


class DataTier(pulumi.ComponentResource):
    names: list[str]
    """The data host's name: the droplet's, or "address:port" of the existing host."""
    addresses: pulumi.Output[list[str]]
    """What SSH dials: the droplet's public IPv4, or the existing host's address."""
    ports: list[int]
    """SSH port per host."""
    droplet_ids: pulumi.Output[list[int]]
    """[the data droplet's id]; [] on an existing host."""
    private_address: pulumi.Output[str]
    """The data droplet's VPC address (what the colors dial); "" on an existing host."""
    bind: pulumi.Output[str]
    """DATA_BIND: where the data services publish their ports (the private address, or 127.0.0.1)."""
    volume_id: pulumi.Output[str]
    """The block volume's id; "" on an existing host."""
    volume_name: str
    """The block volume's name; "" on an existing host."""
    shape: pulumi.Output[dict[str, Any]]
    """The droplet size and volume size (exported: the next update refuses a smaller volume); {} when existing."""
    triggers: list[pulumi.Output[str]]
    """Per host identity (droplet id, or "address:port"): the data rollout re-runs on a new host."""
    resources: list[pulumi.Resource]
    """What the data rollout waits for: droplet, volume attachment, firewall and the safety snapshot."""

    def __init__(self, name: str, args: DataTierArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("devtools:index:DataTier", name, None, opts)
        if args.hosts.provider == "existing":
            self._existing(args.hosts)
        else:
            self._droplet(name, args)
        self.register_outputs({"addresses": self.addresses, "private_address": self.private_address,
                               "volume_id": self.volume_id, "shape": self.shape})

    def _existing(self, config: HostsConfig) -> None:
        first = config.existing[0]
        self.names = [f"{first.address}:{first.port}"]
        self.addresses = pulumi.Output.from_input([first.address])
        self.ports = [first.port]
        self.droplet_ids = pulumi.Output.from_input(list[int]())
        self.private_address = pulumi.Output.from_input("")
        self.bind = pulumi.Output.from_input(LOOPBACK)
        self.volume_id = pulumi.Output.from_input("")
        self.volume_name = ""
        self.shape = pulumi.Output.from_input({})
        self.triggers = [pulumi.Output.from_input(self.names[0])]
        self.resources = []

    def _droplet(self, name: str, args: DataTierArgs) -> None:
        config, data, who = args.hosts, args.data, args.identity
        if args.key_fingerprint is None or args.vpc_id is None:
            raise ValueError("a data droplet needs the deploy key's fingerprint and the colors' VPC")
        base = f"{who.project}-{who.stack}"
        kept = pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True)
        # Every input of the volume and the droplet passes through the check: a refusal stops the update before
        # either changes.
        checked = _checked(who.stack, {"region": config.region, "dataDropletSize": data.droplet_size,
                                       "dataVolumeSize": data.volume_size}, args.previous)
        self.shape = checked
        region = checked.apply(lambda s: str(s["region"]))
        volume_label = volume_name(who)
        volume = digitalocean.Volume(
            f"{name}-volume", name=volume_label, region=region, size=checked.apply(lambda s: int(s["dataVolumeSize"])),
            initial_filesystem_type="ext4", tags=data_tags(who), opts=kept)
        # Like the primary: protected, and never replaced for new user data, an image slug or a key rotation; also
        # retained if the stack ever deletes it (the volume stays attached to a running droplet).
        droplet = digitalocean.Droplet(
            f"{name}-host", name=f"{base}-{DATA_PROJECT}", image=config.image,
            size=checked.apply(lambda s: str(s["dataDropletSize"])), region=region, vpc_uuid=args.vpc_id,
            monitoring=config.monitoring, ssh_keys=[args.key_fingerprint], tags=data_tags(who),
            user_data=cloud_config(config.root, args.host_key, data_volume=volume_label),
            opts=pulumi.ResourceOptions.merge(kept, pulumi.ResourceOptions(ignore_changes=IGNORED)))
        droplet_id = droplet.id.apply(int)
        attachment = digitalocean.VolumeAttachment(f"{name}-attach", droplet_id=droplet_id, volume_id=volume.id,
                                                   opts=kept)
        inbound, outbound = ssh_firewall_rules(args.allowlist)
        firewall = digitalocean.Firewall(
            f"{name}-firewall", name=f"{base}-{DATA_PROJECT}", droplet_ids=[droplet_id],
            inbound_rules=[*inbound, *data_rules(who.project, args.data_ports)], outbound_rules=outbound,
            opts=pulumi.ResourceOptions(parent=self))
        self.resources = [droplet, attachment, firewall]
        if args.snapshot_generation is not None:
            # A backup of the volume before the data release of this generation; retained when a new generation
            # replaces it. Scheduled snapshots with retention come from `ops.cli data backup`.
            self.resources.append(digitalocean.VolumeSnapshot(
                f"{name}-snapshot", volume_id=volume.id, name=volume_snapshot_name(who, args.snapshot_generation),
                tags=data_tags(who), opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True,
                                                                 depends_on=[attachment])))
        self.names = [f"{base}-{DATA_PROJECT}"]
        self.addresses = droplet.ipv4_address.apply(lambda a: [a])
        self.ports = [SSH_PORT]
        self.droplet_ids = droplet_id.apply(lambda i: [i])
        self.private_address = droplet.ipv4_address_private
        self.bind = droplet.ipv4_address_private
        self.volume_id, self.volume_name = volume.id, volume_label
        self.triggers = [droplet.id]


def data_rules(project: str, ports: Sequence[int]) -> list[digitalocean.FirewallInboundRuleArgsDict]:
    """Inbound: each data service's published port, from the colors' droplets only (by their color tags)."""
    return [{"protocol": "tcp", "port_range": str(port), "source_tags": [color_tag(project, c) for c in COLORS]}
            for port in ports]


def _checked(stack: str, shape: dict[str, Any], previous: pulumi.Input[Any]) -> pulumi.Output[dict[str, Any]]:
    """`shape`, released only when the volume does not shrink (raises DataTierRefused otherwise); a droplet size
    change is announced as a warning (at preview too)."""

    def check(before: Any) -> dict[str, Any]:
        warning = data_resize_warning(stack, before, str(shape["dataDropletSize"]))
        if warning:
            pulumi.log.warn(warning)
        reason = volume_shrink_refusal(stack, before, int(shape["dataVolumeSize"]))
        if reason:
            raise DataTierRefused(reason)
        return shape

    return pulumi.Output.from_input(previous).apply(check)
