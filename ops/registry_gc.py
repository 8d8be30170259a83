"""`python -m ops.cli registry-gc [--stack prod] [--dry-run] [--keep-recent N] [--yes]`: delete the images no
stack and no host can still ask for, then let the registry collect their blobs (ops/registry_gc_plan.py says what is
kept and why).

Order: the stack's lock (the one `ops.cli release` holds; refused while it is held or while any stack's update is in
progress), every stack of the project and its outputs, each of their hosts' `hostagent status` over SSH, the
registry's manifests. Anything unreadable stops the run before the plan is printed: nothing deleted. Then the plan,
the question (`--yes`), the deletes by digest one by one, and the garbage collection: DigitalOcean's API (read-only
while it runs; the command waits and reports) or the local stand-in's (`scripts/local-env.sh registry-gc`).
Exit codes: 0 done (or nothing to delete) · 1 a delete or the collection failed · 2 refused or cannot start · 3
declined.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ops import data_plan, standby_plan
from ops import operator_plan as plan
from ops import registry_gc_plan as gc
from ops.deploy_lock import release_lock
from ops.operator_host import (
    EXIT_DECLINED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Pulumi,
    confirm,
    host_status,
    ssh_targets,
)
from ops.registry_docr import Docr
from ops.registry_v2 import RegistryError, RegistryV2
from standin import localenv

ROOT = Path(__file__).resolve().parent.parent
KEEP_RECENT = 3
FREED = re.compile(r"^freed (\d+) bytes", re.M)


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("registry-gc", parents=[common], description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="delete the images no stack or host can ask for, then collect the registry's blobs")
    s.add_argument("--dry-run", action="store_true", help="print what would be kept and deleted; change nothing")
    s.add_argument("--keep-recent", type=_count, default=KEEP_RECENT, metavar="N",
                   help=f"also keep the N newest images of each repository (default {KEEP_RECENT})")
    s.add_argument("--include-untagged", action="store_true",
                   help="DigitalOcean only: the collection also removes untagged manifests (the build caches' old "
                        "exports); an image index's children are untagged too, so only for a project that pushes "
                        "no image index (`docker buildx imagetools inspect <image>`)")
    s.add_argument("--yes", action="store_true", help="do not ask")


def _count(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"--keep-recent wants a count (0 or more), not {value!r}")
    return int(value)


def stacks(pulumi: Pulumi) -> list[str]:
    """Every stack of the project; refused while any of them is being updated (its images may not be recorded)."""
    proc = pulumi.capture(standby_plan.stack_list(), timeout=60)
    if proc.returncode != 0:
        raise CliError(f"cannot list the stacks (`pulumi stack ls --json`): {proc.stderr.strip()}; nothing deleted",
                       EXIT_USAGE)
    return listed_stacks(proc.stdout)


def listed_stacks(text: str) -> list[str]:
    """The stack names `pulumi stack ls --json` printed; CliError when it printed no list, or while an update of any
    of them is in progress."""
    try:
        listed = standby_plan.stack_summaries(text)
    except ValueError as exc:
        raise CliError(f"{exc}; nothing deleted", EXIT_USAGE) from exc
    busy = [str(s["name"]) for s in listed if s.get("updateInProgress")]
    if busy:
        raise CliError(f"stack {', '.join(busy)} is being updated now: its new images are not recorded yet; run "
                       "registry-gc after the update; nothing deleted", EXIT_USAGE)
    return standby_plan.short_names([str(s["name"]) for s in listed])


def _hosts(stack: str, outputs: Mapping[str, Any]) -> list[plan.HostAccess]:
    found = plan.hosts_of(stack, outputs) if isinstance(outputs.get("hosts"), Mapping) else []
    data = outputs.get("data")
    if isinstance(data, Mapping) and isinstance(data.get("hosts"), Mapping):
        found.append(data_plan.data_tier_of(stack, outputs).host)
    return found


def wanted(pulumi: Pulumi, args: argparse.Namespace, names: list[str]) -> tuple[list[gc.Wanted], dict[str, Any]]:
    """What every stack and every host of theirs can still ask for; the registry stack's outputs."""
    found: list[gc.Wanted] = []
    owner: dict[str, Any] = {}
    for name in names:
        try:
            outputs = pulumi.outputs(name)
            found += gc.wanted_from_stack(name, outputs)
            hosts = _hosts(name, outputs)
        except (CliError, plan.PlanError, ValueError) as exc:
            message = str(exc) if f"stack {name}" in str(exc) else f"stack {name}: {exc}"
            raise CliError(f"{message}; nothing deleted", EXIT_USAGE) from exc
        owner = outputs if name == args.stack else owner
        if hosts:
            print(f"asking {len(hosts)} host(s) of stack {name} which releases they keep", flush=True)
            with ssh_targets(pulumi, name, hosts, args.ssh_key) as targets:
                for host, target in zip(hosts, targets, strict=True):
                    try:
                        found += gc.wanted_from_host(f"{host.name}:{host.project}", host_status(target, host),
                                                     {w.release: w.images for w in found})
                    except gc.HistoryError as exc:
                        raise CliError(f"stack {name}: {exc}", EXIT_USAGE) from exc
    if args.stack not in names:
        raise CliError(f"stack {args.stack} does not exist here (stacks: {', '.join(names) or 'none'}); nothing "
                       "deleted", EXIT_USAGE)
    return found, owner


@contextmanager
def registry_of(pulumi: Pulumi, stack: str, outputs: Mapping[str, Any]) -> Iterator[RegistryV2 | Docr]:
    registry = outputs.get("registry")
    if not isinstance(registry, Mapping) or not isinstance(registry.get("address"), str):
        raise CliError(f"stack {stack} exports no registry (output registry.address): pass the stack that owns the "
                       "registry (--stack prod; locally --stack local)", EXIT_USAGE)
    client: RegistryV2 | Docr
    if registry.get("name"):
        token = pulumi.env.get("DIGITALOCEAN_TOKEN", "")
        if not token:
            raise CliError("DIGITALOCEAN_TOKEN is not set: registry-gc deletes manifests and starts the garbage "
                           f"collection of registry {registry['name']} through DigitalOcean's API", EXIT_USAGE)
        client = Docr(str(registry["name"]), token, str(registry["address"]))
    else:
        client = RegistryV2(str(registry["address"]))
    try:
        yield client
    finally:
        client.close()


def collect(client: RegistryV2 | Docr, untagged: bool) -> str:
    """The registry's garbage collection; what it freed, as it reports it."""
    if isinstance(client, Docr):
        freed = client.collect(lambda line: print(f"  {line}", flush=True), untagged)
        return f"DigitalOcean reports {freed} bytes freed"
    if client.address != localenv.load().registry:
        return (f"registry {client.address} is not the local stand-in's: run its garbage collection now (read-only "
                "mode, `registry garbage-collect <config>`) to free the blobs")
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "local-env.sh"), "registry-gc"], capture_output=True,
                          text=True, timeout=1800, check=False)
    sys.stderr.write(proc.stderr)
    found = FREED.search(proc.stdout)
    if proc.returncode != 0 or found is None:
        raise RegistryError(f"scripts/local-env.sh registry-gc failed (exit {proc.returncode}): "
                            f"{(proc.stderr or proc.stdout).strip()[-400:]}")
    return f"the registry's data directory shrank by {found[1]} bytes ({proc.stdout.strip().splitlines()[-1]})"


def run(pulumi: Pulumi, args: argparse.Namespace) -> int:
    with release_lock(args.stack, "registry-gc" + (" dry run" if args.dry_run else "")):
        found, owner = wanted(pulumi, args, stacks(pulumi))
        prefix = pulumi.config_value(args.stack, "repoPrefix") or ""
        with registry_of(pulumi, args.stack, owner) as client:
            if args.include_untagged and not isinstance(client, Docr):
                raise CliError(f"--include-untagged is for DigitalOcean's registry; {client.address} collects only "
                               "blobs no manifest references; nothing deleted", EXIT_USAGE)
            try:
                repos = client.repositories(prefix)
                decided = gc.plan(client.address, repos, client.manifests(repos), found, keep_recent=args.keep_recent)
            except (RegistryError, gc.HistoryError) as exc:
                raise CliError(f"{exc}; nothing deleted", EXIT_USAGE) from exc
            print(gc.render(decided), flush=True)
            if args.dry_run:
                print("dry run: nothing deleted")
                return EXIT_OK
            if not decided.delete and not args.include_untagged:
                return EXIT_OK
            question = f"Delete {len(decided.delete)} manifests from {client.address}" + (
                ", then collect its untagged manifests too?" if args.include_untagged else "?")
            if not confirm(question, args.yes, sys.stdin, sys.stdout):
                print("declined: nothing deleted")
                return EXIT_DECLINED
            return _delete_and_collect(client, decided, args.include_untagged)


def _delete_and_collect(client: RegistryV2 | Docr, decided: gc.Plan, untagged: bool) -> int:
    total = len(decided.delete)
    for n, manifest in enumerate(decided.delete, 1):
        try:
            client.delete(manifest.repo, manifest.digest)
        except RegistryError as exc:
            print(f"error: {exc}; {n - 1} of {total} deleted, the rest kept; the registry's garbage collection did "
                  "not run (run registry-gc again)", file=sys.stderr)
            return EXIT_FAILED
        print(f"  deleted {n}/{total} {manifest.repo}@{manifest.digest[:19]}", flush=True)
    print(f"collecting the blobs of {total} deleted manifests (the registry is read-only meanwhile)", flush=True)
    try:
        print(f"done: {total} manifests deleted; {collect(client, untagged)}")
    except RegistryError as exc:
        print(f"error: {exc}; the {total} manifests are deleted, their blobs are not collected yet (run "
              "registry-gc again)", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK

