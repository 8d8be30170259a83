"""`python -m ops.cli standby up|destroy --stack S [--yes]`: create or update a standby stack, or destroy one,
never while its color serves traffic (ops/standby_plan.py says when it does), and `destroy` never on the stack that
owns the traffic and the data tier. The plan is printed first and asked for, as every changing command does.

    standby up      --stack blue    `pulumi up` (creating the stack first when it does not exist yet)
    standby destroy --stack blue    `pulumi destroy` of a follower stack

Exit codes: 0 done · 1 failed · 2 refused or cannot start (nothing changed) · 3 declined.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from components.config_keys import BY_NAME, NAMESPACE
from ops import standby_plan as sp
from ops.operator_host import CliError, Pulumi, local_serving, run_plan
from ops.operator_plan import PlanError


def existing_stacks(pulumi: Pulumi) -> list[str]:
    proc = pulumi.capture(sp.stack_list(), timeout=60)
    if proc.returncode != 0:
        raise CliError(f"cannot list the stacks: {proc.stderr.strip() or proc.stdout.strip()}", 2)
    try:
        return sp.short_names([str(s["name"]) for s in sp.stack_summaries(proc.stdout)])
    except ValueError as exc:
        raise CliError(str(exc), 2) from exc


def setting(pulumi: Pulumi, stack: str, key: str, exists: bool) -> str:
    """A non-secret config value of the stack (its default when unset). A stack not created yet has only its
    stack file, read directly."""
    if exists:
        value = pulumi.config_value(stack, key)
    else:
        try:
            config = (yaml.safe_load((pulumi.cwd / f"Pulumi.{stack}.yaml").read_text()) or {}).get("config") or {}
        except (OSError, yaml.YAMLError) as exc:
            raise CliError(f"stack {stack} does not exist and Pulumi.{stack}.yaml cannot be read ({exc})", 2) from exc
        raw = config.get(f"{NAMESPACE}:{key}")
        value = None if raw is None else str(raw)
    return str(BY_NAME[key].default) if value is None else value


def traffic_of(pulumi: Pulumi, stack: str, exists: bool) -> sp.Traffic:
    color = sp.check_color(stack, setting(pulumi, stack, "color", exists))
    traffic = setting(pulumi, stack, "traffic", exists)
    owner = stack if traffic != "none" else setting(pulumi, stack, "prodStack", exists)
    live = pulumi.outputs(owner).get("liveColor")
    serving = local_serving(pulumi, owner)
    return sp.Traffic(stack, color, traffic, owner, live if isinstance(live, str) else None,
                      setting(pulumi, owner, "liveColor", True), None if serving is None else tuple(serving))


def cmd_up(pulumi: Pulumi, args: argparse.Namespace) -> int:
    exists = args.stack in existing_stacks(pulumi)
    refusal = sp.serving_refusal("up", traffic_of(pulumi, args.stack, exists))
    if refusal:
        raise PlanError(refusal)
    return run_plan(pulumi, f"standby up: create or update stack {args.stack}", sp.up_plan(args.stack, exists), args)


def cmd_destroy(pulumi: Pulumi, args: argparse.Namespace) -> int:
    if args.stack not in existing_stacks(pulumi):
        print(f"stack {args.stack} does not exist: nothing to destroy")
        return 0
    traffic = traffic_of(pulumi, args.stack, True)
    refusal = sp.owner_refusal(traffic) or sp.serving_refusal("destroy", traffic)
    if refusal:
        raise PlanError(refusal)
    return run_plan(pulumi, f"standby destroy: stack {args.stack} (traffic stays on {traffic.owner}'s "
                            f"{traffic.live_config})", sp.destroy_plan(args.stack), args)


ACTIONS = {"up": cmd_up, "destroy": cmd_destroy}


def add_parser(sub: Any, root: Path) -> None:
    s = sub.add_parser("standby", help="create, update or destroy a standby stack, never while it serves traffic",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("action", choices=sorted(ACTIONS))
    s.add_argument("--stack", required=True, help="the standby stack, e.g. blue")
    s.add_argument("--cwd", type=Path, default=root, help="the Pulumi project directory (default: this checkout)")
    s.add_argument("--yes", action="store_true", help="do not ask")


def run(pulumi: Pulumi, args: argparse.Namespace) -> int:
    return ACTIONS[args.action](pulumi, args)
