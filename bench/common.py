"""What every measurement needs: running commands, building releases, reading containers, printing tables."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.containers import PROJECT_LABEL, SERVICE_LABEL
from agent.remote import agent_command
from components.catalog import load_service_catalog
from ops.ship import SshTarget
from standin import localenv

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
COMPOSE_FILE = ROOT / "compose" / "docker-compose.yml"
STATE = Path(os.environ.get("BENCH_STATE", "/var/tmp/devtools-bench"))
# The services compose/docker-compose.yml runs from a release pin, in file order (the program's own reader).
SERVICES = load_service_catalog(ROOT / "compose", ROOT / "examples" / "app").services


class BenchError(Exception):
    """A measurement could not be made; the message says what went wrong, `partial` what was measured."""

    def __init__(self, message: str, partial: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.partial = partial


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run(argv: Sequence[str], timeout: float, what: str, *, env: Mapping[str, str] | None = None,
        input_text: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command to completion (bounded by `timeout`); a non-zero exit raises BenchError when `check`."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False,
                              env=None if env is None else {**os.environ, **env}, input=input_text)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{what}: did not finish within {timeout:.0f}s") from exc
    if check and proc.returncode != 0:
        raise BenchError(f"{what}: exit {proc.returncode}\n{tail(proc.stdout)}\n{tail(proc.stderr)}")
    return proc


def timed(argv: Sequence[str], timeout: float, what: str, **kw: Any) -> float:
    """Seconds a command took (it must succeed)."""
    t0 = time.monotonic()
    run(argv, timeout, what, **kw)
    return round(time.monotonic() - t0, 2)


# releases -------------------------------------------------------------------------------------------------
def build(tag: str, services: Sequence[str] = (), app_root: Path | None = None) -> dict[str, Any]:
    """`python -m ops.build` (docker's cache makes unchanged images quick); returns the pins document."""
    out = STATE / "pins" / f"{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [PY, "-m", "ops.build", "--tag", tag, "--out", str(out)]
    if services:
        argv += ["--services", ",".join(services)]
    env = {"APP_ROOT": str(app_root)} if app_root is not None else None
    run(argv, 900, f"ops.build --tag {tag}", env=env)
    pins: dict[str, Any] = json.loads(out.read_text())
    return pins


def changed_app(service: str, note: str) -> Path:
    """A copy of examples/app with one service's source changed (the same change every run: same digest)."""
    app = STATE / "apps" / f"{service}-{note}"
    if app.exists():
        shutil.rmtree(app)
    shutil.copytree(ROOT / "examples" / "app", app)
    with open(app / "services" / service / "service.conf", "a", encoding="utf-8") as fh:
        fh.write(f"# bench change {note}\n")
    return app


def with_change(pins: Mapping[str, Any], release: str, service: str, note: str = "one") -> dict[str, Any]:
    """`pins` with `service` rebuilt from changed source, under a new release id."""
    built = build(f"bench-change-{service}-{note}", [service], changed_app(service, note))
    images = {**pins["images"], service: built["images"][service]}
    if images[service] == pins["images"][service]:
        raise BenchError(f"the changed {service} image has the same digest as before")
    return {**pins, "release": release, "images": images}


def renamed(pins: Mapping[str, Any], release: str) -> dict[str, Any]:
    return {**pins, "release": release}


def write_pins(pins: Mapping[str, Any]) -> Path:
    path = STATE / "pins" / f"release-{pins['release']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(pins, indent=2) + "\n")
    return path


def ship(pins: Mapping[str, Any], project: str, *, host_root: Path | None, env: Mapping[str, str],
         local_checks: bool = False, timeout: float = 600, tier: str | None = None) -> tuple[float, str]:
    """`python -m ops.ship` (the release engine over SSH, one tier with `tier`); returns its wall time and output.
    Must succeed."""
    argv = [PY, "-m", "ops.ship", "--pins", str(write_pins(pins)), "--project", project]
    if tier is not None:
        argv += ["--tier", tier]
    if host_root is not None:
        argv += ["--host-root", str(host_root)]
    if not local_checks:
        argv.append("--no-local-env")
    argv += [f"--env={k}={v}" for k, v in env.items()]
    t0 = time.monotonic()
    proc = run(argv, timeout, f"ops.ship {pins['release']} to {project}", check=False)
    if proc.returncode != 0:
        # The agent's own lines ("[12:00:00] …") and its verdict, not the container log lines it quotes.
        lines = [line for line in proc.stdout.splitlines() if line.startswith(("[", "FAILED", "CRITICAL", "failing"))]
        raise BenchError(f"ops.ship {pins['release']} to {project}: exit {proc.returncode}\n"
                         + "\n".join(lines[-12:]) + f"\n{tail(proc.stderr, 5)}")
    return round(time.monotonic() - t0, 2), proc.stdout


# containers -----------------------------------------------------------------------------------------------
def containers(project: str) -> dict[str, tuple[str, str]]:
    """{service: (container id, status)} of the project's containers, running or not."""
    out = run(["docker", "ps", "--all", "--no-trunc", "--filter", f"label={PROJECT_LABEL}={project}",
               "--format", '{{.Label "' + SERVICE_LABEL + '"}}\t{{.ID}}\t{{.Status}}'], 60,
              f"docker ps ({project})").stdout
    rows = [line.split("\t") for line in out.splitlines() if line.strip()]
    return {r[0]: (r[1], r[2]) for r in rows if len(r) == 3}


def container_ids(project: str) -> dict[str, str]:
    return {service: cid for service, (cid, _) in containers(project).items()}


def stop_project(project: str) -> None:
    """Stop (not remove) a project's running containers, so that their health checks stop costing CPU."""
    ids = run(["docker", "ps", "--quiet", "--filter", f"label={PROJECT_LABEL}={project}"], 60,
              f"docker ps ({project})").stdout.split()
    if ids:
        run(["docker", "stop", "--time", "5", *ids], 120, f"docker stop ({project})")


def wait_healthy(project: str, timeout: float, expected: int = len(SERVICES)) -> float:
    """Seconds until `expected` containers of the project report healthy; BenchError after `timeout`."""
    t0 = time.monotonic()
    seen: dict[str, tuple[str, str]] = {}
    while time.monotonic() - t0 < timeout:
        seen = containers(project)
        if len(seen) == expected and all("(healthy)" in status for _, status in seen.values()):
            return round(time.monotonic() - t0, 2)
        time.sleep(0.25)
    states = ", ".join(f"{s}: {st}" for s, (_, st) in sorted(seen.items())) or "no containers"
    raise BenchError(f"{project}: not all {expected} services healthy after {timeout:.0f}s ({states})")


# the stand-in's host ---------------------------------------------------------------------------------------
def host_agent(env: localenv.LocalEnv, project: str, *args: str) -> str:
    """`hostagent <args>` of a stand-in project over SSH (must succeed); its stdout."""
    target = SshTarget(env.ssh_host, env.ssh_port, env.ssh_user, env.ssh_key, env.known_hosts)
    return run(target.argv(agent_command(str(env.host_root), project, list(args))), 600,
               f"hostagent {args[0]} ({project})").stdout


def current_release(env: localenv.LocalEnv, project: str) -> str | None:
    current = json.loads(host_agent(env, project, "status", "--compact")).get("current")
    return str(current) if current else None


def put_back(env: localenv.LocalEnv, before: Mapping[str, str | None], what: str) -> list[str]:
    """Each project back on the release it ran before (`hostagent rollback --to`): the local stacks record what
    their hosts run, and a measurement must not leave them running one of its own. Returns what could not be put
    back (a release the host no longer keeps), each with its reason."""
    missed = []
    for project, release in before.items():
        if release is None or current_release(env, project) == release:
            continue
        say(f"{what} {project} back on {release} (hostagent rollback)")
        try:
            host_agent(env, project, "rollback", "--to", release)
        except BenchError as exc:
            missed.append(f"{project} not put back on {release}: {tail(str(exc), 3)}")
    return missed


# the machine ----------------------------------------------------------------------------------------------
def cpu_busy(sample_s: float = 2.0) -> float:
    """Percent of all CPUs busy (every process on the machine) over `sample_s` seconds."""
    from bench.load import cpu_times  # noqa: PLC0415 - avoids a cycle at import time

    b0, t0 = cpu_times()
    time.sleep(sample_s)
    b1, t1 = cpu_times()
    return round(100 * (b1 - b0) / max(t1 - t0, 1), 1)


def await_quiet(limit_s: float, busy_below: float = 75.0) -> dict[str, Any]:
    """Wait (at most `limit_s`) until the machine's CPU is mostly idle; others' work skews every number here.

    Returns what was seen, so the results show how busy the machine was when the measurement started.
    """
    t0 = time.monotonic()
    busy = cpu_busy()
    if busy >= busy_below and limit_s > 0:
        say(f"the machine is busy ({busy:.0f}% CPU, load {os.getloadavg()[0]:.1f}): waiting up to "
            f"{limit_s:.0f}s for it to settle")
    while busy >= busy_below and time.monotonic() - t0 < limit_s:
        busy = cpu_busy()
    others = run(["docker", "ps", "--quiet", "--filter", f"label={PROJECT_LABEL}"], 30, "docker ps",
                 check=False).stdout.split()
    return {"cpu_busy_pct": busy, "waited_s": round(time.monotonic() - t0, 1), "quiet": busy < busy_below,
            "loadavg_1m": round(os.getloadavg()[0], 2), "compose_containers_running": len(others)}


# output ---------------------------------------------------------------------------------------------------
def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    rule = "  " + "-+-".join("-" * w for w in widths)
    return "\n".join([title, line(cells[0]), rule, *[line(r) for r in cells[1:]]]) + "\n"


def show(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    print("\n" + table(title, headers, rows), flush=True)


def failures(load: Mapping[str, Any]) -> str:
    """"failed/scheduled", split into down (refused, reset, not 200) and overloaded (timed out, not sent)."""
    over = load.get("timed_out", 0) + load.get("not_sent", 0)
    text = f"{load['failed']}/{load['scheduled']}"
    return f"{text} ({load.get('down', 0)} down, {over} overloaded)" if load["failed"] else text


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def failed_ratio(naive: int, ours: int) -> str:
    """Failed requests, naive/ours: "ours N.Nx fewer" or "ours N.Nx more"; "0 vs 0" when neither failed, "∞ (ours
    0)" when only the naive way did, "ours N more (naive 0)" when only ours did."""
    if ours == 0:
        return "0 vs 0" if naive == 0 else "∞ (ours 0)"
    if naive == 0:
        return f"ours {ours} more (naive 0)"
    return f"ours {naive / ours:.1f}x fewer" if ours <= naive else f"ours {ours / naive:.1f}x more"


def compare(naive: float | None, ours: float | None) -> str:
    """"ours N.Nx shorter" or "ours N.Nx longer" (times: lower is better)."""
    if naive is None or ours is None or naive <= 0 or ours <= 0:
        return "-"
    return f"ours {naive / ours:.1f}x shorter" if ours <= naive else f"ours {ours / naive:.1f}x longer"

