"""Day-2 operations on a deployed stack, the same steps CI runs:

    python -m ops.cli status   [--stack prod]              what the stack says, what each host runs (exit 1 when
                                                           the local proxy serves another color than recorded)
    python -m ops.cli drift    [--stack prod] [--json F]   stack's digests vs every host; exit 1 on drift
    python -m ops.cli flip blue [--stack prod] [--yes]     move traffic (liveColor) and `pulumi up`
    python -m ops.cli rollback [--to ID | --flip] [--yes]  pin the previous (or a given) release, or flip back
    python -m ops.cli reapply  [--stack prod] [--yes]      apply the recorded release again on every host
    python -m ops.cli collect  --out DIR [--summary]       validation reports + diagnostics bundles from every host
    python -m ops.cli ssh-lease open|close|list [--stack prod] admit this runner to port 22 for a while (ops/lease.py)
    python -m ops.cli hostkey  [--stack prod] [--yes]      make the droplets' SSH host key, set it as a secret
    python -m ops.cli data backup|backups|restore [--stack prod]   the data tier's backups (ops/data.py)
    python -m ops.cli standby up|destroy --stack blue [--yes]      a standby stack, never while it serves traffic
    python -m ops.cli release  [--stack prod] [--dry-run]  one release through the idle color, analysed, flipped
                                                           back automatically (ops/release.py)
    python -m ops.cli history  [--stack prod] [--json]     the last release runs: steps, measurements, outcome
    python -m ops.cli registry-gc [--stack prod] [--dry-run]  delete the images no stack or host can ask for, then
                                                           collect the registry's blobs (ops/registry_gc.py)
    python -m ops.cli slo      [--window 7d] [--json] [--html F]  the stability targets over a window (ops/slo.py);
                                                           exit 1 when one is missed (no data is not a miss)

Changing commands print their plan and ask before running it (`--yes` skips the question; without a terminal
`--yes` is required). They shell out to `pulumi` (which must be on PATH) and reach hosts over SSH with the
stack's key. Exit codes: 0 done · 1 failed or drift found · 2 cannot start (bad input, no pulumi) · 3 declined.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from agent.validate.report import read_json, render_markdown
from components.catalog import CatalogError, enabled_third_party, load_third_party
from components.config_keys import BY_NAME, COLORS
from components.ssh_keys import public_half
from ops import data, data_view, drift, lease, registry_gc, release_cli, slo, standby, traces
from ops import operator_plan as plan
from ops.operator_host import (
    EXIT_DECLINED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Pulumi,
    append_step_summary,
    collect_from,
    confirm,
    generate_host_key,
    host_status,
    local_serving,
    run_plan,
    ssh_targets,
)
from standin import localenv

ROOT = Path(__file__).resolve().parent.parent
# confirm, run_plan and the exit codes live in ops.operator_host (ops.data and ops.standby use them too)
__all__ = ["EXIT_DECLINED", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "build_parser", "confirm", "main", "run_plan"]


def cmd_flip(pulumi: Pulumi, args: argparse.Namespace) -> int:
    outputs = pulumi.outputs(args.stack)
    if outputs.get("liveColor") == args.color:
        serving = local_serving(pulumi, args.stack)
        if serving is not None and plan.traffic_differs(args.stack, args.color, serving):
            steps = plan.reassert_plan(args.color, localenv.flip_argv(pulumi.cwd, args.color))
            return run_plan(pulumi, f"flip stack {args.stack}: haproxy serves {', '.join(serving) or 'nothing'}, "
                                    f"the stack says {args.color}", steps, args)
        written = pulumi.config_value(args.stack, "liveColor")
        if written not in (None, args.color):  # a flip the engine refused left the stack file ahead of traffic
            return run_plan(pulumi, f"flip stack {args.stack}: traffic is on {args.color}, the stack file says "
                                    f"{written} (a flip that did not finish)",
                            [plan.config_set(args.stack, "liveColor", args.color)], args)
        print(f"traffic on stack {args.stack} is already on {args.color}: nothing to do")
        return EXIT_OK
    steps = plan.flip_plan(args.stack, outputs, args.color)
    return run_plan(pulumi, f"flip stack {args.stack}: traffic {outputs.get('liveColor')} -> {args.color}", steps,
                    args)


def cmd_rollback(pulumi: Pulumi, args: argparse.Namespace) -> int:
    outputs = pulumi.outputs(args.stack)
    steps = plan.rollback_plan(args.stack, outputs, args.to, args.flip)
    title = f"roll back stack {args.stack}" + (" by flipping traffic back" if args.flip else
                                                 " by pinning an earlier release (hosts re-validate it)")
    return run_plan(pulumi, title, steps, args)


def cmd_reapply(pulumi: Pulumi, args: argparse.Namespace) -> int:
    steps = plan.reapply_plan(args.stack, plan.apply_urns(pulumi.export(args.stack)))
    return run_plan(pulumi, f"apply stack {args.stack}'s release again on its hosts", steps, args)


def _statuses(pulumi: Pulumi, args: argparse.Namespace, outputs: dict[str, Any]
              ) -> Iterator[tuple[plan.HostAccess, dict[str, Any]]]:
    hosts = plan.hosts_of(args.stack, outputs)
    with ssh_targets(pulumi, args.stack, hosts, args.ssh_key) as targets:
        for host, target in zip(hosts, targets, strict=True):
            yield host, host_status(target, host)


def cmd_status(pulumi: Pulumi, args: argparse.Namespace) -> int:
    outputs = pulumi.outputs(args.stack)
    release = outputs.get("release") or {}
    validation = outputs.get("validation") or {}
    lines = [f"stack {args.stack}: color {outputs.get('color')}, traffic on {outputs.get('liveColor', '(none)')}, "
             f"endpoint {outputs.get('endpoint', '-')}",
             f"release {release.get('id')} (commit {release.get('commit') or '-'}), validation "
             f"{'passed' if validation.get('passed') else 'NOT passed'} for {validation.get('release')}",
             f"releases kept: {', '.join(plan.releases_of(outputs)) or 'none'}"]
    report: dict[str, Any] = {"stack": args.stack, "outputs": outputs, "hosts": {}}
    problems: list[str] = []
    for host, status in _statuses(pulumi, args, outputs):
        services = status.get("services") or {}
        healthy = sum(1 for s in services.values() if drift.running_problem(s) is None)
        lines.append(f"host {host.name}: current {status.get('current')}, previous {status.get('previous')}, "
                     f"{healthy}/{len(services)} services running healthy"
                     + (f", ERROR {status['error']}" if status.get("error") else ""))
        report["hosts"][host.name] = status
        signatures, unsigned = drift.signature_line(host.name, services)
        lines += [signatures] if signatures else []
        problems += unsigned
        other = plan.other_release(args.stack, host.name, status.get("current"), release.get("id"))
        if other:
            problems.append(other)
    runs = outputs.get("releaseRuns")
    if isinstance(runs, list) and runs and isinstance(runs[-1], dict):
        lines.append(plan.last_run_line(runs[-1], args.stack))
    pending = plan.pending_promotion(args.stack, outputs.get("promotion"))
    if pending:
        problems.append(pending)
    if "data" in outputs:
        data_lines, data_problems, report["data"] = data_view.tier_status(pulumi, args, outputs)
        lines += data_lines
        problems += data_problems
    serving = local_serving(pulumi, args.stack) if "liveColor" in outputs else None
    differs = plan.traffic_differs(args.stack, outputs["liveColor"], serving) if serving is not None else None
    if serving is not None:
        report["serving"] = serving
        if differs:
            problems.append(differs)
        else:
            lines.append(f"the load balancer serves {', '.join(serving)}, as the stack records")
    report["problems"] = problems
    print(json.dumps(report, indent=2, sort_keys=True) if args.json else "\n".join(lines + problems))
    return EXIT_FAILED if problems else EXIT_OK


def intended_on_hosts(pulumi: Pulumi, stack: str, outputs: dict[str, Any]) -> dict[str, Any]:
    """The stack's release plus the third-party services (digest-pinned in the compose file) of the profiles the
    stack enables: devtools:composeProfiles, which the program writes into every release as COMPOSE_PROFILES."""
    profiles = pulumi.config_value(stack, "composeProfiles")
    if profiles is None:  # unset: the default; "" (the local stacks) enables no profile
        profiles = str(BY_NAME["composeProfiles"].default)
    try:
        third_party = enabled_third_party(load_third_party(pulumi.cwd / "compose"), profiles)
    except CatalogError as exc:
        raise CliError(f"cannot tell which third-party services stack {stack} runs: {exc}", EXIT_USAGE) from exc
    return drift.with_third_party(plan.intended_release(stack, outputs), third_party)


def cmd_drift(pulumi: Pulumi, args: argparse.Namespace) -> int:
    outputs = pulumi.outputs(args.stack)
    intended = intended_on_hosts(pulumi, args.stack, outputs)
    findings: list[drift.Finding] = []
    for host, status in _statuses(pulumi, args, outputs):
        findings += drift.compare(host.name, intended, status)
    if "data" in outputs:
        findings += data_view.tier_drift(pulumi, args, outputs)
    clean, summary = drift.verdict(findings)
    print(drift.render_table(findings))
    print(summary)
    if args.json:
        Path(args.json).write_text(json.dumps([dataclasses.asdict(f) for f in findings], indent=2) + "\n")
    append_step_summary(drift.render_markdown(findings))
    return EXIT_OK if clean else EXIT_FAILED


def cmd_collect(pulumi: Pulumi, args: argparse.Namespace) -> int:
    outputs = pulumi.outputs(args.stack)
    hosts = plan.hosts_of(args.stack, outputs)
    out = Path(args.out)
    failed = 0
    with ssh_targets(pulumi, args.stack, hosts, args.ssh_key) as targets:
        for host, target in zip(hosts, targets, strict=True):
            dest = out / host.name
            error = collect_from(target, host, dest)
            if error:
                failed += 1
                print(f"{host.name}: {error}", file=sys.stderr)
                continue
            gates = sorted((dest / "reports").glob("gate-*.json"), key=lambda p: p.stat().st_mtime)
            bundles = sorted(p.name for p in (dest / "diagnostics").glob("*") if p.is_dir())
            print(f"{host.name}: {len(gates)} gate report(s), diagnostics bundles: {', '.join(bundles) or 'none'}")
            if args.summary and gates:
                append_step_summary(f"#### {host.name}\n\n"
                                    + render_markdown(read_json(gates[-1])))
    return EXIT_FAILED if failed else EXIT_OK


def cmd_hostkey(pulumi: Pulumi, args: argparse.Namespace) -> int:
    """Make the droplets' SSH host key once: ssh-keygen in a private temporary directory, then `pulumi config set
    --secret` with the private half on stdin. cloud-init installs it; the rollout and ops.cli pin its public half."""
    if pulumi.config(args.stack, plan.HOST_KEY):
        raise CliError(f"stack {args.stack} already has devtools:{plan.HOST_KEY}: its droplets present that key and "
                       "the rollout pins it; a new one would lock both out (docs/runbook.md, host keys)", EXIT_USAGE)
    private = generate_host_key(args.stack)
    step = plan.host_key_step(args.stack, public_half(private).line)
    print(plan.render_plan(f"make the SSH host key of stack {args.stack}'s droplets", [step]), flush=True)
    if not confirm("Go ahead?", args.yes, sys.stdin, sys.stdout):
        print("declined: nothing changed")
        return EXIT_DECLINED
    code = pulumi.feed(step.argv, private)
    if code != 0:
        print(f"pulumi config set failed (exit {code}): nothing changed", file=sys.stderr)
        return EXIT_FAILED
    print(f"done: commit Pulumi.{args.stack}.yaml (it holds the key encrypted); droplets created from now on "
          "present the key above")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ops.cli", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--stack", default="prod", help="the Pulumi stack (default prod)")
    common.add_argument("--cwd", type=Path, default=ROOT, help="the Pulumi project directory (default: this checkout)")
    common.add_argument("--ssh-key", type=Path, help="private key file (default: the stack's sshPrivateKeyPath, "
                                                     "else its secret sshPrivateKey, kept in a 0600 temp file)")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("status", parents=[common], help="stack outputs and each host's agent status")
    s.add_argument("--json", action="store_true", help="print JSON instead of text")
    s = sub.add_parser("drift", parents=[common], help="compare the stack's digests with what runs on every host")
    s.add_argument("--json", metavar="FILE", help="also write the findings as JSON")
    s = sub.add_parser("flip", parents=[common], help="move traffic to a color (config liveColor + pulumi up)")
    s.add_argument("color", choices=COLORS)
    s.add_argument("--yes", action="store_true", help="do not ask")
    s = sub.add_parser("rollback", parents=[common], help="pin the previous release (or --to ID), or --flip back")
    how = s.add_mutually_exclusive_group()
    how.add_argument("--to", metavar="RELEASE_ID", help="a release id from the stack's `releases` export")
    how.add_argument("--flip", action="store_true", help="flip traffic back to the other color instead")
    s.add_argument("--yes", action="store_true", help="do not ask")
    s = sub.add_parser("reapply", parents=[common], help="apply the release the stack records again on every host "
                                                         "(after something else ran there)")
    s.add_argument("--yes", action="store_true", help="do not ask")
    s = sub.add_parser("collect", parents=[common], help="copy validation reports and diagnostics from every host")
    s.add_argument("--out", required=True, help="directory to write <host>/reports and <host>/diagnostics into")
    s.add_argument("--summary", action="store_true", help="append each host's newest gate report to "
                                                          "$GITHUB_STEP_SUMMARY")
    s = sub.add_parser("hostkey", parents=[common], help="make the droplets' SSH host key (once per stack) and set "
                                                         "it as the secret devtools:sshHostPrivateKey")
    s.add_argument("--yes", action="store_true", help="do not ask")
    lease.add_parser(sub, common)
    data.add_parser(sub, common)
    standby.add_parser(sub, ROOT)
    release_cli.add_parsers(sub, common)
    registry_gc.add_parser(sub, common)
    slo.add_parser(sub, common)
    traces.add_parser(sub)
    return p


COMMANDS = {"status": cmd_status, "drift": cmd_drift, "flip": cmd_flip, "rollback": cmd_rollback,
            "reapply": cmd_reapply, "collect": cmd_collect, "hostkey": cmd_hostkey, "data": data.run,
            "standby": standby.run, "release": release_cli.run_release, "history": release_cli.run_history,
            "registry-gc": registry_gc.run}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "ssh-lease":  # DigitalOcean's API only: no pulumi needed
        return lease.run(args, dict(os.environ))
    if args.command == "traces":  # Langfuse's API only
        return traces.run(args, dict(os.environ))
    try:
        if args.command == "slo":  # needs pulumi only for the stack's targets or Prometheus
            return slo.run(args, os.environ)
        return COMMANDS[args.command](Pulumi.find(args.cwd, dict(os.environ)), args)
    except plan.PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
