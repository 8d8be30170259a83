"""The host agent's backup commands (standard library only), over agent.backup and agent.restore:

    hostagent --project data backup [--label L] [--keep 7]        pause, copy every named volume, unpause
    hostagent --project data backups [--json]                     the project's backups, oldest first
    hostagent --project P restore-backup ID [--from-project data] [--volume NAME]... [--replace]
    hostagent --project P import-backup --volume NAME=DIR... [--label L]   a backup made of plain directories

Each runs under the project's lock (never beside an apply or another backup) in the foreground; SIGTERM, SIGHUP
(a dropped SSH session) and SIGINT end it through the same path as a failure: paused containers are unpaused,
stopped ones started, a partial backup removed. Exit codes: 0 done, 1 failed (nothing lost), 2 bad input or
refused (nothing changed), 3 lock timeout, 4 critical (containers may still be paused or stopped).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import backup as bk
from agent import restore as rs
from agent.release import SERVICE_NAME
from agent.store import LockTimeout, Store
from agent.volume_io import HostDocker, Interrupted, interruptible

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_LOCK = 0, 1, 2, 3


def _log(line: str) -> None:
    print(line, flush=True)


def _holder(action: str, store: Store) -> dict[str, Any]:
    return {"job": f"{action}-{os.getpid()}", "action": action, "release": store.pointer("current") or "-",
            "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _run(store: Store, args: argparse.Namespace, action: str, body: Callable[[], int]) -> int:
    """`body` under the project's lock and the signal handlers; failures audited as `<action>.failed`."""
    try:
        with store.lock(args.lock_timeout, _holder(action, store)), interruptible():
            return body()
    except LockTimeout as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_LOCK
    except (bk.BackupError, Interrupted, OSError, ValueError) as exc:
        code = exc.code if isinstance(exc, bk.BackupError) else EXIT_FAILED
        if not isinstance(exc, rs.Refused):
            store.audit(f"{action}.failed", reason=str(exc))
        print(f"{action} failed: {exc}", file=sys.stderr)
        return code


def _input_problem(args: argparse.Namespace) -> str | None:
    if getattr(args, "label", None) and not bk.LABEL.match(args.label):
        return f"--label {args.label!r} must be {bk.LABEL_RULE}"
    if args.keep < 1:
        return f"--keep {args.keep}: keep at least the backup just written (1 or more)"
    return None


def cmd_backup(store: Store, args: argparse.Namespace) -> int:
    if problem := _input_problem(args):
        print(problem, file=sys.stderr)
        return EXIT_INPUT

    def body() -> int:
        release, volumes, compose = bk.current_release(store)
        if release is None:
            raise bk.BackupError(f"project {store.project} has no release on this host: nothing to back up", 2)
        if not volumes:
            raise bk.BackupError(f"release {release} of project {store.project} mounts no named volume", 2)
        m = bk.take_backup(store, HostDocker(), volumes, release=release, compose=compose, label=args.label,
                           keep=args.keep, timeout=args.timeout, log=_log)
        store.audit("backup.succeeded", backup=m["id"], release=release, label=args.label, paused=m["paused"],
                    volumes={v["name"]: v["size"] for v in m["volumes"]}, pruned=m["pruned"])
        if m["pruned"]:
            _log(f"removed older backups beyond --keep {args.keep}: {', '.join(m['pruned'])}")
        _log(f"backup {m['id']} of project {store.project} (release {release}) written to "
             f"{bk.backups_dir(store) / m['id']}")
        return EXIT_OK

    return _run(store, args, "backup", body)


def cmd_backups(store: Store, args: argparse.Namespace) -> int:
    base = bk.backups_dir(store)
    manifests = [bk.read_manifest(base, b) for b in bk.backup_ids(base)]
    if args.json:
        print(json.dumps(manifests, indent=2, sort_keys=True))
        return EXIT_OK
    print(f"backups of project {store.project} in {base} (oldest first):")
    for m in manifests:
        volumes = ", ".join(f"{v['name']} {v['size']} B" for v in m["volumes"])
        print(f"  {m['id']}  release {m.get('release') or '-'}  {volumes}"
              + (f"  label {m['label']}" if m.get("label") else ""))
    if not manifests:
        print("  none")
    return EXIT_OK


def cmd_restore_backup(store: Store, args: argparse.Namespace) -> int:
    source = Store(store.root, args.from_project or store.project)
    if not SERVICE_NAME.match(source.project) or args.keep < 1:
        print(f"--from-project {source.project!r} must match {SERVICE_NAME.pattern}; --keep at least 1",
              file=sys.stderr)
        return EXIT_INPUT

    def body() -> int:
        try:
            fallback = {v.name: v.image for v in bk.current_release(source)[1]}
        except bk.BackupError:
            fallback = {}
        summary = rs.restore(store, HostDocker(), source=bk.backups_dir(source), backup_id=args.backup_id,
                             only=args.volume, replace=args.replace, keep=args.keep, timeout=args.timeout,
                             stop_timeout=args.stop_timeout, fallback_images=fallback, log=_log)
        store.audit("restore.succeeded", **summary)
        kept = summary["replaced_backup"]
        _log(f"restored backup {args.backup_id} of project {source.project} into project {store.project}: "
             f"{', '.join(summary['volumes'])}" + (f"; what was there is backup {kept}" if kept else ""))
        return EXIT_OK

    return _run(store, args, "restore", body)


def cmd_import_backup(store: Store, args: argparse.Namespace) -> int:
    sources: dict[str, Path] = {}
    for item in args.volume:
        name, _, directory = item.partition("=")
        if not SERVICE_NAME.match(name) or not Path(directory).is_absolute() or not Path(directory).is_dir() \
                or name in sources:
            print(f"--volume {item!r}: expected NAME=DIR once per volume (NAME such as state-data, DIR the absolute "
                  "path of a directory)", file=sys.stderr)
            return EXIT_INPUT
        sources[name] = Path(directory)
    if problem := _input_problem(args):
        print(problem, file=sys.stderr)
        return EXIT_INPUT

    def body() -> int:
        m = rs.import_directories(store, sources, label=args.label, keep=args.keep, log=_log)
        store.audit("backup.imported", backup=m["id"], label=args.label,
                    volumes={v["name"]: v["directory"] for v in m["volumes"]})
        _log(f"backup {m['id']} of project {store.project} written to {bk.backups_dir(store) / m['id']}")
        return EXIT_OK

    return _run(store, args, "backup", body)


def add_parsers(sub: Any, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the backup commands to the host agent's subcommands `sub` (of `parser`, returned)."""
    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--keep", type=int, default=bk.DEFAULT_KEEP,
                        help=f"backups of the project to keep, the newest (default {bk.DEFAULT_KEEP})")
        sp.add_argument("--lock-timeout", type=float, default=300, help="seconds to wait for another rollout")
        sp.add_argument("--timeout", type=float, default=3600, help="seconds one volume's copy may take")

    bp = sub.add_parser("backup", help="a consistent copy of every named volume of the current release (its "
                        "containers paused meanwhile) into <project>/backups/<id>")
    bp.add_argument("--label", help="a note kept in the manifest, e.g. before-upgrade")
    common(bp)
    lp = sub.add_parser("backups", help="the project's backups (id, release, volumes and sizes, label)")
    lp.add_argument("--json", action="store_true", help="the manifests as JSON")
    rp = sub.add_parser("restore-backup", help="restore a backup into this project's volumes: only missing or "
                        "empty ones, unless --replace (which backs up what is there first)")
    rp.add_argument("backup_id", metavar="ID", help="a backup id from `backups`")
    rp.add_argument("--from-project", help="the project whose backup it is (default: this project)")
    rp.add_argument("--volume", action="append", default=[], metavar="NAME",
                    help="restore only this volume of the backup (repeatable; default: every one)")
    rp.add_argument("--replace", action="store_true", help="replace volumes that hold data (a backup of them is "
                    "taken first)")
    rp.add_argument("--stop-timeout", type=int, default=30, help="seconds each container gets to stop")
    common(rp)
    ip = sub.add_parser("import-backup", help="a backup of this project made of directories (a volume snapshot "
                        "mounted read-only), restored with restore-backup")
    ip.add_argument("--volume", action="append", required=True, metavar="NAME=DIR",
                    help="the volume NAME's files are DIR's (repeatable)")
    ip.add_argument("--label", help="a note kept in the manifest")
    common(ip)
    return parser


COMMANDS = {"backup": cmd_backup, "backups": cmd_backups, "restore-backup": cmd_restore_backup,
            "import-backup": cmd_import_backup}
