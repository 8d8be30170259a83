"""The whole stack config, read once into frozen typed objects; every bad value is rejected before any resource.

    cfg = load_config(raw, secret_keys, stack="prod", project="devtools", commit="1a2b3c4")

`raw` maps `devtools:<key>` to the value Pulumi holds (strings; arrays and objects as JSON). Every problem is
collected and raised together as one ConfigError, each line naming the key, the bad value and what is allowed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agent.release import RELEASE_ID_RULE, is_reserved, release_id_problem
from agent.secretfile import parse_secrets, value_problem
from components.config_keys import BY_NAME, NAMESPACE, RETIRED
from components.config_read import ConfigError, Reader, Secret, close_match
from components.config_rules import cross_checks, with_host_key
from components.config_signing import SigningConfig, read_private_key_file, read_public_keys
from components.config_slices import AgentPlace, AnalysisSettings, SshLogin, StackIdentity, ValidatorSettings
from components.slo import PULL_BUCKETS, SloSpec, number

__all__ = ["ConfigError", "Secret", "SigningConfig", "StackConfig", "load_config", "read_slo"]


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
    host_key: str | None  # pinned: sshHostKey, or the public half of host_private_key (droplets)
    host_private_key: Secret  # the droplets' host key, installed by cloud-init
    allowlist: tuple[str, ...]

    @property
    def login(self) -> SshLogin:
        return SshLogin(self.user, self.host_key)


@dataclass(frozen=True)
class HostsConfig:
    provider: Literal["digitalocean", "existing"]
    count: int
    region: str
    size: str
    image: str
    monitoring: bool
    protect: bool
    vpc_ip_range: str
    existing: tuple[ExistingHost, ...]
    root: str


@dataclass(frozen=True)
class RegistryConfig:
    name: str
    adopt: bool  # read the account's registry `name` instead of creating it
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
    build_always: bool  # build this commit's images while the color runs a pinned release (exported as `build`)
    validate_deadline: int
    prometheus_url: str | None
    prometheus_selector: str
    compose_profiles: str
    host_port_prefix: int
    secrets: Mapping[str, Secret]
    langfuse_host: str | None = None
    trace_coverage_min: float = SloSpec.trace_coverage_min  # the trace phase's minimum: the SLO's sloTraceCoverage

    @property
    def validator(self) -> ValidatorSettings:
        return ValidatorSettings(self.validate_deadline, self.prometheus_url, self.prometheus_selector,
                                 langfuse_host=self.langfuse_host, trace_coverage_min=self.trace_coverage_min)


@dataclass(frozen=True)
class DataConfig:
    """The data tier (compose project `data`), used by the stack that owns it; the network by every stack on
    existing hosts."""

    droplet_size: str
    volume_size: int  # GiB; grows, never shrinks
    port_prefix: str  # two digits
    network: str  # the docker network both tiers join on an existing host
    backup_keep: int  # volume snapshots the scheduled backup keeps


@dataclass(frozen=True)
class TrafficConfig:
    mode: Literal["loadBalancer", "reservedIp", "localProxy", "none"]
    live_color: str
    lb_size_unit: int
    tls_certificate: str | None
    promotion: Mapping[str, str]  # {} or the promotion `ops.cli release` is analysing (color, release, from, ...)


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
    data: DataConfig
    snapshot: bool
    snapshot_generation: int
    release_strategy: Literal["blueGreen", "inPlace"]
    analysis: AnalysisSettings
    slo: SloSpec
    signing: SigningConfig

    @property
    def identity(self) -> StackIdentity:
        return StackIdentity(self.project, self.stack, self.color)

    @property
    def agent_place(self) -> AgentPlace:
        """This stack's project on every host: the host root and the color."""
        return AgentPlace(self.hosts.root, self.color)

    @property
    def builds(self) -> bool:
        """This stack's color runs this update's build."""
        return self.release.source == "build"

    @property
    def builds_images(self) -> bool:
        """This update builds and pushes the commit's images: its color runs them, or (buildAlways) the idle
        color will, while this stack's color keeps a pinned release."""
        return self.builds or self.release.build_always

    @property
    def signs(self) -> bool:
        """This update signs the images it pushes: it builds, and a private key is configured."""
        return self.builds_images and bool(self.signing.private_key.value)

    @property
    def owns_data(self) -> bool:
        """Declares the data tier: the stack that is its own prodStack (prod, local), which builds and owns traffic.
        Every other stack (blue, local-blue) declares none and reads prod's `data` output."""
        return self.prod_stack.rsplit("/", 1)[-1] == self.stack

    @property
    def shared_network(self) -> str | None:
        """The docker network both tiers join on an existing host (the colors reach the data services by name);
        None on droplets (the colors reach the data droplet's address)."""
        return self.data.network if self.hosts.provider == "existing" else None

    @property
    def follows_prod(self) -> bool:
        """Reads the prod stack (release, VPC, deploy key, registry) through a StackReference.

        A pinned release is looked up in this stack's own release history first, then (for a stack that does
        not build) in prod's.
        """
        return self.release.source == "prod" or (
            self.release.source == "pinned" and self.prod_stack.rsplit("/", 1)[-1] != self.stack)


def load_config(raw: Mapping[str, Any], secret_keys: set[str] | frozenset[str], *, stack: str, project: str,
                commit: str | None, root: Path, commit_source: str = "the git commit") -> StackConfig:
    """Read and check every `devtools:` key; raise ConfigError listing every problem.

    `commit` is the release id when devtools:releaseId is empty; `commit_source` names where it came from (an
    environment variable, or the checkout) for the message when the hosts would refuse it.
    """
    r = Reader(raw, set(secret_keys))
    for full in sorted(raw):
        ns, _, name = full.partition(":")
        if ns == NAMESPACE and name in RETIRED:
            r.problem(f"{full}: retired: {RETIRED[name]}")
        elif ns == NAMESPACE and name not in BY_NAME:
            hint = close_match(name, list(BY_NAME))
            r.problem(f"{full}: unknown key" + (f" (did you mean {NAMESPACE}:{hint}?)" if hint else
                                                 f"; known keys: {', '.join(sorted(BY_NAME))}"))
    if "digitalocean:token" in raw and "digitalocean:token" not in secret_keys:
        r.problem("digitalocean:token is stored in plain text: set it with `pulumi config set --secret "
                  "digitalocean:token …` or use the DIGITALOCEAN_TOKEN environment variable")
    cfg = _read(r, stack=stack, project=project, commit=commit, root=root, commit_source=commit_source)
    cross_checks(r, cfg)
    cfg = with_host_key(r, cfg)
    if r.problems:
        raise ConfigError(r.problems)
    return cfg


def _app_secrets(r: Reader) -> dict[str, Secret]:
    """appSecrets, each checked by the hosts' own rule (agent.secretfile): a value no container can receive as it
    is, or a name the release itself sets, stops the update before anything is built. Named by key, never value."""
    out: dict[str, Secret] = {}
    for key, value in {**_app_secrets_file(r), **r.string_map("appSecrets")}.items():
        problem = ("the name is reserved for the release itself (its id and image pins)" if is_reserved(key)
                   else value_problem(key, value))
        if problem:
            r.problem(f"{r.key('appSecrets')}.{problem if problem.startswith(key + ':') else f'{key}: {problem}'}")
        else:
            out[key] = Secret(value)
    return out


def _app_secrets_file(r: Reader) -> dict[str, str]:
    """The KEY=value lines of appSecretsPath (the secrets file's own format), {} when unset; a file that cannot be
    read is a problem naming the key and the path, never a value."""
    path = r.string("appSecretsPath")
    if not path:
        return {}
    try:
        return parse_secrets(Path(path).read_text())
    except OSError as exc:
        r.fail("appSecretsPath", path, f"a readable file of KEY=value lines ({exc.strerror})")
    except ValueError as exc:
        r.fail("appSecretsPath", path, f"a file of KEY=value lines ({exc})")
    return {}


def _read(r: Reader, *, stack: str, project: str, commit: str | None, root: Path, commit_source: str
          ) -> StackConfig:
    provider = r.string("provider")
    release = r.string("release")
    release_id = _release_id(r, release, commit, commit_source)
    key_path = r.string("sshPrivateKeyPath")
    app_root = Path(r.string("appRoot"))
    hosts = HostsConfig(
        provider="existing" if provider == "existing" else "digitalocean",
        count=r.integer("hostCount"),
        region=r.string("region"),
        size=r.string("dropletSize"),
        image=r.string("dropletImage"),
        monitoring=r.boolean("monitoring"),
        protect=r.boolean("protect"),
        vpc_ip_range=r.private_cidr("vpcIpRange", r.string("vpcIpRange")),
        existing=_existing_hosts(r),
        root=r.string("hostRoot"),
    )
    ssh = SshConfig(
        user=r.string("sshUser"),
        private_key=Secret(r.string("sshPrivateKey") or r.private_key_file("sshPrivateKeyPath", key_path)),
        private_key_path=key_path or None,
        public_key=r.string("sshPublicKey"),
        host_key=r.string("sshHostKey") or None,
        host_private_key=Secret(r.string("sshHostPrivateKey")),
        allowlist=r.cidrs("sshAllowlist"),
    )
    registry = RegistryConfig(
        name=r.string("registryName"),
        adopt=r.boolean("registryAdopt"),
        tier=r.string("registryTier"),
        address=r.string("registryAddress") or None,
        repo_prefix=r.string("repoPrefix"),
    )
    build = BuildConfig(
        app_root=app_root if app_root.is_absolute() else root / app_root,
        platform=r.string("buildPlatform"),
        on_preview=r.boolean("buildOnPreview"),
        cache=r.boolean("buildCache"),
        builder=r.string("buildBuilder") or None,
    )
    rel = ReleaseConfig(
        source="build" if release == "build" else "prod" if release == "prod" else "pinned",
        release_id=release_id,
        pinned=release if release not in ("build", "prod") else None,
        keep=r.integer("keepReleases"),
        build_always=r.boolean("buildAlways"),
        validate_deadline=r.integer("validateDeadline"),
        prometheus_url=r.string("prometheusUrl") or None,
        prometheus_selector=r.string("prometheusSelector"),
        compose_profiles=r.string("composeProfiles"),
        host_port_prefix=r.integer("hostPortPrefix"),
        secrets=_app_secrets(r),
        langfuse_host=r.string("langfuseHost") or None,
        trace_coverage_min=r.number("sloTraceCoverage"),
    )
    mode = r.string("traffic")
    traffic = TrafficConfig(
        mode=mode if mode in ("loadBalancer", "reservedIp", "localProxy") else "none",  # type: ignore[arg-type]
        live_color=r.string("liveColor"),
        lb_size_unit=r.integer("lbSizeUnit"),
        tls_certificate=r.string("tlsCertificateName") or None,
        promotion=r.string_map("promotion"),
    )
    return StackConfig(
        project=project, stack=stack, color=r.string("color"),
        prod_stack=r.string("prodStack"),
        standby_stack=r.string("standbyStack"),
        hosts=hosts, ssh=ssh, registry=registry, build=build, release=rel, traffic=traffic,
        data=DataConfig(droplet_size=r.string("dataDropletSize"), volume_size=r.integer("dataVolumeSize"),
                        port_prefix=r.string("dataPortPrefix"), network=r.string("dataNetwork"),
                        backup_keep=r.integer("dataBackupKeep")),
        snapshot=r.boolean("snapshot"), snapshot_generation=r.integer("snapshotGeneration"),
        release_strategy="inPlace" if r.string("releaseStrategy") == "inPlace" else "blueGreen",
        analysis=AnalysisSettings(
            interval=r.integer("analysisInterval"), count=r.integer("analysisCount"),
            failure_limit=r.integer("analysisFailureLimit"), max_error_ratio=r.number("analysisMaxErrorRatio"),
            max_p95_seconds=r.number("analysisMaxP95Seconds"), max_restarts=r.integer("analysisMaxRestarts"),
            prometheus_url=r.string("analysisPrometheusUrl") or None),
        slo=read_slo(r),
        signing=_signing(r, root),
    )


def _signing(r: Reader, root: Path) -> SigningConfig:
    """The signing keys (components.config_signing reads and checks each file, once, here)."""
    files = r.strings("signingPublicKeys")
    key_path = r.string("signingKeyPath")
    return SigningConfig(
        require=r.boolean("requireSignedImages"), public_keys=read_public_keys(r, root, files),
        public_key_files=files,
        private_key=Secret(r.string("signingKey") or read_private_key_file(r, root, key_path)),
        private_key_path=key_path or None, password=Secret(r.string("signingPassword")))


def read_slo(r: Reader) -> SloSpec:
    """The SLO keys (python -m components.slo reads a stack file through this too); a pull threshold that is no
    bucket bound of the pull histogram is refused, naming the bounds."""
    pull = r.number("sloPullP95Seconds")
    if pull not in PULL_BUCKETS and not r.problems_about("sloPullP95Seconds"):
        r.fail("sloPullP95Seconds", pull, "one of the pull histogram's bucket bounds: "
               + ", ".join(number(b) for b in PULL_BUCKETS))
        pull = SloSpec.pull_p95_seconds
    return SloSpec(error_ratio_max=r.number("sloErrorRatio"), rollout_success_min=r.number("sloRolloutSuccess"),
                   pull_p95_seconds=pull, trace_coverage_min=r.number("sloTraceCoverage"),
                   window=r.string("sloWindow"))


def _release_id(r: Reader, release: str, commit: str | None, commit_source: str) -> str:
    """devtools:releaseId, else the id from the commit, which is checked by the hosts' rule too when this update
    builds: otherwise every host would refuse it only after the images were pushed."""
    given = r.string("releaseId")
    if given or not commit:
        return given
    if release == "build" and release_id_problem(commit):
        shown = json.dumps(commit, ensure_ascii=False)
        r.problem(f"{commit_source}: the release id {shown} taken from it while {r.key('releaseId')} is empty is "
                  f"refused by the hosts ({RELEASE_ID_RULE}): set {r.key('releaseId')}, or correct {commit_source}")
    return commit


def _existing_hosts(r: Reader) -> tuple[ExistingHost, ...]:
    hosts = []
    for entry in r.strings("existingHosts"):
        address, _, port = entry.partition(":")
        number = int(port) if port else 22
        if not 1 <= number <= 65535:
            r.fail("existingHosts", entry, "a port 1-65535")
        hosts.append(ExistingHost(address, number))
    return tuple(hosts)
