"""The whole stack config, read once into frozen typed objects; every bad value is rejected before any resource.

    cfg = load_config(raw, secret_keys, stack="prod", project="devtools", commit="1a2b3c4")

`raw` maps `devtools:<key>` to the value Pulumi holds (strings; arrays and objects as JSON). Every problem is
collected and raised together as one ConfigError, each line naming the key, the bad value and what is allowed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from components.config_keys import BY_NAME, NAMESPACE
from components.config_read import ConfigError, Reader, close_match
from components.config_rules import cross_checks

__all__ = ["ConfigError", "StackConfig", "load_config"]

COLORS = ("green", "blue")
TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
SLUG = r"[a-z0-9][a-z0-9-]{0,62}"
HOSTPORT = r"[A-Za-z0-9.-]+(:[0-9]{1,5})?"
STACK = r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}"
ENV_NAME = r"[A-Z_][A-Z0-9_]*"


@dataclass(frozen=True)
class Secret:
    """A secret value; its repr never shows it. Components turn it into a Pulumi secret at the point of use."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret(***)" if self.value else "Secret()"


@dataclass(frozen=True)
class ExistingHost:
    address: str
    port: int


@dataclass(frozen=True)
class SshConfig:
    user: str
    private_key: Secret
    private_key_path: str | None
    public_key: str
    host_key: str | None
    allowlist: tuple[str, ...]


@dataclass(frozen=True)
class HostsConfig:
    provider: Literal["digitalocean", "existing"]
    count: int
    region: str
    size: str
    image: str
    from_snapshot: bool
    monitoring: bool
    protect: bool
    vpc_ip_range: str
    existing: tuple[ExistingHost, ...]
    root: str


@dataclass(frozen=True)
class RegistryConfig:
    name: str
    tier: str
    address: str | None  # an existing registry (no DOCR created)
    repo_prefix: str


@dataclass(frozen=True)
class BuildConfig:
    app_root: Path
    platform: str
    on_preview: bool
    cache: bool
    builder: str | None


@dataclass(frozen=True)
class ReleaseConfig:
    source: Literal["build", "prod", "pinned"]
    release_id: str  # the tag of this update's build
    pinned: str | None  # with source "pinned"
    keep: int
    validate_deadline: int
    prometheus_url: str | None
    prometheus_selector: str
    compose_profiles: str
    host_port_prefix: int
    secrets: Mapping[str, Secret]


@dataclass(frozen=True)
class TrafficConfig:
    mode: Literal["loadBalancer", "reservedIp", "localProxy", "none"]
    live_color: str
    lb_size_unit: int
    tls_certificate: str | None


@dataclass(frozen=True)
class StackConfig:
    project: str
    stack: str
    color: str
    prod_stack: str
    standby_stack: str
    hosts: HostsConfig
    ssh: SshConfig
    registry: RegistryConfig
    build: BuildConfig
    release: ReleaseConfig
    traffic: TrafficConfig
    snapshot: bool
    snapshot_generation: int

    @property
    def builds(self) -> bool:
        return self.release.source == "build"

    @property
    def follows_prod(self) -> bool:
        """Reads the prod stack (release, snapshot, VPC, registry) through a StackReference.

        A pinned release is looked up in this stack's own release history first, then (for a stack that does
        not build) in prod's.
        """
        return self.release.source == "prod" or self.hosts.from_snapshot or (
            self.release.source == "pinned" and self.prod_stack.rsplit("/", 1)[-1] != self.stack)


def load_config(raw: Mapping[str, Any], secret_keys: set[str] | frozenset[str], *, stack: str, project: str,
                commit: str | None, root: Path) -> StackConfig:
    """Read and check every `devtools:` key; raise ConfigError listing every problem."""
    r = Reader(raw, set(secret_keys))
    for full in sorted(raw):
        ns, _, name = full.partition(":")
        if ns == NAMESPACE and name not in BY_NAME:
            hint = close_match(name, list(BY_NAME))
            r.problem(f"{full}: unknown key" + (f" (did you mean {NAMESPACE}:{hint}?)" if hint else
                                                 f"; known keys: {', '.join(sorted(BY_NAME))}"))
    if "digitalocean:token" in raw and "digitalocean:token" not in secret_keys:
        r.problem("digitalocean:token is stored in plain text: set it with `pulumi config set --secret "
                  "digitalocean:token …` or use the DIGITALOCEAN_TOKEN environment variable")
    cfg = _read(r, stack=stack, project=project, commit=commit, root=root)
    cross_checks(r, cfg)
    if r.problems:
        raise ConfigError(r.problems)
    return cfg


def _read(r: Reader, *, stack: str, project: str, commit: str | None, root: Path) -> StackConfig:
    provider = r.string("provider", choices=("digitalocean", "existing"))
    release = r.string("release", TAG, "`build`, `prod` or a release id (letters, digits, . _ -)")
    release_id = r.string("releaseId", TAG, "a docker tag: letters, digits, . _ - (at most 128)") or commit or ""
    key_path = r.string("sshPrivateKeyPath")
    app_root = Path(r.string("appRoot"))
    hosts = HostsConfig(
        provider="existing" if provider == "existing" else "digitalocean",
        count=r.integer("hostCount", 1, 10),
        region=r.string("region", r"[a-z]{3}[0-9]", "a region slug such as nyc3, fra1, sgp1"),
        size=r.string("dropletSize", SLUG, "a droplet size slug such as s-2vcpu-4gb"),
        image=r.string("dropletImage", SLUG, "an image slug such as ubuntu-24-04-x64"),
        from_snapshot=r.boolean("fromSnapshot"),
        monitoring=r.boolean("monitoring"),
        protect=r.boolean("protect"),
        vpc_ip_range=_vpc_range(r),
        existing=_existing_hosts(r),
        root=r.string("hostRoot", r"/[A-Za-z0-9._/-]*[A-Za-z0-9._-]", "an absolute path of letters, digits, . _ - /"),
    )
    ssh = SshConfig(
        user=r.string("sshUser", r"[a-z_][a-z0-9_-]{0,31}", "a user name such as root or deploy"),
        private_key=Secret(r.string("sshPrivateKey") or _read_key(r, key_path)),
        private_key_path=key_path or None,
        public_key=r.string("sshPublicKey", r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?",
                            "an OpenSSH public key line (ssh-ed25519 AAAA… comment)"),
        host_key=r.string("sshHostKey", r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?",
                          "an OpenSSH public key line (the host's key)") or None,
        allowlist=r.cidrs("sshAllowlist"),
    )
    registry = RegistryConfig(
        name=r.string("registryName", r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", "3-63 lowercase letters, digits and -"),
        tier=r.string("registryTier", choices=("auto", "starter", "basic", "professional")),
        address=r.string("registryAddress", HOSTPORT, "host[:port] such as 127.0.0.1:5000") or None,
        repo_prefix=r.string("repoPrefix", r"[a-z0-9]+([._/-][a-z0-9]+)*", "a lowercase repository path"),
    )
    build = BuildConfig(
        app_root=app_root if app_root.is_absolute() else root / app_root,
        platform=r.string("buildPlatform", r"linux/(amd64|arm64|arm/v7)", "linux/amd64, linux/arm64 or linux/arm/v7"),
        on_preview=r.boolean("buildOnPreview"),
        cache=r.boolean("buildCache"),
        builder=r.string("buildBuilder", r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", "a buildx builder name") or None,
    )
    rel = ReleaseConfig(
        source="build" if release == "build" else "prod" if release == "prod" else "pinned",
        release_id=release_id,
        pinned=release if release not in ("build", "prod") else None,
        keep=r.integer("keepReleases", 2, 50),
        validate_deadline=r.integer("validateDeadline", 10, 1800),
        prometheus_url=r.string("prometheusUrl", r"https?://[A-Za-z0-9.:\[\]-]+(/.*)?", "an http(s) URL") or None,
        prometheus_selector=r.string("prometheusSelector", r'([a-z_]+="[^"]*")(,[a-z_]+="[^"]*")*',
                                     'label matchers such as color="green"'),
        compose_profiles=r.string("composeProfiles", r"[a-z0-9_-]+(,[a-z0-9_-]+)*", "comma-separated profile names"),
        host_port_prefix=r.integer("hostPortPrefix", 10, 99),
        secrets={k: Secret(v) for k, v in r.string_map("appSecrets", ENV_NAME, "UPPER_CASE names").items()},
    )
    mode = r.string("traffic", choices=("loadBalancer", "reservedIp", "localProxy", "none"))
    traffic = TrafficConfig(
        mode=mode if mode in ("loadBalancer", "reservedIp", "localProxy") else "none",  # type: ignore[arg-type]
        live_color=r.string("liveColor", choices=COLORS),
        lb_size_unit=r.integer("lbSizeUnit", 1, 100),
        tls_certificate=r.string("tlsCertificateName", r"[A-Za-z0-9][A-Za-z0-9._-]*", "a certificate name") or None,
    )
    return StackConfig(
        project=project, stack=stack, color=r.string("color", choices=COLORS),
        prod_stack=r.string("prodStack", STACK, "a stack name: stack, project/stack or org/project/stack"),
        standby_stack=r.string("standbyStack", STACK, "a stack name: stack, project/stack or org/project/stack"),
        hosts=hosts, ssh=ssh, registry=registry, build=build, release=rel, traffic=traffic,
        snapshot=r.boolean("snapshot"), snapshot_generation=r.integer("snapshotGeneration", 1, 9999),
    )


def _read_key(r: Reader, path: str) -> str:
    """The private key from `sshPrivateKeyPath` (read once, here); a problem when it cannot be read."""
    if not path:
        return ""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        r.fail("sshPrivateKeyPath", path, f"a readable private key file ({exc.strerror})")
        return ""
    if "PRIVATE KEY" not in text:
        r.fail("sshPrivateKeyPath", path, "a file holding an OpenSSH or PEM private key")
        return ""
    return text


def _vpc_range(r: Reader) -> str:
    value = r.string("vpcIpRange", r"[0-9.]+/[0-9]{1,2}", "a private IPv4 CIDR such as 10.110.0.0/20")
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        r.fail("vpcIpRange", value, f"a private IPv4 CIDR ({exc})")
        return str(BY_NAME["vpcIpRange"].default)
    if not net.is_private or not 16 <= net.prefixlen <= 28:
        r.fail("vpcIpRange", value, "a private IPv4 CIDR between /16 and /28")
    return value


def _existing_hosts(r: Reader) -> tuple[ExistingHost, ...]:
    hosts = []
    for entry in r.strings("existingHosts", HOSTPORT, "address[:port] such as 127.0.0.1:2222"):
        address, _, port = entry.partition(":")
        number = int(port) if port else 22
        if not 1 <= number <= 65535:
            r.fail("existingHosts", entry, "a port 1-65535")
        hosts.append(ExistingHost(address, number))
    return tuple(hosts)
