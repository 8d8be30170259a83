"""Every `devtools:` stack config key: type, default, secret flag, meaning and checks — the one table.

`load_config` reads each key by name and takes its checks from here (pattern and what it allows in words,
integer range, choices); Pulumi.yaml's `config:` block and docs/config.md are generated from it
(`python -m components.config_doc --write`). A new key is a row here plus its use in components/config.py.
Rules between keys are not in the table: components/config_rules.py holds them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.release import RELEASE_ID_RULE, release_id_problem
from components.signing_keys import private_key_problem
from components.ssh_keys import host_private_key_problem, public_key_problem

NAMESPACE = "devtools"

COLORS = ("green", "blue")
SLUG = r"[a-z0-9][a-z0-9-]{0,62}"
HOSTPORT = r"[A-Za-z0-9.-]+(:[0-9]{1,5})?"
STACK = r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}"
ENV_NAME = r"[A-Z_][A-Z0-9_]*"
OPENSSH_KEY = r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?"
STACK_NAME = "a stack name: stack, project/stack or org/project/stack"


def release_id_or_empty(value: str) -> bool:
    """releaseId: empty (the id then comes from the commit) or an id every host accepts (agent.release)."""
    return value == "" or release_id_problem(value) is None


def release_choice(value: str) -> bool:
    """release: `build`, `prod`, or a pinned id every host accepts (agent.release)."""
    return value in ("build", "prod") or release_id_problem(value) is None


DURATION = r"([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?"
"""A Prometheus duration: units largest first, each at most once (what Prometheus parses)."""


def positive_duration(value: str) -> bool:
    """sloWindow: a Prometheus duration longer than 0 (the empty text matches DURATION too)."""
    return re.fullmatch(DURATION, value) is not None and any(c in "123456789" for c in value)


@dataclass(frozen=True)
class Key:
    name: str
    type: str  # string | integer | number | boolean | array | object
    default: Any
    meaning: str
    secret: bool = False
    pattern: str | None = None
    """Full match for a non-empty string, for each entry of an array, for each name of an object."""
    allowed: str = ""
    """What `pattern` (or `accepts`) admits, in words: the error message ends with it."""
    accepts: Callable[[str], bool] | None = None
    """A rule a pattern cannot say (the hosts' release id rule); applies to every string value, empty included."""
    explain: Callable[[str], str | None] | None = None
    """A check that says why a non-empty value is refused (None: accepted), run before the pattern; the error
    message is `allowed` followed by its reason (an OpenSSH key read down to its key bytes)."""
    range: tuple[float, float] | None = None
    """Integers and numbers: the inclusive range (lo, hi)."""
    choices: tuple[str, ...] = ()
    """Strings: the only values allowed."""

    @property
    def in_schema(self) -> bool:
        """Declared in Pulumi.yaml's `config:`. Objects cannot be (the schema has no object type), nor secrets: the
        CLI refuses a plain default for a secret key, and a secret key without a default would be required on
        every stack (the local stack reads its key from sshPrivateKeyPath instead)."""
        return self.type != "object" and not self.secret

    @property
    def schema_type(self) -> str:
        """The type Pulumi.yaml declares. Pulumi's project schema knows string, integer, boolean, array and object
        but no number (the CLI refuses `type: number`), so a number key is declared a string: `pulumi config set`
        stores its text either way, and the program reads it as a number with the key's range."""
        return "string" if self.type == "number" else self.type

    @property
    def schema_default(self) -> Any:
        """The default as Pulumi.yaml declares it: a number key's default as its decimal text (see schema_type)."""
        return number_text(self.default) if self.type == "number" else self.default

    def rule(self) -> str:
        """What a value may be, in the words an error message uses ("" when anything of the type goes)."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.range is not None:
            lo, hi = self.range
            if self.type == "number":
                return f"a number {number_text(lo)}-{number_text(hi)}"
            return f"an integer {lo}-{hi}"
        return self.allowed


def number_text(value: float) -> str:
    """A number as the shortest decimal text that reads back as the same float, without a trailing `.0`."""
    text = repr(float(value))
    return text.removesuffix(".0")


KEYS: tuple[Key, ...] = (
    # what this stack is
    Key("provider", "string", "digitalocean", "where hosts come from: `digitalocean` (droplets) or `existing`",
        choices=("digitalocean", "existing")),
    Key("color", "string", "green", "the color of this stack's hosts: `green` or `blue`", choices=COLORS),
    Key("liveColor", "string", "green", "the color the traffic resource points at (a flip changes only this)",
        choices=COLORS),
    Key("traffic", "string", "loadBalancer",
        "traffic resource: `loadBalancer`, `reservedIp`, `localProxy` (the local stand-in) or `none`",
        choices=("loadBalancer", "reservedIp", "localProxy", "none")),
    Key("standbyStack", "string", "blue", "stack holding the other color's hosts (read when liveColor ≠ color)",
        pattern=STACK, allowed=STACK_NAME),
    Key("prodStack", "string", "prod", "stack whose release, VPC, deploy key and registry a standby follows",
        pattern=STACK, allowed=STACK_NAME),
    # release
    Key("release", "string", "build", "which release runs: `build` (this update's images), `prod` (prod's "
        "current release) or a release id from the followed stack's history",
        accepts=release_choice, allowed=f"`build`, `prod` or a release id the hosts accept ({RELEASE_ID_RULE})"),
    Key("releaseId", "string", "", "release id (image tag) for `release: build`; empty = the git short sha, "
        "plus -dirty-<hash> when compose/ or the app differ from it",
        accepts=release_id_or_empty,
        allowed=f"a release id the hosts accept ({RELEASE_ID_RULE}), or empty for the commit's short sha"),
    Key("buildAlways", "boolean", False, "also build and push this commit's images while this stack's color runs "
        "a pinned release (`release: <id>`): exported as `build`, kept in `builds`, for the idle color to take "
        "(`ops.cli release` sets it on the traffic owner while its own color serves users)"),
    Key("promotion", "object", {}, "a promotion under post-promotion analysis, written by `ops.cli release` and "
        "exported as `promotion` (never by hand): color, release, from, run, started; empty when none",
        pattern=r"color|release|from|run|started", allowed="the names color, release, from, run and started"),
    Key("keepReleases", "integer", 5, "releases the host agent keeps (rollback targets)", range=(2, 50)),
    Key("validateDeadline", "integer", 120, "seconds the validation may take on a host", range=(10, 1800)),
    Key("prometheusUrl", "string", "", "Prometheus the validator queries on the host (empty: phase skipped)",
        pattern=r"https?://[A-Za-z0-9.:\[\]-]+(/.*)?", allowed="an http(s) URL"),
    Key("prometheusSelector", "string", "", "label selector for the Prometheus phase, e.g. color=\"green\"",
        pattern=r'([a-z_]+="[^"]*")(,[a-z_]+="[^"]*")*', allowed='label matchers such as color="green"'),
    Key("composeProfiles", "string", "edge", "compose profiles enabled on hosts (`edge` = Caddy + Prometheus)",
        pattern=r"[a-z0-9_-]+(,[a-z0-9_-]+)*", allowed="comma-separated profile names"),
    Key("hostPortPrefix", "integer", 80, "published ports are 127.0.0.1:<prefix>0N on the host (10-99)",
        range=(10, 99)),
    Key("appSecrets", "object", {}, "application secrets NAME → value, written to a 0600 file on every host",
        secret=True, pattern=ENV_NAME, allowed="UPPER_CASE names"),
    Key("appSecretsPath", "string", "", "file of KEY=value lines added to appSecrets, which wins on a name in both "
        "(local: the Langfuse stand-in's keys file)"),
    Key("langfuseHost", "string", "", "Langfuse the validator asks, after the agents' probes, for each agent's trace "
        "(empty: trace phase skipped); keys: appSecrets LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY",
        pattern=r"https?://[A-Za-z0-9.:\[\]-]+(/.*)?", allowed="an http(s) URL"),
    # promotion: how a release reaches traffic, and the analysis of the live color after it (ops.analysis)
    Key("releaseStrategy", "string", "blueGreen", "how a release reaches traffic: `blueGreen` (the idle color is "
        "released, then traffic flips to it) or `inPlace` (the live color is released where it serves)",
        choices=("blueGreen", "inPlace")),
    Key("analysisInterval", "integer", 30, "seconds between two measurements of the analysis after a promotion "
        "(the first one interval after it); the bake window is analysisInterval times analysisCount", range=(1, 600)),
    Key("analysisCount", "integer", 10, "measurements of each metric in the bake window", range=(1, 360)),
    Key("analysisFailureLimit", "integer", 1, "failed measurements one metric may have; one more fails the "
        "analysis (a query Prometheus does not answer is a failed measurement)", range=(0, 100)),
    Key("analysisMaxErrorRatio", "number", 0.01, "largest share of 5xx answers of any one service of the color that "
        "passes a measurement (the error-ratio objective's query; no requests at all: inconclusive)",
        range=(0.0, 1.0)),
    Key("analysisMaxP95Seconds", "number", 0.0, "largest 95th percentile of gateway-mcp's request duration that "
        "passes a measurement (0: not measured)", range=(0.0, 60.0)),
    Key("analysisMaxRestarts", "integer", 0, "process restarts of the color's services within the rate window "
        "that pass a measurement", range=(0, 100)),
    Key("analysisPrometheusUrl", "string", "", "Prometheus the analysis queries (empty: the live color's first "
        "host's own, 127.0.0.1:<hostPortPrefix>90 there in the edge profile, through an SSH tunnel; local stacks "
        "set the stand-in's)",
        pattern=r"https?://[A-Za-z0-9.:\[\]-]+(/.*)?", allowed="an http(s) URL"),
    # service level objectives (components.slo: the rules every app-tier release ships, and `ops.cli slo`)
    Key("sloErrorRatio", "number", 0.01, "largest share of 5xx answers per service the error-ratio objective allows "
        "(its target is 1 minus this)", range=(0.0, 1.0)),
    Key("sloRolloutSuccess", "number", 1.0, "share of compose rollouts (applies) per project that must succeed (1: "
        "no error budget, any failed rollout alerts)", range=(0.0, 1.0)),
    Key("sloPullP95Seconds", "number", 60.0, "seconds within which 95 % of image pulls per project must finish: a "
        "bucket bound of the pull histogram (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120 or 300)", range=(0.5, 300.0)),
    Key("sloTraceCoverage", "number", 0.9, "share of agents' end-to-end probes whose trace Langfuse holds",
        range=(0.0, 1.0)),
    Key("sloWindow", "string", "7d", "the window the SLO report looks back over by default (`ops.cli slo`)",
        pattern=DURATION, accepts=positive_duration,
        allowed="a Prometheus duration longer than 0 such as 7d, 30d or 1w"),
    # hosts
    Key("hostCount", "integer", 1, "droplets of this color (rolled one after another)", range=(1, 10)),
    Key("region", "string", "nyc3", "DigitalOcean region slug",
        pattern=r"[a-z]{3}[0-9]", allowed="a region slug such as nyc3, fra1, sgp1"),
    Key("dropletSize", "string", "s-2vcpu-4gb", "droplet size slug",
        pattern=SLUG, allowed="a droplet size slug such as s-2vcpu-4gb"),
    Key("dropletImage", "string", "ubuntu-24-04-x64", "droplet image slug: every droplet, standbys included, boots "
        "it and is set up by cloud-init",
        pattern=SLUG, allowed="an image slug such as ubuntu-24-04-x64"),
    Key("snapshot", "boolean", False, "take a backup image of the primary host once its release is validated, and "
        "export its id (never used to build standbys); the stack that owns the data tier also snapshots the data "
        "volume before the data release"),
    Key("snapshotGeneration", "integer", 1, "bump to take fresh snapshots (the primary's and the data volume's; the "
        "old ones are kept until deleted)", range=(1, 9999)),
    Key("vpcIpRange", "string", "", "IP range of the VPC the stack creates (standbys join prod's); empty: "
        "DigitalOcean picks a free range (a fixed one may collide with the account's default VPCs)",
        pattern=r"[0-9.]+/[0-9]{1,2}", allowed="a private IPv4 CIDR such as 10.110.0.0/20"),
    Key("monitoring", "boolean", True, "DigitalOcean droplet monitoring agent"),
    Key("protect", "boolean", True, "protect the registry and the primary droplets from deletion"),
    Key("sshAllowlist", "array", [], "fixed CIDRs allowed to SSH to droplets (required for digitalocean; a /0 is "
        "refused: GitHub-hosted runners take an SSH lease)",
        pattern=r"[0-9a-fA-F:./]+", allowed="an IPv4 or IPv6 CIDR such as 203.0.113.7/32"),
    Key("sshPublicKey", "string", "", "public key installed on droplets (required for digitalocean)",
        pattern=OPENSSH_KEY, allowed="an OpenSSH public key line (ssh-ed25519 AAAA… comment)",
        explain=public_key_problem),
    Key("sshPrivateKey", "string", "", "private key the rollout connects with", secret=True),
    Key("sshPrivateKeyPath", "string", "", "file holding the private key instead of sshPrivateKey (local)"),
    Key("sshUser", "string", "root", "SSH user on the hosts",
        pattern=r"[a-z_][a-z0-9_-]{0,31}", allowed="a user name such as root or deploy"),
    Key("sshHostPrivateKey", "string", "", "the droplets' SSH host key (`python -m ops.cli hostkey --stack "
        "<stack>` makes one and sets it): cloud-init installs it, the rollout and ops.cli pin its public half "
        "(required for digitalocean)",
        secret=True, allowed="an unencrypted OpenSSH private key (`python -m ops.cli hostkey` makes one)",
        explain=host_private_key_problem),
    Key("sshHostKey", "string", "", "expected SSH host public key of existing hosts (empty: not pinned); droplets "
        "pin the public half of sshHostPrivateKey",
        pattern=OPENSSH_KEY, allowed="an OpenSSH public key line (the host's key)", explain=public_key_problem),
    Key("existingHosts", "array", [], "`address[:port]` of each existing host (provider existing)",
        pattern=HOSTPORT, allowed="address[:port] such as 127.0.0.1:2222"),
    Key("hostRoot", "string", "/opt/devtools", "the host agent's directory on every host",
        pattern=r"/[A-Za-z0-9._/-]*[A-Za-z0-9._-]", allowed="an absolute path of letters, digits, . _ - /"),
    # the data tier (compose project `data`: once per environment, never flips; owned by the stack that is its
    # own prodStack, read by the others from its `data` output)
    Key("dataDropletSize", "string", "s-1vcpu-2gb", "size slug of the data droplet (digitalocean)",
        pattern=SLUG, allowed="a droplet size slug such as s-1vcpu-2gb"),
    Key("dataVolumeSize", "integer", 10, "GiB of the data droplet's block volume, which holds every named volume of "
        "the data tier (digitalocean): it can grow, never shrink", range=(1, 16384)),
    Key("dataPortPrefix", "string", "80", "the data services publish <prefix>0N (two digits; on existing hosts "
        "another prefix than the colors', the local stand-in's is 83)",
        pattern=r"[1-9][0-9]", allowed="two digits such as 80 or 83"),
    Key("dataNetwork", "string", "devtools-data", "docker network the tiers share on an existing host (the colors "
        "reach the data services by name over it)",
        pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", allowed="a docker network name"),
    Key("dataBackupKeep", "integer", 7, "backups (and data volume snapshots) the scheduled backup keeps (`ops.cli "
        "data backup`)", range=(1, 100)),
    # registry and builds
    Key("registryName", "string", "devtools", "DigitalOcean Container Registry name",
        pattern=r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", allowed="3-63 lowercase letters, digits and -"),
    Key("registryAdopt", "boolean", False, "use the account's existing DigitalOcean Container Registry named "
        "registryName instead of creating one (DigitalOcean allows one per account): it is read by name, never "
        "created, changed or deleted by this stack"),
    Key("registryTier", "string", "auto", "DOCR tier: `auto` (fits the built services), starter, basic, professional",
        choices=("auto", "starter", "basic", "professional")),
    Key("registryAddress", "string", "", "use this existing registry instead of creating DOCR (local)",
        pattern=HOSTPORT, allowed="host[:port] such as 127.0.0.1:5000"),
    Key("repoPrefix", "string", "", "repository path prefix inside the registry",
        pattern=r"[a-z0-9]+([._/-][a-z0-9]+)*", allowed="a lowercase repository path"),
    Key("appRoot", "string", "examples/app", "the application checkout the build contexts live under"),
    Key("buildPlatform", "string", "linux/amd64", "image platform",
        pattern=r"linux/(amd64|arm64|arm/v7)", allowed="linux/amd64, linux/arm64 or linux/arm/v7"),
    Key("buildOnPreview", "boolean", False, "build (never push) images during `pulumi preview`"),
    Key("buildBuilder", "string", "", "buildx builder the images are built with (empty: the provider's default; "
        "the local stand-in's `devtools-local` is buildkitd from scripts/buildkit-local.sh)",
        pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", allowed="a buildx builder name"),
    Key("buildCache", "boolean", True, "share a registry build cache per service (needs a BuildKit builder that "
        "exports caches; off for the local stand-in, whose builder keeps its own cache)"),
    # signed images (cosign): hosts verify every image of a release before anything changes (agent.signing)
    Key("requireSignedImages", "boolean", True, "hosts refuse a release unless every image is signed by a key of "
        "signingPublicKeys (verified before anything changes); a stack that builds signs each image it pushes"),
    Key("signingPublicKeys", "array", [], "PEM public key files the hosts accept signatures of (relative to the "
        "project root, or absolute), shipped with every release; two while a key is rotated (docs/runbook.md, "
        "Signing keys)",
        pattern=r"[A-Za-z0-9._/-]+", allowed="a file path such as signing/prod.pub"),
    Key("signingKey", "string", "", "the encrypted cosign private key the images are signed with after their push "
        "(`pulumi config set --secret devtools:signingKey < cosign.key`; signing/README.md)", secret=True,
        allowed="an encrypted cosign private key (cosign.key from `cosign generate-key-pair`)",
        explain=private_key_problem),
    Key("signingKeyPath", "string", "", "file holding the encrypted private key instead of signingKey (relative to "
        "the project root, or absolute; local: the stand-in's key pair)"),
    Key("signingPassword", "string", "", "the private key's password (cosign's COSIGN_PASSWORD; empty for a key made "
        "without one)", secret=True),
    # traffic
    Key("lbSizeUnit", "integer", 1, "load balancer size units (1-100)", range=(1, 100)),
    Key("tlsCertificateName", "string", "", "DigitalOcean certificate name for an HTTPS rule (empty: HTTP only)",
        pattern=r"[A-Za-z0-9][A-Za-z0-9._-]*", allowed="a certificate name"),
)

BY_NAME = {k.name: k for k in KEYS}

RETIRED: dict[str, str] = {
    "fromSnapshot": "standbys boot the base image (devtools:dropletImage) with cloud-init, like the primary: a "
                    "snapshot of the primary carried its running containers, its secrets file and its data into the "
                    "standby, and was taken while cloud-init still ran; remove the key",
}
"""Keys that no longer exist, each with why and what to do instead: a stack file still setting one is refused with
this text rather than as an unknown key."""
