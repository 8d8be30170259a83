"""`python -m ops.cli data backup|backups|restore --stack S`: the data tier's backups, run by the host agent on the
data host over SSH (as `ops.cli status` and `collect` reach hosts), with the host read from the stack's `data`
export (ops/data_plan.py checks it). On DigitalOcean `backup` also snapshots the data droplet's block volume
through DigitalOcean's API (pydo, $DIGITALOCEAN_TOKEN) and deletes this tool's snapshots beyond
devtools:dataBackupKeep (default 7); `backups` lists them too.

    backup   [--label L]                       the host agent's consistent backup (+ a volume snapshot)
    backups                                    the host's backups (+ the volume's snapshots)
    restore  --backup ID [--into P] [--replace] [--yes]   prints the plan, asks, restores (agent.restore's rules)

Exit codes: 0 done · 1 failed · 2 cannot start or refused (bad input, no token, volumes that hold data) · 3 declined.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ops import data_plan as dp
from ops.lease import DO_API, NoToken, api_answer, reported
from ops.operator_host import EXIT_DECLINED, EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError, Pulumi, confirm, ssh_targets
from ops.ship import SshTarget

clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731 - a test's fixed time


class Snapshots:
    """The three volume snapshot calls, through pydo (errors as in ops.lease: DigitalOcean's own words)."""

    def __init__(self, token: str, api: str = DO_API, verify: bool | str = True) -> None:
        import pydo  # noqa: PLC0415 - azure-core is heavy; only the DigitalOcean path loads it

        self._do = pydo.Client(token=token, endpoint=api, connection_verify=verify, retry_total=3,
                               connection_timeout=10, read_timeout=120)

    def create(self, volume_id: str, name: str) -> dict[str, Any]:
        answer = self._do.volume_snapshots.create(volume_id=volume_id, body={"name": name})
        return dict(api_answer(answer, "snapshot", f"snapshot volume {volume_id}"))

    def list(self, volume_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in range(1, 100):
            answer = self._do.volume_snapshots.list(volume_id=volume_id, per_page=200, page=page)
            batch = api_answer(answer, "snapshots", f"list the snapshots of volume {volume_id}")
            found += batch
            if not batch or len(found) >= int((answer.get("meta") or {}).get("total", len(found))):
                break
        return found

    def delete(self, snapshot_id: str) -> None:
        answer = self._do.volume_snapshots.delete_by_id(snapshot_id=snapshot_id)
        if answer is not None:
            api_answer(answer, "-", f"delete snapshot {snapshot_id}")


def remote(target: SshTarget, command: str, timeout: float, capture: bool = False) -> tuple[int, str]:
    """Run a host agent command over SSH: its output on this terminal (or captured), (exit code, stdout)."""
    try:
        proc = subprocess.run(target.argv(command), capture_output=capture, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        print(f"error: no answer from {target.host}:{target.port} in {timeout:.0f}s", file=sys.stderr)
        return EXIT_FAILED, ""
    if capture and proc.stderr:
        sys.stderr.write(proc.stderr)
    return proc.returncode, proc.stdout or ""


def pulumi_project(cwd: Path) -> str:
    try:
        return str(yaml.safe_load((cwd / "Pulumi.yaml").read_text())["name"])
    except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise CliError(f"cannot read the project name from {cwd / 'Pulumi.yaml'} ({exc})", EXIT_USAGE) from exc


def _snapshots(args: argparse.Namespace, env: Mapping[str, str]) -> Snapshots:
    token = env.get("DIGITALOCEAN_TOKEN", "")
    if not token:
        raise NoToken("DIGITALOCEAN_TOKEN is not set: on DigitalOcean the data tier's volume is snapshotted too (a "
                      "token that may create, list and delete volume snapshots)")
    return Snapshots(token, args.api_url, args.ca_file or True)


def _host_code(code: int) -> int:
    """The host agent's exit code as the CLI's: refused or bad input stays 2, anything else failed is 1."""
    return code if code in (EXIT_OK, EXIT_USAGE) else EXIT_FAILED


def cmd_backup(pulumi: Pulumi, args: argparse.Namespace, env: Mapping[str, str]) -> int:
    tier = dp.data_tier_of(args.stack, pulumi.outputs(args.stack))
    keep = dp.backup_keep(pulumi.config_value(args.stack, dp.KEEP_KEY))
    command = dp.backup_command(tier, args.label, keep)
    api = _snapshots(args, env) if tier.volume_id else None  # no token: refused before anything runs
    h = tier.host
    print(f"==> backup of project {h.project} on {h.name} ({h.address}:{h.port}), the newest {keep} kept",
          flush=True)
    with ssh_targets(pulumi, args.stack, [h], args.ssh_key) as targets:
        code, _ = remote(targets[0], command, args.timeout)
    if code != 0:
        print(f"error: the host backup failed (exit {code}); the host agent's message above says why",
              file=sys.stderr)
    if api is None or tier.volume_id is None:
        return _host_code(code)
    project = pulumi_project(pulumi.cwd)
    name = dp.snapshot_name(project, clock())
    print(f"==> snapshot {name} of volume {tier.volume_name or tier.volume_id} (DigitalOcean)", flush=True)
    taken = api.create(tier.volume_id, name)
    print(f"snapshot {name} taken (id {taken.get('id')}, {taken.get('size_gigabytes', '?')} GB)")
    for old in dp.snapshots_to_delete(api.list(tier.volume_id), project, keep, str(taken.get("id"))):
        api.delete(str(old["id"]))
        print(f"deleted snapshot {old['name']} (id {old['id']}): beyond the newest {keep}")
    return _host_code(code)


def cmd_backups(pulumi: Pulumi, args: argparse.Namespace, env: Mapping[str, str]) -> int:
    tier = dp.data_tier_of(args.stack, pulumi.outputs(args.stack))
    with ssh_targets(pulumi, args.stack, [tier.host], args.ssh_key) as targets:
        code, out = remote(targets[0], dp.backups_command(tier), 120, capture=True)
    print(out, end="")
    if tier.volume_id is not None:
        api = _snapshots(args, env)
        print(f"snapshots of volume {tier.volume_name or tier.volume_id} (DigitalOcean, oldest first):")
        print(dp.render_snapshots(api.list(tier.volume_id), pulumi_project(pulumi.cwd)))
    return _host_code(code)


def cmd_restore(pulumi: Pulumi, args: argparse.Namespace, env: Mapping[str, str]) -> int:
    tier = dp.data_tier_of(args.stack, pulumi.outputs(args.stack))
    command = dp.restore_command(tier, args.backup, args.into, args.replace)
    print(dp.restore_plan(tier, args.backup, args.into, args.replace), flush=True)
    if not confirm("Go ahead?", args.yes, sys.stdin, sys.stdout):
        print("declined: nothing changed")
        return EXIT_DECLINED
    with ssh_targets(pulumi, args.stack, [tier.host], args.ssh_key) as targets:
        code, _ = remote(targets[0], command, args.timeout)
    return _host_code(code)


ACTIONS = {"backup": cmd_backup, "backups": cmd_backups, "restore": cmd_restore}


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    d = sub.add_parser("data", help="the data tier: back it up (and snapshot its volume on DigitalOcean), list the "
                                    "backups, restore one", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = d.add_subparsers(dest="action", required=True)
    b = actions.add_parser("backup", parents=[common], help="a consistent backup on the data host (+ a snapshot of "
                                                            "its volume on DigitalOcean)")
    b.add_argument("--label", help="a note kept with the backup, e.g. before-upgrade")
    b.add_argument("--timeout", type=float, default=7200, help="seconds the host backup may take (default 7200)")
    lst = actions.add_parser("backups", parents=[common], help="the data host's backups (+ the volume's snapshots)")
    r = actions.add_parser("restore", parents=[common], help="restore a backup into the data tier's project or a "
                                                             "fresh one (prints the plan, asks)")
    r.add_argument("--backup", required=True, metavar="ID", help="a backup id from `data backups`")
    r.add_argument("--into", metavar="PROJECT", help="the project restored into (default: the data tier's own)")
    r.add_argument("--replace", action="store_true", help="replace volumes that hold data (the host agent backs "
                                                          "them up first); without it they are refused")
    r.add_argument("--yes", action="store_true", help="do not ask")
    r.add_argument("--timeout", type=float, default=7200, help="seconds the restore may take (default 7200)")
    for p in (b, lst, r):
        p.add_argument("--api-url", default=DO_API, help=argparse.SUPPRESS)  # a test's loopback server
        p.add_argument("--ca-file", help=argparse.SUPPRESS)  # that server's certificate


def run(pulumi: Pulumi, args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    return reported(f"data {args.action}",
                    lambda: ACTIONS[args.action](pulumi, args, dict(os.environ) if env is None else env))
