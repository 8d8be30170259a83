"""Registry: where the release images live, and the credentials to push and pull them.

With `devtools:registryAddress` set (the local stand-in's 127.0.0.1:5000) nothing is created and no credentials
exist. With `devtools:registryAdopt` the account's existing DigitalOcean Container Registry `registryName` is read
(`ContainerRegistry.get`: DigitalOcean allows one registry per account and the old scripts made one): the stack never
creates, changes or deletes it, and its tier must hold the release's repositories. Otherwise a DigitalOcean
Container Registry is created (protected: deleting it deletes every release a rollback could need). The image builds
get write credentials (`push_username`/`push_password`, Pulumi secrets); the hosts' read-only pull credentials are
minted per release by the rollout (components/release.py) against `name`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as digitalocean

from components.config import RegistryConfig

__all__ = ["DOCR_SERVER", "TIERS", "Registry", "RegistryArgs", "adopted_address", "docker_login", "registry_tier"]

DOCR_SERVER = "registry.digitalocean.com"
TIERS = (("starter", 1), ("basic", 5), ("professional", None))  # DOCR subscription tiers: most repositories


def registry_tier(repositories: int, requested: str) -> str:
    """The DOCR tier for `repositories` repos: `auto` picks the smallest that fits; an explicit one must fit."""
    if repositories < 0:
        raise ValueError(f"repositories must be ≥ 0, got {repositories}")
    limits = dict(TIERS)
    if requested == "auto":
        return next(tier for tier, most in TIERS if most is None or repositories <= most)
    if requested not in limits:
        raise ValueError(f"devtools:registryTier: {requested!r} is not a tier (auto, "
                         f"{', '.join(t for t, _ in TIERS)})")
    most = limits[requested]
    if most is not None and repositories > most:
        raise ValueError(f"devtools:registryTier: {requested} holds at most {most} "
                         f"repositor{'y' if most == 1 else 'ies'}, the release builds {repositories}: "
                         "use auto or a larger tier")
    return requested


def docker_login(docker_config_json: str, server: str) -> tuple[str, str]:
    """(user, password) for `server` from a docker config JSON {"auths": {server: {"auth": base64(user:pass)}}}.

    Errors name the server and what is missing, never the value.
    """
    try:
        document = json.loads(docker_config_json)
    except ValueError:
        raise ValueError(f"docker credentials for {server}: not JSON") from None
    auths = document.get("auths") if isinstance(document, dict) else None
    if not isinstance(auths, dict):
        raise ValueError(f"docker credentials for {server}: no `auths` object")
    entry = auths.get(server)
    if entry is None:
        entry = next((v for k, v in auths.items() if _host(str(k)) == _host(server)), None)
    if not isinstance(entry, dict) or not isinstance(entry.get("auth"), str):
        known = ", ".join(sorted(str(k) for k in auths)) or "none"
        raise ValueError(f"docker credentials for {server}: no `auth` for that server (servers: {known})")
    try:
        user, sep, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(f"docker credentials for {server}: `auth` is not base64 of user:password") from None
    if not sep or not user or not password:
        raise ValueError(f"docker credentials for {server}: `auth` is not base64 of user:password")
    return user, password


def adopted_address(name: str, endpoint: str, tier: str, repositories: int) -> str:
    """The adopted registry's address, once its tier is known to hold every repository the release pushes."""
    try:
        registry_tier(repositories, tier)
    except ValueError:
        most = dict(TIERS).get(tier)
        raise ValueError(f"devtools:registryAdopt: registry {name} is on the {tier} tier, which holds at most {most} "
                         f"repositor{'y' if most == 1 else 'ies'}; the release builds {repositories}: upgrade its "
                         "subscription (DigitalOcean control panel, Container Registry, Settings) or build fewer "
                         "services") from None
    return endpoint


def _host(server: str) -> str:
    return server.removeprefix("https://").removeprefix("http://").rstrip("/")


@dataclass(frozen=True)
class RegistryArgs:
    registry: RegistryConfig
    region: str  # where a DOCR is created (the hosts' region)
    protect: bool  # protect the DOCR from deletion (it holds every release a rollback needs)
    repositories: int  # how many image repositories the release pushes (one per built service)


class Registry(pulumi.ComponentResource):
    address: pulumi.Output[str]
    """Where repositories live: `registry.digitalocean.com/<name>`, or devtools:registryAddress."""
    server: pulumi.Output[str]
    """What docker logs in to: `registry.digitalocean.com`, or devtools:registryAddress."""
    name: pulumi.Output[str] | None
    """The DigitalOcean registry's name (what pull credentials are minted for); None for an existing registry."""
    push_username: pulumi.Output[str] | None
    """SECRET: user of the write credentials, for the image builds; None for an existing registry."""
    push_password: pulumi.Output[str] | None
    """SECRET: password of the write credentials; None for an existing registry."""

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("devtools:index:Registry", name, None, opts)
        existing = args.registry.address
        self.name = self.push_username = self.push_password = None
        if existing:
            self.address = pulumi.Output.from_input(existing)
            self.server = pulumi.Output.from_input(existing)
        else:
            self._create(name, args)
        self.register_outputs({"address": self.address, "server": self.server, "name": self.name,
                               "push_username": self.push_username, "push_password": self.push_password})

    def _create(self, name: str, args: RegistryArgs) -> None:
        if args.registry.adopt:
            registry = digitalocean.ContainerRegistry.get(f"{name}-docr", args.registry.name,
                                                          opts=pulumi.ResourceOptions(parent=self))
            # The address waits for the tier check: no image is pushed into a registry that cannot hold them all.
            self.address = pulumi.Output.all(endpoint=registry.endpoint, tier=registry.subscription_tier_slug).apply(
                lambda v: adopted_address(args.registry.name, v["endpoint"], v["tier"], args.repositories))
        else:
            registry = digitalocean.ContainerRegistry(
                f"{name}-docr",
                name=args.registry.name,
                subscription_tier_slug=registry_tier(args.repositories, args.registry.tier),
                region=args.region,
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
            )
            self.address = registry.endpoint
        self.server = registry.server_url
        self.name = registry.name
        push = digitalocean.ContainerRegistryDockerCredentials(
            f"{name}-push", registry_name=registry.name, write=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        login: pulumi.Output[tuple[str, str]] = pulumi.Output.secret(
            pulumi.Output.all(creds=push.docker_credentials, server=registry.server_url).apply(
                lambda v: docker_login(v["creds"], v["server"])))
        self.push_username = pulumi.Output.secret(login.apply(lambda t: t[0]))
        self.push_password = pulumi.Output.secret(login.apply(lambda t: t[1]))
