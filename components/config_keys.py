"""Every `devtools:` stack config key: type, default, secret flag and meaning — the one table.

Pulumi.yaml's `config:` schema, the README's key table and `load_config` all follow this table; a unit test
keeps Pulumi.yaml and the README in step with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NAMESPACE = "devtools"


@dataclass(frozen=True)
class Key:
    name: str
    type: str  # string | integer | boolean | array | object (Pulumi config schema types)
    default: Any
    meaning: str
    secret: bool = False

    @property
    def in_schema(self) -> bool:
        """Declared in Pulumi.yaml's `config:`. Objects cannot be (the schema has no object type), nor secrets: the
        CLI refuses a plain default for a secret key, and a secret key without a default would be required on
        every stack (the local stack reads its key from sshPrivateKeyPath instead)."""
        return self.type != "object" and not self.secret


KEYS: tuple[Key, ...] = (
    # what this stack is
    Key("provider", "string", "digitalocean", "where hosts come from: `digitalocean` (droplets) or `existing`"),
    Key("color", "string", "green", "the color of this stack's hosts: `green` or `blue`"),
    Key("liveColor", "string", "green", "the color the traffic resource points at (a flip changes only this)"),
    Key("traffic", "string", "loadBalancer",
        "traffic resource: `loadBalancer`, `reservedIp`, `localProxy` (the local stand-in) or `none`"),
    Key("standbyStack", "string", "blue", "stack holding the other color's hosts (read when liveColor ≠ color)"),
    Key("prodStack", "string", "prod", "stack whose release, snapshot, VPC and registry a standby follows"),
    # release
    Key("release", "string", "build", "which release runs: `build` (this update's images), `prod` (prod's "
        "current release) or a release id from the followed stack's history"),
    Key("releaseId", "string", "", "release id (image tag) for `release: build`; empty = the git short sha, "
        "plus -dirty-<hash> when compose/, ops/ or the app differ from it"),
    Key("keepReleases", "integer", 5, "releases the host agent keeps (rollback targets)"),
    Key("validateDeadline", "integer", 120, "seconds the validation may take on a host"),
    Key("prometheusUrl", "string", "", "Prometheus the validator queries on the host (empty: phase skipped)"),
    Key("prometheusSelector", "string", "", "label selector for the Prometheus phase, e.g. color=\"green\""),
    Key("composeProfiles", "string", "edge", "compose profiles enabled on hosts (`edge` = Caddy + Prometheus)"),
    Key("hostPortPrefix", "integer", 80, "published ports are 127.0.0.1:<prefix>0N on the host (10-99)"),
    Key("appSecrets", "object", {}, "application secrets NAME → value, written to a 0600 file on every host",
        secret=True),
    # hosts
    Key("hostCount", "integer", 1, "droplets of this color (rolled one after another)"),
    Key("region", "string", "nyc3", "DigitalOcean region slug"),
    Key("dropletSize", "string", "s-2vcpu-4gb", "droplet size slug"),
    Key("dropletImage", "string", "ubuntu-24-04-x64", "droplet image slug (ignored with fromSnapshot)"),
    Key("fromSnapshot", "boolean", False, "create droplets from the followed stack's exported snapshot"),
    Key("snapshot", "boolean", False, "take a snapshot of the primary host and export it"),
    Key("snapshotGeneration", "integer", 1, "bump to take a fresh snapshot (the old one is kept until deleted)"),
    Key("vpcIpRange", "string", "10.110.0.0/20", "IP range of the VPC the stack creates (standbys join prod's)"),
    Key("monitoring", "boolean", True, "DigitalOcean droplet monitoring agent"),
    Key("protect", "boolean", True, "protect the registry and the primary droplets from deletion"),
    Key("sshAllowlist", "array", [], "CIDRs allowed to SSH to droplets (required for digitalocean; never "
        "0.0.0.0/0 by default)"),
    Key("sshPublicKey", "string", "", "public key installed on droplets (required for digitalocean)"),
    Key("sshPrivateKey", "string", "", "private key the rollout connects with", secret=True),
    Key("sshPrivateKeyPath", "string", "", "file holding the private key instead of sshPrivateKey (local)"),
    Key("sshUser", "string", "root", "SSH user on the hosts"),
    Key("sshHostKey", "string", "", "expected SSH host public key of existing hosts (empty: not pinned)"),
    Key("existingHosts", "array", [], "`address[:port]` of each existing host (provider existing)"),
    Key("hostRoot", "string", "/opt/devtools", "the host agent's directory on every host"),
    # registry and builds
    Key("registryName", "string", "devtools", "DigitalOcean Container Registry name"),
    Key("registryTier", "string", "auto", "DOCR tier: `auto` (fits the built services), starter, basic, professional"),
    Key("registryAddress", "string", "", "use this existing registry instead of creating DOCR (local)"),
    Key("repoPrefix", "string", "", "repository path prefix inside the registry"),
    Key("appRoot", "string", "examples/app", "the application checkout the build contexts live under"),
    Key("buildPlatform", "string", "linux/amd64", "image platform"),
    Key("buildOnPreview", "boolean", False, "build (never push) images during `pulumi preview`"),
    Key("buildBuilder", "string", "", "buildx builder the images are built with (empty: the provider's default; "
        "the local stand-in's `devtools-local` is buildkitd from scripts/buildkit-local.sh)"),
    Key("buildCache", "boolean", True, "share a registry build cache per service (needs a BuildKit builder that "
        "exports caches; off for the local stand-in, whose builder keeps its own cache)"),
    # traffic
    Key("lbSizeUnit", "integer", 1, "load balancer size units (1-100)"),
    Key("tlsCertificateName", "string", "", "DigitalOcean certificate name for an HTTPS rule (empty: HTTP only)"),
)

BY_NAME = {k.name: k for k in KEYS}
