"""What `ops.cli status` and `ops.cli drift` say about the data tier of the stack that owns it (its `data` export):
the data release and its validation, what the data host runs, and each data service against the release's pins.
"""

from __future__ import annotations

import argparse
from typing import Any

from ops import data_plan, drift
from ops import operator_plan as plan
from ops.operator_host import Pulumi, host_status, ssh_targets


def _data_host(pulumi: Pulumi, args: argparse.Namespace, outputs: dict[str, Any]
               ) -> tuple[plan.HostAccess, dict[str, Any]] | str:
    """The data tier's host (the stack that owns it exports `data`) and its `hostagent status`; or why not."""
    try:
        tier = data_plan.data_tier_of(args.stack, outputs)
    except ValueError as exc:  # plan.PlanError, stack_outputs.OutputError: the message names the output
        return str(exc)
    with ssh_targets(pulumi, args.stack, [tier.host], args.ssh_key) as targets:
        return tier.host, host_status(targets[0], tier.host)


def _data_release(outputs: dict[str, Any]) -> dict[str, Any]:
    record = outputs["data"].get("release")
    return dict(record) if isinstance(record, dict) else {"id": record}


def tier_status(pulumi: Pulumi, args: argparse.Namespace, outputs: dict[str, Any]
                 ) -> tuple[list[str], list[str], dict[str, Any]]:
    """The data tier of the stack that owns it: its release and validation, what its host runs."""
    found = _data_host(pulumi, args, outputs)
    if isinstance(found, str):
        return [], [f"DATA TIER UNREADABLE: {found}"], {"error": found}
    host, status = found
    release = _data_release(outputs).get("id")
    validation = outputs["data"].get("validation") or {}
    services = status.get("services") or {}
    healthy = sum(1 for s in services.values() if drift.running_problem(s) is None)
    lines = [f"data tier (never flips): release {release}, validation "
             f"{'passed' if validation.get('passed') else 'NOT passed'}",
             f"data host {host.name}: current {status.get('current')}, previous {status.get('previous')}, "
             f"{healthy}/{len(services)} services running healthy"
             + (f", ERROR {status['error']}" if status.get("error") else "")]
    other = plan.other_release(args.stack, f"{host.name} (data tier)", status.get("current"), release)
    return lines, [other] if other else [], status


def tier_drift(pulumi: Pulumi, args: argparse.Namespace, outputs: dict[str, Any]) -> list[drift.Finding]:
    """The data tier's host against the data release the stack records (its own project, its own services)."""
    found = _data_host(pulumi, args, outputs)
    if isinstance(found, str):
        return [drift.Finding("data tier", "*", "unreadable", None, None, found)]
    host, status = found
    return drift.compare(host.name, _data_release(outputs), status)
