"""The data tier's operator commands as data (pure): where the tier runs (the stack's `data` export, checked
before any of it reaches ssh, known_hosts or a remote command), the host agent commands `ops.cli data` runs there,
and the DigitalOcean volume snapshots it takes and keeps. No process, no clock: every string has an exact test.

The stack that owns the traffic (prod; locally `local`) exports
    data = {"hosts": {"names": [...], "addresses": [...], "ports": [...], "sshUser": ..., "sshHostKey": ...,
                      "root": ..., "project": "data", "dropletIds": [...]},
            "volume": {"id": <DigitalOcean volume id>, "name": ...}}      (volume: on DigitalOcean only)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent.backup import BACKUP_ID, DEFAULT_KEEP, LABEL, LABEL_RULE
from agent.release import SERVICE_NAME
from agent.remote import agent_command
from components.config_keys import NAMESPACE
from ops import stack_outputs as checked
from ops.operator_plan import HostAccess, PlanError

VOLUME_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
VOLUME_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
KEEP_KEY, KEEP_RANGE = "dataBackupKeep", (1, 100)
STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class DataTier:
    host: HostAccess  # .project: the data tier's compose project
    volume_id: str | None  # the DigitalOcean block volume holding its data; None: not on DigitalOcean
    volume_name: str | None


def data_tier_of(stack: str, outputs: Mapping[str, Any]) -> DataTier:
    """The data tier of the stack, each value checked (ops.stack_outputs) and refused naming its output."""
    data = outputs.get("data")
    hosts = data.get("hosts") if isinstance(data, Mapping) else None
    if not isinstance(hosts, Mapping) or not hosts.get("addresses"):
        raise PlanError(f"stack {stack} exports no data tier (output data.hosts): the data tier belongs to the stack "
                        f"that owns the traffic (prod; locally `local`); run `pulumi up --stack {stack}` first")
    assert isinstance(data, Mapping)
    missing = [k for k in ("names", "ports", "sshUser", "root", "project") if k not in hosts]
    if missing:
        raise PlanError(f"stack {stack}'s output data.hosts lacks {', '.join(missing)}: it was written by an older "
                        f"program; run `pulumi up --stack {stack}` once")
    on_droplets = bool(hosts.get("dropletIds"))
    if on_droplets and not hosts.get("sshHostKey"):
        raise PlanError(f"stack {stack}'s data droplet exports no pinned host key (data.hosts.sshHostKey): refusing "
                        f"to trust whatever key it shows; run `pulumi up --stack {stack}` with {NAMESPACE}:"
                        "sshHostPrivateKey set")
    names, addresses, ports = hosts["names"], hosts["addresses"], hosts["ports"]
    try:
        if not all(isinstance(v, list) and len(v) == 1 for v in (names, addresses, ports)):
            raise checked.OutputError(f"stack {stack}'s outputs data.hosts.names, .addresses and .ports must list "
                                      "the one data host: refusing to use them")
        host = HostAccess(checked.name(stack, "data.hosts.names[0]", names[0]),
                          checked.address(stack, "data.hosts.addresses[0]", addresses[0]),
                          checked.port(stack, "data.hosts.ports[0]", ports[0]),
                          checked.user(stack, hosts["sshUser"], "data.hosts.sshUser"),
                          checked.host_key(stack, hosts.get("sshHostKey"), "data.hosts.sshHostKey"),
                          checked.root(stack, hosts["root"], "data.hosts.root"),
                          checked.project(stack, hosts["project"], "data.hosts.project"))
    except checked.OutputError as exc:
        raise PlanError(str(exc)) from None
    volume = data.get("volume")
    if volume is None and not on_droplets:
        return DataTier(host, None, None)
    volume_id = volume.get("id") if isinstance(volume, Mapping) else None
    if not isinstance(volume_id, str) or not VOLUME_ID.fullmatch(volume_id):
        raise PlanError(f"stack {stack}'s output data.volume.id {volume_id!r} is not a DigitalOcean volume id: the "
                        "data droplet's block volume is what `data backup` snapshots; run `pulumi up --stack "
                        f"{stack}` with a program that exports it")
    name = volume.get("name") if isinstance(volume, Mapping) else None
    if name is not None and (not isinstance(name, str) or not VOLUME_NAME.fullmatch(name)):
        raise PlanError(f"stack {stack}'s output data.volume.name {name!r} is not a DigitalOcean volume name")
    return DataTier(host, volume_id, name)


def backup_keep(value: str | None) -> int:
    """devtools:dataBackupKeep: backups (and volume snapshots) kept; unset: the host agent's default."""
    if value is None or value == "":
        return DEFAULT_KEEP
    low, high = KEEP_RANGE
    if not value.isdigit() or not low <= int(value) <= high:
        raise PlanError(f"{NAMESPACE}:{KEEP_KEY} {value!r} is not a whole number from {low} to {high}: set it with "
                        f"`pulumi config set {NAMESPACE}:{KEEP_KEY} 7`")
    return int(value)


def _label(label: str | None) -> list[str]:
    if label is None:
        return []
    if not LABEL.match(label):
        raise PlanError(f"--label {label!r} must be {LABEL_RULE}")
    return ["--label", label]


def backup_command(tier: DataTier, label: str | None, keep: int) -> str:
    """Remote shell: `hostagent backup` of the data tier's project, keeping the newest `keep`."""
    h = tier.host
    return agent_command(h.root, h.project, ["backup", *_label(label), "--keep", str(keep)])


def backups_command(tier: DataTier) -> str:
    return agent_command(tier.host.root, tier.host.project, ["backups"])


def restore_command(tier: DataTier, backup_id: str, into: str | None, replace: bool) -> str:
    """Remote shell: restore a backup of the data tier's project into `into` (default: the tier itself)."""
    if not BACKUP_ID.match(backup_id):
        raise PlanError(f"--backup {backup_id!r} is not a backup id (such as 20261202T120000Z): "
                        "`python -m ops.cli data backups` lists them")
    target = into or tier.host.project
    if not SERVICE_NAME.match(target):
        raise PlanError(f"--into {target!r} is not a project name (lowercase letters, digits, '_' or '-', starting "
                        "with a letter or digit)")
    return agent_command(tier.host.root, target, ["restore-backup", backup_id, "--from-project", tier.host.project,
                                                  *(["--replace"] if replace else [])])


def restore_plan(tier: DataTier, backup_id: str, into: str | None, replace: bool) -> str:
    """What `data restore` prints before it asks."""
    h, target = tier.host, into or tier.host.project
    how = ("replacing what its volumes hold (a backup of it is taken first)" if replace
           else "only into volumes that are missing or empty (refused otherwise, nothing changed)")
    return (f"restore backup {backup_id} of project {h.project} into project {target} on host {h.name}, {how}\n"
            f"  1. on {h.user}@{h.address}:{h.port}\n"
            f"      $ {restore_command(tier, backup_id, into, replace)}")


# DigitalOcean volume snapshots -----------------------------------------------------------------------------------
def snapshot_prefix(project: str) -> str:
    return f"{project}-data-"


def snapshot_name(project: str, now: datetime) -> str:
    """`<project>-data-<UTC time>`: ours, told apart from any other snapshot of the volume by this prefix."""
    return snapshot_prefix(project) + now.astimezone(UTC).strftime(STAMP)


def ours(snapshots: Sequence[Mapping[str, Any]], project: str) -> list[Mapping[str, Any]]:
    """This tool's snapshots of a volume, oldest first (by the time in their name)."""
    pattern = re.compile(re.escape(snapshot_prefix(project)) + r"[0-9]{8}T[0-9]{6}Z")
    return sorted((s for s in snapshots if pattern.fullmatch(str(s.get("name") or ""))),
                  key=lambda s: (str(s["name"]), str(s.get("id"))))


def snapshots_to_delete(snapshots: Sequence[Mapping[str, Any]], project: str, keep: int,
                        taken: str) -> list[Mapping[str, Any]]:
    """Our snapshots beyond the newest `keep`, never the one just taken; nobody else's."""
    mine = ours(snapshots, project)
    return [s for s in mine[:max(0, len(mine) - keep)] if str(s.get("id")) != taken]


def render_snapshots(snapshots: Sequence[Mapping[str, Any]], project: str) -> str:
    mine = ours(snapshots, project)
    if not mine:
        return "  none"
    return "\n".join(f"  {s['name']}  id {s.get('id')}  {s.get('size_gigabytes', '?')} GB  created "
                     f"{s.get('created_at', '?')}" for s in mine)
