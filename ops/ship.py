"""Ship a release to a host over SSH: bundle the compose files and pins, upload them with the host agent, apply.

    python -m ops.ship --pins pins.json --project green           # the local stand-in (scripts/local.env)
    python -m ops.ship --pins pins.json --project blue --ssh-host 10.0.0.5 --ssh-key ~/.ssh/id --no-local-env
    python -m ops.ship --pins pins.json --tier data               # the data tier, as compose project `data`
    python -m ops.ship --pins pins.json --tier app --project green   # a color's app tier, reaching `data`

Without --tier the whole compose file runs as one project. With a tier, the bundle carries that tier's compose file
(components.tiers: its services and volumes, joined to the shared docker network) and the release pins that tier's
services; a color's release sets each data service's address variable (STATE_URL, …) to its name on that network.
On the stand-in the data tier publishes at DATA_PORT_PREFIX and is validated with the Prometheus selector
color="data".

This is the laptop side of a rollout (the Pulumi program does the same through command resources). It only
copies files and runs `agent.hostagent apply`; the host decides everything else.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agent.release import release_manifest
from agent.remote import agent_command, apply_command, bundle_tar, upload_command
from agent.signing import manifest_section
from components.catalog import CatalogError
from components.tiers import APP, DATA, TIERS, data_env, read_tiers, tier_compose
from ops import build
from standin import localenv

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_DIR = ROOT / "compose"


@dataclass(frozen=True)
class SshTarget:
    host: str
    port: int
    user: str
    key: Path
    known_hosts: Path
    host_key_checking: str = "yes"
    """`yes` (the host must be in known_hosts) or `accept-new` (trust on first use, for hosts with no pinned key)."""

    def argv(self, remote_command: str) -> list[str]:
        """ssh with host-key checking on, no password prompts, and keep-alives that notice a dead link."""
        return [
            "ssh", "-p", str(self.port), "-i", str(self.key),
            "-o", "BatchMode=yes", "-o", f"StrictHostKeyChecking={self.host_key_checking}",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
            f"{self.user}@{self.host}", remote_command,
        ]


def put_secrets(target: SshTarget, host_root: str, project: str, text: str) -> int:
    """Send secrets on the SSH session's stdin: they never appear in an argv on either machine."""
    proc = subprocess.run(target.argv(agent_command(host_root, project, ["secrets"])), input=text.encode(),
                          capture_output=True, check=False, timeout=60)
    sys.stdout.write(proc.stdout.decode(errors="replace"))
    sys.stderr.write(proc.stderr.decode(errors="replace"))
    return proc.returncode


@dataclass(frozen=True)
class Tiered:
    """What one tier's release ships: its compose file, its services' pins, its release settings."""

    compose: bytes
    images: dict[str, str]
    env: dict[str, str]


def tier_release(compose_text: str, tier: str, images: dict[str, str], env: dict[str, str], *, network: str
                 ) -> Tiered:
    """The release of one tier (pure): the tier's compose file joined to `network`, the pins of its services and,
    for the app tier, each data service's address on that network (a setting given in `env` wins)."""
    tiers = read_tiers(compose_text)
    declared = yaml.safe_load(compose_text)["services"]
    keep = [s for s in (tiers.data if tier == DATA else tiers.app)  # those pinned by the release, not third-party
            if str(declared[s].get("image", "")).startswith("${")]
    missing = sorted(set(keep) - set(images))
    if missing:
        raise ValueError(f"--pins: no image for {', '.join(missing)} of the {tier} tier (build them with ops.build)")
    settings = dict(env)
    if tier == APP:
        for key, value in data_env(tiers, address=None, host_port_prefix="80").items():
            settings.setdefault(key, value)
    return Tiered(tier_compose(compose_text, tier, network=network),
                  {s: ref for s, ref in images.items() if s in keep}, settings)


def local_checks(local: localenv.LocalEnv, project: str, tier: str | None) -> tuple[str, str] | None:
    """(HOST_PORT_PREFIX, Prometheus selector) of a stand-in project: a color's, or the data tier's; None else."""
    if tier == DATA:
        return local.data_port_prefix, 'color="data"'
    if project in local.port_prefix:
        return local.port_prefix[project], f'color="{project}"'
    return None


def ship(target: SshTarget, host_root: str, project: str, manifest: dict[str, Any], agent_args: list[str], *,
         secrets: str | None = None, compose: bytes | None = None) -> int:
    """Upload the release and the agent, hand over secrets (stdin), then run the apply and stream its log.
    `compose`: the docker-compose.yml to ship instead of the checkout's (one tier's)."""
    t0 = time.monotonic()
    data = bundle_tar(manifest, COMPOSE_DIR, compose=compose)
    checksum, waits = hashlib.sha256(data).hexdigest(), lock_timeout(agent_args)
    up = subprocess.run(target.argv(upload_command(host_root, project, manifest["id"], checksum, lock_timeout=waits)),
                        input=data, capture_output=True, check=False, timeout=waits + 180)
    if up.returncode != 0:
        print(f"upload to {target.host}:{target.port} failed: {up.stderr.decode(errors='replace').strip()}",
              file=sys.stderr)
        return up.returncode or 1
    print(f"==> uploaded release {manifest['id']} ({len(data) // 1024} KiB) in {time.monotonic() - t0:.1f}s",
          flush=True)
    if secrets is not None:
        code = put_secrets(target, host_root, project, secrets)
        if code != 0:
            return code
    return subprocess.run(target.argv(apply_command(host_root, project, manifest["id"], agent_args)),
                          check=False).returncode


def lock_timeout(agent_args: list[str], default: int = 300) -> int:
    """The apply's `--lock-timeout` (the upload waits as long for the project's lock: it swaps the agent code only
    between jobs), or the agent's default."""
    for i, arg in enumerate(agent_args):
        value = arg.removeprefix("--lock-timeout=") if arg.startswith("--lock-timeout=") else (
            agent_args[i + 1] if arg == "--lock-timeout" and i + 1 < len(agent_args) else None)
        if value is not None:
            return max(1, round(float(value)))
    return default


def parse_env(items: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--env {item!r}: expected KEY=VALUE")
        env[key] = value
    return env


def main(argv: list[str] | None = None) -> int:
    local = localenv.load()
    p = argparse.ArgumentParser(prog="python -m ops.ship", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pins", type=Path, required=True, help="pins JSON written by `python -m ops.build`")
    p.add_argument("--project",
                   help="compose project on the host: a color (green, blue) or any other name (default: green, or "
                   "data with --tier data)")
    p.add_argument("--tier", choices=TIERS,
                   help="ship one tier (components.tiers): app to a color, data to the data project; default: the "
                   "whole compose file as one project")
    p.add_argument("--network", default=local.data_network,
                   help=f"with --tier: the docker network both tiers join (default {local.data_network}, "
                   "scripts/local.env's DATA_NETWORK)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra release setting")
    p.add_argument("--secrets-file", type=Path,
                   help="KEY=VALUE file sent over SSH stdin to the host's 0600 secrets file before the rollout")
    p.add_argument("--no-local-env", action="store_true",
                   help="do not add the local stand-in's port prefix and Prometheus check for this color")
    p.add_argument("--ssh-host", default=local.ssh_host)
    p.add_argument("--ssh-port", type=int, default=local.ssh_port)
    p.add_argument("--ssh-user", default=local.ssh_user)
    p.add_argument("--ssh-key", type=Path, default=local.ssh_key)
    p.add_argument("--known-hosts", type=Path, default=local.known_hosts)
    p.add_argument("--host-root", default=str(local.host_root), help="agent state directory on the host")
    p.add_argument("--public-key", action="append", default=[], type=Path, metavar="PEM",
                   help="a cosign public key the host verifies every image against before anything changes "
                        "(repeatable: during a rotation either key verifies); signatures are then required")
    p.add_argument("agent_args", nargs=argparse.REMAINDER, help="after --: extra `hostagent apply` options")
    args = p.parse_args(argv)
    try:
        pins = json.loads(args.pins.read_text())
    except (OSError, ValueError) as exc:
        print(f"--pins {args.pins}: {exc} (write it with `python -m ops.build --out {args.pins}`)", file=sys.stderr)
        return 2
    env = parse_env(args.env)
    project = args.project or (DATA if args.tier == DATA else "green")
    agent_args = [a for a in args.agent_args if a != "--"]
    checks = None if args.no_local_env else local_checks(local, project, args.tier)
    if checks is not None:
        env.setdefault("HOST_PORT_PREFIX", checks[0])
        agent_args += [f"--validate-arg=--prometheus={local.prometheus_url}",
                       f"--validate-arg=--prom-selector={checks[1]}"]
    images, compose = dict(pins["images"]), None
    if args.tier is not None:
        try:
            tiered = tier_release((COMPOSE_DIR / "docker-compose.yml").read_text(), args.tier, images, env,
                                  network=args.network)
        except (ValueError, CatalogError) as exc:  # missing pins; the compose file's tier labels
            print(f"--tier {args.tier}: {exc}", file=sys.stderr)
            return 2
        compose, images, env = tiered.compose, tiered.images, tiered.env
    source = {"commit": pins.get("commit") or build.git_revision(), "built_at": pins.get("built_at")}
    try:
        keys = [path.read_text() for path in args.public_key]
    except OSError as exc:
        print(f"--public-key: {exc}", file=sys.stderr)
        return 2
    manifest = release_manifest(pins["release"], images, env, source,
                                signing=manifest_section(keys, require=True) if keys else None)
    target = SshTarget(args.ssh_host, args.ssh_port, args.ssh_user, args.ssh_key, args.known_hosts)
    secrets = args.secrets_file.read_text() if args.secrets_file is not None else None
    return ship(target, args.host_root, project, manifest, agent_args, secrets=secrets, compose=compose)


if __name__ == "__main__":
    sys.exit(main())
