"""Rules between stack config keys; each problem names the keys involved and the fix."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from agent.release import release_id_problem
from components.config_keys import BY_NAME, COLORS
from components.config_read import Reader
from components.ssh_keys import public_half, same_key

if TYPE_CHECKING:
    from components.config import StackConfig


def cross_checks(r: Reader, c: StackConfig) -> None:
    """Rules between keys; each names the keys involved and the fix."""
    k = r.key
    if not c.release.release_id and c.builds:
        r.problem(f"{k('releaseId')}: empty and no git commit found: set it, or run from a git checkout")
    if not c.ssh.private_key.value and not r.problems_about("sshPrivateKeyPath"):
        r.problem(f"{k('sshPrivateKey')}: not set: the rollout needs an SSH key (`pulumi config set --secret "
                  f"{k('sshPrivateKey')} < key`, or {k('sshPrivateKeyPath')} for a key file)")
    if r.is_given("sshPrivateKey") and r.is_given("sshPrivateKeyPath"):
        r.problem(f"{k('sshPrivateKeyPath')}: set together with {k('sshPrivateKey')}: keep one")
    _provider_checks(r, c)
    _stack_checks(r, c)
    _data_checks(r, c)
    _signing_checks(r, c)


def _provider_checks(r: Reader, c: StackConfig) -> None:
    if c.hosts.provider == "digitalocean":
        _droplet_checks(r, c)
    else:
        _existing_checks(r, c)


def _droplet_checks(r: Reader, c: StackConfig) -> None:
    k = r.key
    if not c.ssh.allowlist and not r.problems_about("sshAllowlist"):
        r.problem(f"{k('sshAllowlist')}: empty: list the CIDRs that may SSH to droplets (the deploy runner's "
                  "address); 0.0.0.0/0 is never the default")
    everywhere = [cidr for cidr in c.ssh.allowlist if cidr.endswith("/0")]
    if everywhere:
        r.problem(f"{k('sshAllowlist')}: {', '.join(everywhere)} admits every address to port 22: list a fixed "
                  "address (a self-hosted runner, a bastion); GitHub-hosted runners take an SSH lease "
                  "(`ops.cli ssh-lease`, docs/ci.md)")
    if not c.ssh.public_key and not r.problems_about("sshPublicKey"):
        r.problem(f"{k('sshPublicKey')}: not set: droplets need the public half of the rollout key")
    if not c.ssh.host_private_key.value and not r.problems_about("sshHostPrivateKey"):
        r.problem(f"{k('sshHostPrivateKey')}: not set: droplets get their SSH host key from the stack, so the "
                  f"rollout and ops.cli can pin it: run `python -m ops.cli hostkey --stack {c.stack}` (it makes "
                  "one with ssh-keygen and sets it as a secret)")
    if c.hosts.existing:
        r.problem(f"{k('existingHosts')}: set, but {k('provider')} is digitalocean: remove it or use existing")
    if c.traffic.mode == "localProxy":
        r.problem(f"{k('traffic')}: localProxy is the local stand-in; with digitalocean use loadBalancer, "
                  "reservedIp or none")


def _existing_checks(r: Reader, c: StackConfig) -> None:
    k = r.key
    if c.ssh.host_private_key.value:
        r.problem(f"{k('sshHostPrivateKey')}: only droplets get their host key from cloud-init; for an existing "
                  f"host set {k('sshHostKey')} to the public key it presents")
    if not c.hosts.existing:
        r.problem(f"{k('existingHosts')}: empty: {k('provider')} existing needs at least one address[:port]")
    if c.traffic.mode in ("loadBalancer", "reservedIp"):
        r.problem(f"{k('traffic')}: {c.traffic.mode} needs droplets; with existing hosts use localProxy or none")
    if c.snapshot:
        r.problem(f"{k('snapshot')}: snapshots need {k('provider')} digitalocean")
    if not c.registry.address:
        r.problem(f"{k('registryAddress')}: not set: existing hosts pull from an existing registry "
                  "(e.g. 127.0.0.1:5000)")


def _stack_checks(r: Reader, c: StackConfig) -> None:
    k = r.key
    if c.traffic.mode == "reservedIp" and c.hosts.count > 1:
        r.problem(f"{k('hostCount')}: {c.hosts.count} with {k('traffic')} reservedIp: a reserved IP points at "
                  "one droplet; use loadBalancer for several")
    if c.traffic.mode == "none" and c.traffic.live_color != BY_NAME["liveColor"].default:
        r.problem(f"{k('liveColor')}: set on a stack without traffic ({k('traffic')}: none): flip on the stack "
                  "that owns traffic")
    if c.release.source == "prod" and c.prod_stack.rsplit("/", 1)[-1] == c.stack:
        r.problem(f"{k('prodStack')}: {c.prod_stack!r} is this stack: a stack cannot follow itself "
                  f"(use {k('release')}: build here)")
    if c.release.build_always and c.release.source == "pinned" and c.follows_prod:
        r.problem(f"{k('buildAlways')}: set on a stack that follows {c.prod_stack}: only the stack that is its own "
                  f"{k('prodStack')} builds images; remove it")
    if c.release.build_always and c.release.source == "prod":
        r.problem(f"{k('buildAlways')}: set with {k('release')}: prod: a stack that follows prod never builds; "
                  "remove it")
    _promotion_checks(r, c)
    if c.traffic.mode != "none" and c.traffic.live_color != c.color and c.standby_stack.rsplit("/", 1)[-1] == c.stack:
        r.problem(f"{k('standbyStack')}: {c.standby_stack!r} is this stack")
    if c.registry.address and re.match(r"registry\.digitalocean\.com", c.registry.address):
        r.problem(f"{k('registryAddress')}: a DigitalOcean registry is not given by address: leave it empty, set "
                  f"{k('registryName')}, and {k('registryAdopt')} true to use the account's existing registry")
    if c.registry.adopt and c.registry.address:
        r.problem(f"{k('registryAdopt')}: adopts a DigitalOcean registry by name; {k('registryAddress')} is another "
                  "registry: keep one")
    if c.registry.adopt and c.registry.tier != BY_NAME["registryTier"].default:
        r.problem(f"{k('registryTier')}: {c.registry.tier} with {k('registryAdopt')}: an adopted registry keeps its "
                  f"own tier (checked against the release at preview); leave it {BY_NAME['registryTier'].default}")


DATA_OWNER_KEYS = ("dataDropletSize", "dataVolumeSize", "dataPortPrefix")
"""What only the stack that owns the data tier uses: set on another stack, it would change nothing."""


def _data_checks(r: Reader, c: StackConfig) -> None:
    k = r.key
    if not c.owns_data:
        for name in DATA_OWNER_KEYS:
            if r.is_given(name):
                r.problem(f"{k(name)}: set on stack {c.stack}, which does not own the data tier (it reads the data "
                          f"tier of {k('prodStack')} {c.prod_stack}): set it on stack {c.prod_stack}, remove it here")
    elif c.hosts.provider == "existing" and c.data.port_prefix == str(c.release.host_port_prefix):
        r.problem(f"{k('dataPortPrefix')}: {c.data.port_prefix} is this stack's {k('hostPortPrefix')} too: on an "
                  "existing host the data tier shares the docker engine with the colors, so its ports would collide; "
                  "pick another prefix (the local stand-in: colors 81 and 82, the data tier 83)")


def _signing_checks(r: Reader, c: StackConfig) -> None:
    """Required signatures need a public key on every stack, and a private key on a stack that builds (its images
    are signed after their push); a stack that follows another's images needs only the public keys."""
    k, s = r.key, c.signing
    if s.require and not s.public_key_files and not r.problems_about("signingPublicKeys"):
        r.problem(f"{k('signingPublicKeys')}: empty while {k('requireSignedImages')} is true: list the public key "
                  "file(s) the hosts accept, such as signing/prod.pub (signing/README.md), or set "
                  f"{k('requireSignedImages')} false")
    if r.is_given("signingKey") and r.is_given("signingKeyPath"):
        r.problem(f"{k('signingKeyPath')}: set together with {k('signingKey')}: keep one")
    elif (c.builds_images and s.require and not s.private_key.value
          and not r.problems_about("signingKey") and not r.problems_about("signingKeyPath")):
        r.problem(f"{k('signingKey')}: not set while {k('requireSignedImages')} is true and stack {c.stack} builds "
                  "images, which are signed after their push: set the private half of a key in "
                  f"{k('signingPublicKeys')} with `pulumi config set --secret {k('signingKey')} < cosign.key` (or "
                  f"{k('signingKeyPath')}, a key file), or set {k('requireSignedImages')} false")


def with_host_key(r: Reader, cfg: StackConfig) -> StackConfig:
    """Droplets pin the public half of the stack's host key (derived, never typed twice); a given sshHostKey must be
    that key."""
    private = cfg.ssh.host_private_key.value
    if not private or r.problems_about("sshHostPrivateKey"):
        return cfg
    public = public_half(private).line
    if cfg.ssh.host_key and not same_key(cfg.ssh.host_key, public):
        r.problem(f"{r.key('sshHostKey')}: not the public half of {r.key('sshHostPrivateKey')}: remove it (droplets "
                  "pin the public half of the host key cloud-init installs)")
    return replace(cfg, ssh=replace(cfg.ssh, host_key=public))


PROMOTION_FIELDS = ("color", "release", "from", "run", "started")


def _promotion_checks(r: Reader, c: StackConfig) -> None:
    """devtools:promotion is written by `ops.cli release` between a promotion and the end of its bake window:
    the color traffic was moved to (liveColor), the release it runs, the color it came from."""
    p = c.traffic.promotion
    if not p:
        return
    k = r.key
    missing = [f for f in PROMOTION_FIELDS if not p.get(f)]
    if missing:
        r.problem(f"{k('promotion')}: lacks {', '.join(missing)}: it is written by `python -m ops.cli release`; "
                  f"remove the key (`pulumi config rm {k('promotion')}`) and run `ops.cli release` again")
        return
    if c.traffic.mode == "none":
        r.problem(f"{k('promotion')}: set on a stack without traffic ({k('traffic')}: none): only the traffic owner "
                  "records a promotion")
    if p["color"] != c.traffic.live_color or p["from"] not in COLORS or p["from"] == p["color"]:
        r.problem(f"{k('promotion')}: color {p['color']!r} from {p['from']!r} does not match {k('liveColor')} "
                  f"{c.traffic.live_color!r}: a promotion records the move to the live color from the other one")
    problem = release_id_problem(p["release"])
    if problem:
        r.problem(f"{k('promotion')}.release: {problem}")
