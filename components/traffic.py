"""TrafficRouter: points the public entry (DO load balancer, reserved IP, or the local proxy stand-in) at the
hosts of the live color — this stack's, or the standby stack's through a StackReference.

A flip is a change of `devtools:liveColor`: only this component's inputs change. Before any input reaches the
traffic resource, the target color's validation is checked against the release it runs now
(sources.flip_refusal); a refusal fails the update with its reason and traffic stays where it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_digitalocean as do
from pulumi_command import local

from components.commands import local_flip_command
from components.config import TrafficConfig
from components.config_slices import StackIdentity
from components.hosts import web_tag
from components.sources import flip_refusal

ANYWHERE = ["0.0.0.0/0", "::/0"]


@dataclass(frozen=True)
class ColorTarget:
    color: str
    stack: str  # the stack whose hosts run this color
    droplet_ids: pulumi.Input[Sequence[int]]
    release: pulumi.Input[Mapping[str, Any]]  # {"id", "content", ...} the color runs now
    validation: pulumi.Input[Mapping[str, Any]]  # {"release", "content", "passed", ...} its last validation
    wait_for: Sequence[pulumi.Resource] = ()  # this stack's validation gates (and a pool's confirms), when ours


@dataclass(frozen=True)
class TrafficRouterArgs:
    identity: StackIdentity  # resource names and the web tag
    traffic: TrafficConfig  # mode, load balancer size, TLS certificate
    region: str  # where a load balancer or reserved IP is created (the hosts' region)
    target: ColorTarget
    health_path: str  # the gateway's health path, answered through the edge proxy on port 80
    vpc_id: pulumi.Input[str] | None = None
    local_root: Path | None = None  # the project checkout (localProxy: scripts/local-env.sh lives there)
    local_endpoint: str = ""


class RefusedFlip(Exception):
    """Traffic may not move to the requested color."""


def checked(target: ColorTarget) -> pulumi.Output[list[int]]:
    """The target's droplet ids, released only after its validation matched its release (raises otherwise)."""

    def gate(v: dict[str, Any]) -> list[int]:
        reason = flip_refusal(target.color, target.stack, v["release"], v["validation"])
        if reason:
            raise RefusedFlip(reason)
        return [int(i) for i in v["ids"]]

    return pulumi.Output.all(release=target.release, validation=target.validation, ids=target.droplet_ids).apply(
        gate)


def forwarding_rules(tls_certificate: str | None) -> list[do.LoadBalancerForwardingRuleArgs]:
    rules = [do.LoadBalancerForwardingRuleArgs(entry_port=80, entry_protocol="http", target_port=80,
                                               target_protocol="http")]
    if tls_certificate:
        rules.append(do.LoadBalancerForwardingRuleArgs(entry_port=443, entry_protocol="https", target_port=80,
                                                       target_protocol="http", certificate_name=tls_certificate))
    return rules


def health_check(path: str) -> do.LoadBalancerHealthcheckArgs:
    return do.LoadBalancerHealthcheckArgs(port=80, protocol="http", path=path, check_interval_seconds=5,
                                          response_timeout_seconds=3, healthy_threshold=2, unhealthy_threshold=3)


def web_rules(lb_id: pulumi.Input[str] | None) -> list[do.FirewallInboundRuleArgs]:
    """HTTP(S) from the load balancer only, or from anywhere when a reserved IP is the entry."""
    if lb_id is None:
        return [do.FirewallInboundRuleArgs(protocol="tcp", port_range=p, source_addresses=ANYWHERE)
                for p in ("80", "443")]
    return [do.FirewallInboundRuleArgs(protocol="tcp", port_range=p, source_load_balancer_uids=[lb_id])
            for p in ("80", "443")]


class TrafficRouter(pulumi.ComponentResource):
    endpoint: pulumi.Output[str]
    """Where users reach the application (LB or reserved IP address, or the local proxy URL)."""
    live_color: str
    """The color traffic points at after this update."""

    def __init__(self, name: str, args: TrafficRouterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("devtools:index:TrafficRouter", name, None, opts)
        traffic, target, base = args.traffic, args.target, f"{args.identity.project}-{args.identity.stack}"
        web_tags = [web_tag(args.identity.project)]
        child = pulumi.ResourceOptions(parent=self, depends_on=list(target.wait_for))
        ids = checked(target)
        self.live_color = target.color
        if traffic.mode == "loadBalancer":
            lb = do.LoadBalancer(
                f"{name}-lb", name=base, region=args.region, vpc_uuid=args.vpc_id,
                size_unit=traffic.lb_size_unit, droplet_ids=ids,
                forwarding_rules=forwarding_rules(traffic.tls_certificate),
                healthcheck=health_check(args.health_path),
                redirect_http_to_https=bool(traffic.tls_certificate), opts=child)
            do.Firewall(f"{name}-web", name=f"{base}-web", tags=web_tags, inbound_rules=web_rules(lb.id),
                        opts=pulumi.ResourceOptions(parent=self))
            self.endpoint = lb.ip
        elif traffic.mode == "reservedIp":
            ip = do.ReservedIp(f"{name}-ip", region=args.region, opts=pulumi.ResourceOptions(parent=self))
            do.ReservedIpAssignment(f"{name}-ip-assignment", ip_address=ip.ip_address,
                                    droplet_id=ids.apply(lambda i: i[0]), opts=child)
            do.Firewall(f"{name}-web", name=f"{base}-web", tags=web_tags, inbound_rules=web_rules(None),
                        opts=pulumi.ResourceOptions(parent=self))
            self.endpoint = ip.ip_address
        else:  # localProxy: the stand-in's haproxy, switched by its own script (it checks the server is UP)
            if args.local_root is None:
                raise ValueError("TrafficRouter: localProxy needs local_root (the project checkout)")
            root = args.local_root
            flip = ids.apply(lambda _ids: local_flip_command(root, target.color))
            local.Command(f"{name}-flip", create=flip, logging=local.Logging.STDOUT_AND_STDERR, opts=child)
            self.endpoint = pulumi.Output.from_input(args.local_endpoint)
        self.register_outputs({"endpoint": self.endpoint, "live_color": self.live_color})
