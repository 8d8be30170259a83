"""What the operator commands (`python -m ops.cli`) do, as data: the pulumi argv of each step, and what the
stack outputs say about hosts and releases. Pure: no process is started here, so every command line has an
exact-string test and the CLI can print the plan before running it.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.remote import agent_command
from components.config_keys import COLORS, NAMESPACE
from ops import stack_outputs as checked


class PlanError(ValueError):
    """The stack's outputs cannot support the requested operation (the message says what to do)."""


@dataclass(frozen=True)
class Step:
    what: str
    argv: tuple[str, ...]

    def render(self) -> str:
        return f"{self.what}\n      $ {shlex.join(self.argv)}"


def pulumi(*args: str, stack: str) -> tuple[str, ...]:
    return ("pulumi", *args, "--stack", stack, "--non-interactive")


def config_set(stack: str, key: str, value: str) -> Step:
    return Step(f"set {NAMESPACE}:{key} = {value} on stack {stack}",
                pulumi("config", "set", f"{NAMESPACE}:{key}", value, stack=stack))


def up(stack: str, message: str) -> Step:
    return Step(f"pulumi up on stack {stack} (the engine shows what changes)",
                pulumi("up", "--yes", "--diff", "--message", message, stack=stack))


def stack_outputs(stack: str) -> tuple[str, ...]:
    return pulumi("stack", "output", "--json", stack=stack)


def config_get(stack: str, key: str) -> tuple[str, ...]:
    """Reads one config value; for a secret key the value arrives on stdout only (the caller keeps it in memory)."""
    return pulumi("config", "get", f"{NAMESPACE}:{key}", stack=stack)


def stack_export(stack: str) -> tuple[str, ...]:
    return pulumi("stack", "export", stack=stack)


def preview_no_changes(stack: str) -> tuple[str, ...]:
    return pulumi("preview", "--expect-no-changes", "--diff", stack=stack)


def flip_plan(stack: str, outputs: Mapping[str, Any], color: str) -> list[Step]:
    """Move traffic to `color`: one config value, one update (only the traffic resource changes)."""
    if color not in COLORS:
        raise PlanError(f"flip: color {color!r} is not one of {', '.join(COLORS)}")
    live = outputs.get("liveColor")
    if live is None:
        raise PlanError(f"flip: stack {stack} exports no liveColor: it owns no traffic resource "
                        f"(traffic: none); flip on the stack that owns the load balancer")
    return [config_set(stack, "liveColor", color),
            up(stack, f"flip traffic {live} -> {color}")]


def traffic_differs(stack: str, live: Any, serving: Sequence[str]) -> str | None:
    """Why the load balancer's actual targets are not what the stack records (None when they agree): the stack's
    liveColor is the one record of where traffic goes; a device moved by hand contradicts it."""
    if list(serving) == [live]:
        return None
    shown = ", ".join(serving) or "nothing"
    return (f"TRAFFIC DIFFERS: stack {stack} says liveColor {live}, the load balancer serves {shown}; put it back "
            f"with `python -m ops.cli flip {live} --stack {stack}` (or flip to {shown} to keep it)")


def reassert_plan(color: str, argv: Sequence[str]) -> list[Step]:
    """The stack already says `color` but its load balancer serves another: run the traffic resource's own
    command again (the stack config stays as it is)."""
    return [Step(f"move the load balancer back to {color}, as the stack records", tuple(argv))]


def last_run_line(run: Mapping[str, Any], stack: str) -> str:
    """The newest `ops.cli release` run, in one line (`ops.cli history` has them all)."""
    traffic = f", traffic {run.get('from')} -> {run.get('to')}" if run.get("to") else ""
    return (f"last release run {run.get('run')}: {run.get('release')} {run.get('outcome')}{traffic}"
            + (f" ({run.get('reason')})" if run.get("reason") else "")
            + f"; `python -m ops.cli history --stack {stack}` for every run")


def pending_promotion(stack: str, promotion: Any) -> str | None:
    """A release run killed between its promotion and the end of its bake window (the traffic owner's `promotion`
    output), said with what finishes it; None when there is none."""
    if not isinstance(promotion, Mapping) or not promotion:
        return None
    return (f"PROMOTION PENDING: run {promotion.get('run')} moved traffic to {promotion.get('color')} "
            f"({promotion.get('release')}) at {promotion.get('started')} and did not finish its bake window; "
            f"`python -m ops.cli release --stack {stack}` analyses it again, then marks it stable or flips back to "
            f"{promotion.get('from')}")


def other_release(stack: str, host: str, running: Any, recorded: Any) -> str | None:
    """Why a host does not run the release its stack records (None when it does): something applied another
    release there outside the stack (the bench, a test, a hand on the host)."""
    if running == recorded:
        return None
    return (f"OTHER RELEASE: host {host} runs {running or 'no release'}, stack {stack} records {recorded}; "
            f"`python -m ops.cli reapply --stack {stack}` applies the recorded one again")


def apply_urns(export: Mapping[str, Any]) -> list[str]:
    """The URN of every host's `hostagent apply` resource, from `pulumi stack export`."""
    resources = (export.get("deployment") or {}).get("resources") or []
    return [str(r["urn"]) for r in resources if isinstance(r, Mapping) and r.get("type") == "command:remote:Command"
            and str(r.get("urn", "")).endswith("-apply")]


def reapply_plan(stack: str, urns: Sequence[str]) -> list[Step]:
    """Apply the release the stack records again on every host: each host's apply resource is replaced, so the
    host agent applies it (only what differs is recreated) and the validation gate runs again."""
    if not urns:
        raise PlanError(f"reapply: stack {stack} has no host rollout yet: run `pulumi up --stack {stack}` first")
    replace = [arg for urn in urns for arg in ("--replace", urn)]
    return [Step(f"apply the recorded release again on {len(urns)} host(s), each validated again",
                 pulumi("up", "--yes", "--diff", *replace, "--message", "apply the recorded release again",
                        stack=stack))]


def releases_of(outputs: Mapping[str, Any]) -> list[str]:
    """Release ids the stack can return to, oldest first (its `releases` export; the current one last)."""
    history = outputs.get("releases")
    return [str(k) for k in history] if isinstance(history, Mapping) else []


def previous_release(outputs: Mapping[str, Any]) -> str:
    """The release before the current one, from the stack's history."""
    current = (outputs.get("release") or {}).get("id")
    ids = [r for r in releases_of(outputs) if r != current]
    if current is None or not ids:
        known = ", ".join(releases_of(outputs)) or "none"
        raise PlanError(f"rollback: no earlier release in the stack's history (known: {known}); "
                        f"pass --to <release id>, or flip back with `rollback --flip`")
    return ids[-1]


def rollback_plan(stack: str, outputs: Mapping[str, Any], to: str | None, flip: bool) -> list[Step]:
    """Pin an earlier release (`release: <id>`, hosts roll back through the same rollout and gate), or flip back."""
    if flip:
        live = outputs.get("liveColor")
        if live not in COLORS:
            raise PlanError(f"rollback --flip: stack {stack} exports no liveColor to flip back from")
        return flip_plan(stack, outputs, COLORS[1 - COLORS.index(str(live))])
    target = to or previous_release(outputs)
    known = releases_of(outputs)
    if target not in known:
        raise PlanError(f"rollback: release {target!r} is not in stack {stack}'s history "
                        f"(known: {', '.join(known) or 'none'}); its images may be gone")
    current = (outputs.get("release") or {}).get("id")
    if target == current:
        raise PlanError(f"rollback: release {target!r} is already the current release of stack {stack}")
    return [config_set(stack, "release", target),
            up(stack, f"roll back {current} -> {target}")]


@dataclass(frozen=True)
class HostAccess:
    name: str
    address: str
    port: int
    user: str
    host_key: str
    root: str
    project: str


HOST_KEY = "sshHostPrivateKey"


def keygen_argv(path: str, stack: str) -> tuple[str, ...]:
    """ssh-keygen of a droplet host key (ed25519, no passphrase: sshd reads it unattended) into `path`."""
    return ("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"devtools-host-{stack}", "-f", path)


def host_key_step(stack: str, public: str) -> Step:
    """Set the stack's host key as a secret; the private half goes on stdin, never in the argv."""
    return Step(f"set {NAMESPACE}:{HOST_KEY} on stack {stack} as a secret (the private half, on stdin); droplets "
                f"created from now on present {public}",
                pulumi("config", "set", "--secret", f"{NAMESPACE}:{HOST_KEY}", stack=stack))


def hosts_of(stack: str, outputs: Mapping[str, Any]) -> list[HostAccess]:
    """Every host of the stack, with what SSH and the host agent need (from its `hosts` and `color` exports), each
    value checked (ops.stack_outputs) before it can reach an argv, known_hosts or a path."""
    hosts = outputs.get("hosts")
    if not isinstance(hosts, Mapping) or not hosts.get("addresses"):
        raise PlanError(f"stack {stack} exports no hosts: run `pulumi up --stack {stack}` first")
    missing = [k for k in ("names", "ports", "sshUser", "root") if k not in hosts]
    if missing or "color" not in outputs:
        raise PlanError(f"stack {stack}'s `hosts` export lacks {', '.join(missing or ['color'])}: it was written "
                        f"by an older program; run `pulumi up --stack {stack}` once")
    if hosts.get("dropletIds") and not hosts.get("sshHostKey"):
        raise PlanError(f"stack {stack}'s droplets export no pinned host key (hosts.sshHostKey): refusing to trust "
                        f"whatever key they show; set {NAMESPACE}:{HOST_KEY} (`python -m ops.cli hostkey --stack "
                        f"{stack}`) and run `pulumi up --stack {stack}`")
    names, addresses, ports = hosts["names"], hosts["addresses"], hosts["ports"]
    try:
        if not all(isinstance(v, list) for v in (names, addresses, ports)) or \
                not len(names) == len(addresses) == len(ports):
            raise checked.OutputError(f"stack {stack}'s outputs hosts.names, hosts.addresses and hosts.ports differ "
                                      "in length: refusing to use them")
        user, host_key = checked.user(stack, hosts["sshUser"]), checked.host_key(stack, hosts.get("sshHostKey"))
        root, project = checked.root(stack, hosts["root"]), checked.project(stack, outputs["color"])
        return [HostAccess(checked.name(stack, f"hosts.names[{i}]", n),
                           checked.address(stack, f"hosts.addresses[{i}]", a),
                           checked.port(stack, f"hosts.ports[{i}]", p), user, host_key, root, project)
                for i, (n, a, p) in enumerate(zip(names, addresses, ports, strict=True))]
    except checked.OutputError as exc:
        raise PlanError(str(exc)) from None


def intended_release(stack: str, outputs: Mapping[str, Any]) -> dict[str, Any]:
    release = outputs.get("release")
    if not isinstance(release, Mapping) or not isinstance(release.get("images"), Mapping):
        raise PlanError(f"stack {stack} exports no release: run `pulumi up --stack {stack}` first")
    return dict(release)


def known_hosts_line(host: HostAccess) -> str:
    """A known_hosts entry pinning the configured host key ("[addr]:port" form for non-22 ports)."""
    where = host.address if host.port == 22 else f"[{host.address}]:{host.port}"
    return f"{where} {host.host_key}\n"


def status_command(host: HostAccess) -> str:
    """Remote shell: the host agent's status of the stack's project, as one JSON line."""
    return agent_command(host.root, host.project, ["status", "--compact"])


def collect_command(host: HostAccess) -> str:
    """Remote shell: a tar of the project's validation reports and diagnostics bundles on stdout."""
    return f"cd {shlex.quote(f'{host.root}/{host.project}')} && tar -cf - reports diagnostics"


def render_plan(title: str, steps: Sequence[Step]) -> str:
    lines = [title] + [f"  {i}. {s.render()}" for i, s in enumerate(steps, start=1)]
    return "\n".join(lines)


def tunnel_argv(ssh_argv: Sequence[str], local_port: int, remote_port: int) -> list[str]:
    """An SSH local forward 127.0.0.1:local_port → the host's 127.0.0.1:remote_port (its Prometheus), no remote
    command, failing at once when the forward cannot be set up. `ssh_argv` is the target's argv for a command (its
    options and user@host last but one), from ops.ship.SshTarget."""
    *options, destination, _command = ssh_argv
    return [*options, "-N", "-o", "ExitOnForwardFailure=yes",
            "-L", f"127.0.0.1:{local_port}:127.0.0.1:{remote_port}", destination]
