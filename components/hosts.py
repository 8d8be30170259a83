"""The hosts of this stack's color: DigitalOcean droplets (the base image + cloud-init) or existing machines.

    hosts = Hosts("hosts", HostsArgs(identity=cfg.identity, hosts=cfg.hosts, public_key=cfg.ssh.public_key,
                                     allowlist=cfg.ssh.allowlist, host_key=host_private_key))
    hosts.addresses  # what the rollout's SSH dials

digitalocean: the deploy key's upload (unless the followed stack uploaded it: a standby takes its fingerprint),
a VPC (unless one is given: a standby joins prod's), `hosts.count` droplets with the
cloud-init of components/cloud_init.py, and a firewall that admits SSH from the allowlist only. existing: nothing
is created; the addresses come from config.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_digitalocean as digitalocean

from components.cloud_init import host_doctor_text, host_requirements_text, render_cloud_init
from components.config import HostsConfig
from components.config_slices import StackIdentity, stack_tag
from components.sources import replacement_refusal, resize_warning

ROOT = Path(__file__).resolve().parents[1]
SSH_PORT = 22
ANYWHERE = ["0.0.0.0/0", "::/0"]


def web_tag(project: str) -> str:
    """The tag of droplets that may receive load-balancer traffic (the traffic component's firewall admits it)."""
    return f"{project}-web"


def color_tag(project: str, color: str) -> str:
    """The tag of every droplet of one color (what the data tier's firewall admits to the data services)."""
    return f"{project}-{color}"


def droplet_tags(identity: StackIdentity) -> list[str]:
    """Tags of every droplet of this stack: the project, the stack, the color and the web tag."""
    p = identity.project
    return [p, stack_tag(p, identity.stack), color_tag(p, identity.color), web_tag(p)]


def ssh_firewall_rules(allowlist: Sequence[str]) -> tuple[list[digitalocean.FirewallInboundRuleArgsDict],
                                                          list[digitalocean.FirewallOutboundRuleArgsDict]]:
    """Inbound: TCP 22 from the allowlist only. Outbound: all TCP, UDP and ICMP (package installs, image pulls)."""
    inbound: list[digitalocean.FirewallInboundRuleArgsDict] = [
        {"protocol": "tcp", "port_range": str(SSH_PORT), "source_addresses": list(allowlist)},
    ]
    outbound: list[digitalocean.FirewallOutboundRuleArgsDict] = [
        {"protocol": "tcp", "port_range": "1-65535", "destination_addresses": list(ANYWHERE)},
        {"protocol": "udp", "port_range": "1-65535", "destination_addresses": list(ANYWHERE)},
        {"protocol": "icmp", "destination_addresses": list(ANYWHERE)},
    ]
    return inbound, outbound


class ReplacementRefused(Exception):
    """This update would replace (or remove) droplets that must not be: protected, or serving traffic."""


@dataclass(frozen=True)
class ReplacementGuard:
    """What decides whether this update may replace the droplets (sources.replacement_refusal)."""

    previous: pulumi.Input[Any]  # `hosts.shape` as this stack's last update exported it (None: the first update)
    live_color: pulumi.Input[Any]  # the color the traffic owner sends users to (None: no traffic owner)
    traffic_stack: str  # the stack that owns traffic, named in a refusal


@dataclass(frozen=True)
class HostsArgs:
    identity: StackIdentity  # droplet names and tags
    hosts: HostsConfig
    public_key: str  # installed on droplets (SshConfig.public_key; never the private half)
    allowlist: tuple[str, ...]  # CIDRs the SSH firewall admits
    host_key: pulumi.Input[str] | None = None  # secret: the droplets' SSH host key (private half) → cloud-init
    vpc_id: pulumi.Input[str] | None = None  # join this VPC (a standby joins prod's); None → create one
    key_fingerprint: pulumi.Input[str] | None = None
    """The deploy key the followed stack uploaded (a standby's droplets take it); None: upload `public_key` here.
    DigitalOcean refuses a second upload of one public key (422 "SSH Key is already in use")."""
    guard: ReplacementGuard | None = None  # None: droplets are declared without comparing with the last update


class Hosts(pulumi.ComponentResource):
    addresses: pulumi.Output[list[str]]
    """What SSH dials: each droplet's public IPv4, or the existing host's address."""
    ports: list[int]
    """SSH port per host (22 for droplets)."""
    droplet_ids: pulumi.Output[list[int]]
    """Droplet ids as ints (what DO inputs such as a load balancer's droplet_ids take); [] for existing hosts."""
    vpc_id: pulumi.Output[str]
    """The VPC the droplets are in; "" for existing hosts."""
    shape: pulumi.Output[dict[str, Any]]
    """What decides the droplets' identity (region, monitoring, VPC, image, count) and size: exported, so the next
    update can refuse a change that replaces droplets which must not be replaced; {} for existing hosts."""
    uploaded_key: pulumi.Output[str] | None
    """The fingerprint of the deploy key this stack uploaded (what standbys take); None when it uploaded none."""
    triggers: list[pulumi.Output[str]]
    """Per host identity (droplet id, or "address:port"): a rollout keyed on it re-runs on a new host."""
    names: list[str]
    """Host names: droplet names, or "address:port" of existing hosts."""
    resources: list[pulumi.Resource]
    """What a rollout must wait for: the droplets and their SSH firewall (empty for existing hosts)."""

    def __init__(self, name: str, args: HostsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("devtools:index:Hosts", name, None, opts)
        if args.hosts.provider == "existing":
            self._existing(args.hosts)
        else:
            self._droplets(name, args)
        self.register_outputs({"addresses": self.addresses, "droplet_ids": self.droplet_ids, "vpc_id": self.vpc_id})

    def _existing(self, config: HostsConfig) -> None:
        hosts = config.existing
        self.addresses = pulumi.Output.from_input([h.address for h in hosts])
        self.ports = [h.port for h in hosts]
        self.droplet_ids = pulumi.Output.from_input(list[int]())
        self.vpc_id = pulumi.Output.from_input("")
        self.names = [f"{h.address}:{h.port}" for h in hosts]
        self.triggers = [pulumi.Output.from_input(n) for n in self.names]
        self.resources = []
        self.uploaded_key = None
        self.shape = pulumi.Output.from_input({})

    def _droplets(self, name: str, args: HostsArgs) -> None:
        config, who = args.hosts, args.identity
        base = f"{who.project}-{who.stack}"
        child = pulumi.ResourceOptions(parent=self)
        if args.key_fingerprint is None:
            key = digitalocean.SshKey(f"{name}-key", name=base, public_key=args.public_key, opts=child)
            self.uploaded_key = key.fingerprint
            fingerprint: pulumi.Input[str] = key.fingerprint
        else:
            self.uploaded_key, fingerprint = None, args.key_fingerprint
        standby = args.vpc_id is not None  # joins the followed stack's VPC
        protected = config.protect and not standby
        self.shape = _shape(config, args.vpc_id)
        # Every input that would replace a droplet passes through the guard: a refusal stops the update before the
        # VPC or any droplet changes.
        checked = self.shape if args.guard is None else _guarded(who, config.size, self.shape, args.guard, protected)
        region = checked.apply(lambda s: str(s["region"]))
        if args.vpc_id is None:
            # No fixed ip_range unless configured: a fixed one collided with the account's default VPCs.
            vpc = digitalocean.Vpc(f"{name}-vpc", name=base, region=region, ip_range=config.vpc_ip_range or None,
                                   opts=child)
            self.vpc_id = vpc.id
        else:
            self.vpc_id = pulumi.Output.from_input(args.vpc_id)
        image = checked.apply(lambda _: config.image)
        user_data = cloud_config(config.root, args.host_key)
        # A replaced primary loses its volumes: protect it, and never let a new user_data (a credential rotation;
        # cloud-init only runs at first boot anyway) or image slug force a replacement. A standby is rebuilt from the
        # base image and cloud-init, so a new image slug may replace it, but a credential rotation must not: a
        # standby may be the live color. ssh_keys are installed when a droplet is created (a new deploy key reaches
        # existing droplets over SSH, docs/runbook.md): a rotation must never replace a droplet, on either color.
        ignored = ["userData", "sshKeys"] if standby else ["userData", "image", "sshKeys"]
        opts = pulumi.ResourceOptions(parent=self, protect=protected, ignore_changes=ignored)
        self.names = [f"{base}-{who.color}-{i}" for i in range(1, config.count + 1)]
        droplets = [
            digitalocean.Droplet(f"{name}-{i}", name=droplet_name, image=image, size=config.size,
                                 region=region, vpc_uuid=self.vpc_id, monitoring=config.monitoring,
                                 ssh_keys=[fingerprint], tags=droplet_tags(who), user_data=user_data, opts=opts)
            for i, droplet_name in enumerate(self.names, start=1)
        ]
        ids = [d.id.apply(int) for d in droplets]
        # SSH only. HTTP(S) inbound is not here: the traffic component owns a separate firewall that admits the
        # load balancer to droplets tagged web_tag(project); DigitalOcean applies the union of both.
        inbound, outbound = ssh_firewall_rules(args.allowlist)
        firewall = digitalocean.Firewall(f"{name}-ssh", name=f"{base}-ssh", droplet_ids=ids, inbound_rules=inbound,
                                         outbound_rules=outbound, opts=child)
        self.addresses = _all([d.ipv4_address for d in droplets])
        self.ports = [SSH_PORT] * len(droplets)
        self.droplet_ids = _all(ids)
        self.triggers = [d.id for d in droplets]
        self.resources = [*droplets, firewall]


def _shape(config: HostsConfig, vpc_id: pulumi.Input[str] | None) -> pulumi.Output[dict[str, Any]]:
    """The droplets' shape under the config keys' names: what replaces them if it changes (sources.REPLACING),
    their count and size. A primary's image is left out (ignored: fixed at creation); a standby's VPC is the
    followed stack's, its own VPC range is not."""
    plain: dict[str, Any] = {"region": config.region, "monitoring": config.monitoring, "hostCount": config.count,
                             "dropletSize": config.size}
    if vpc_id is None:
        return pulumi.Output.from_input({**plain, "vpcIpRange": config.vpc_ip_range})
    return pulumi.Output.from_input(vpc_id).apply(lambda vpc: {**plain, "dropletImage": config.image, "vpc": vpc})


def _guarded(who: StackIdentity, size: str, shape: pulumi.Output[dict[str, Any]], guard: ReplacementGuard,
             protected: bool) -> pulumi.Output[dict[str, Any]]:
    """`shape`, released only when the update may change the droplets that way (raises ReplacementRefused
    otherwise); a size change is announced as a warning (at preview too)."""

    def check(v: dict[str, Any]) -> dict[str, Any]:
        warning = resize_warning(who.stack, v["previous"], size)
        if warning:
            pulumi.log.warn(warning)
        live_on = guard.traffic_stack if v["live"] == who.color else None
        reason = replacement_refusal(who.stack, who.color, v["previous"], v["shape"], protected=protected,
                                     live_on=live_on)
        if reason:
            raise ReplacementRefused(reason)
        shaped: dict[str, Any] = v["shape"]
        return shaped

    return pulumi.Output.all(shape=shape, previous=guard.previous, live=guard.live_color).apply(check)


def cloud_config(host_root: str, host_key: pulumi.Input[str] | None, data_volume: str | None = None
                 ) -> pulumi.Input[str]:
    """A droplet's cloud-init text (the data droplet's mounts `data_volume`); a Pulumi secret when it holds the host
    key. Never a registry credential: the rollout hands those over SSH."""
    requirements, doctor = host_requirements_text(ROOT), host_doctor_text(ROOT)
    if host_key is None:
        return render_cloud_init(host_root=host_root, host_requirements=requirements, host_doctor=doctor,
                                 host_key=None, data_volume=data_volume)
    text = pulumi.Output.from_input(host_key).apply(
        lambda key: render_cloud_init(host_root=host_root, host_requirements=requirements, host_doctor=doctor,
                                      host_key=key, data_volume=data_volume))
    return pulumi.Output.secret(text)


def _all(values: list[pulumi.Output[Any]]) -> pulumi.Output[list[Any]]:
    """One output holding the list of `values` (an empty list when there are none)."""
    return pulumi.Output.all(*values) if values else pulumi.Output.from_input(list[Any]())
