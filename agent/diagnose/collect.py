"""Diagnostics for the containers of a compose project: `python -m agent.diagnose <service|all> --project P`.

Per container of project P (listed and inspected by agent.containers): state and health-check log, image and
RepoDigests, `docker stats` resource use, the last N log lines (stdout and stderr), the /health response (port
and path from the health label, read by the validator's own rule, host port from the published binding),
environment and command line with secrets masked (agent.diagnose.masking): secret-looking names, and every key
and value of the project's secrets file. Read-only: docker ps / inspect / stats / logs and one HTTP GET. Standard
library only: the host agent calls write_bundle() after a rollback.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent import compose, secretfile
from agent.containers import ContainersError, inspect_project, run_docker, service_of
from agent.diagnose import masking
from agent.diagnose.report import ContainerReport, Probe, Report, State, render_container, render_report
from agent.validate.catalog import HEALTH, parse_health_label

DOCKER = "docker"
BODY_LIMIT = 2048
HEALTH_TIMEOUT = 5.0


def stats_argv(container_id: str) -> list[str]:
    return [DOCKER, "stats", "--no-stream", "--format", "{{json .}}", container_id]


def logs_argv(container_id: str, lines: int) -> list[str]:
    return [DOCKER, "logs", "--timestamps", "--tail", str(lines), container_id]


def published_address(inspect: dict[str, Any], container_port: int) -> tuple[str, int] | None:
    """Where a container port is published (IPv4 first; a wildcard bind is reached on loopback)."""
    bindings = ((inspect.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{container_port}/tcp") or []
    for binding in sorted(bindings, key=lambda b: ":" in str(b.get("HostIp"))):
        host, port = str(binding.get("HostIp") or ""), str(binding.get("HostPort") or "")
        if port.isdigit():
            return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host), int(port)  # noqa: S104
    return None


def health_url(host: str, port: int, path: str) -> str:
    return f"http://[{host}]:{port}{path}" if ":" in host else f"http://{host}:{port}{path}"


def state_from_inspect(inspect: dict[str, Any], secrets: set[str]) -> State:
    st = inspect.get("State") or {}
    health = st.get("Health") or {}
    checks = [
        {
            "start": e.get("Start"),
            "end": e.get("End"),
            "exit_code": e.get("ExitCode"),
            "output": masking.mask_text(str(e.get("Output") or "").strip(), secrets),
        }
        for e in health.get("Log") or []
    ]
    return State(
        status=str(st.get("Status", "unknown")),
        health=health.get("Status"),
        health_log=checks,
        restart_count=int(inspect.get("RestartCount") or 0),
        exit_code=st.get("ExitCode"),
        oom_killed=bool(st.get("OOMKilled")),
        error=masking.mask_text(str(st.get("Error") or ""), secrets),
        started_at=str(st.get("StartedAt", "")),
        finished_at=str(st.get("FinishedAt", "")),
    )


def command_of(inspect: dict[str, Any]) -> list[str]:
    config = inspect.get("Config") or {}
    return [str(a) for a in (config.get("Entrypoint") or []) + (config.get("Cmd") or [])]


def secrets_of(inspects: list[dict[str, Any]], names: Collection[str] = ()) -> set[str]:
    """Every secret value in the environment and command lines of these containers (`names`: the keys of the
    project's secrets file, secret whatever they are called)."""
    found: set[str] = set()
    for inspect in inspects:
        found |= masking.env_secret_values((inspect.get("Config") or {}).get("Env") or [], names)
        found |= masking.scan_args(command_of(inspect))[1]
    return found


def probe_health(url: str, timeout: float = HEALTH_TIMEOUT) -> Probe:
    """GET url, no proxies; the first BODY_LIMIT bytes of the body. Failures are recorded, never raised."""
    probe = Probe(url=url)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    started = time.monotonic()
    try:
        with opener.open(urllib.request.Request(url), timeout=timeout) as resp:  # noqa: S310 - http:// only
            probe.status, probe.body = resp.status, resp.read(BODY_LIMIT).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        with exc:
            probe.status, probe.body = exc.code, exc.read(BODY_LIMIT).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        probe.error = f"{type(exc).__name__}: {exc}"
    probe.elapsed_ms = round((time.monotonic() - started) * 1000)
    return probe


def _health(inspect: dict[str, Any], running: bool, secrets: set[str]) -> Probe:
    label = ((inspect.get("Config") or {}).get("Labels") or {}).get(HEALTH)
    if label is None:
        return Probe(url=None, error=f"no {HEALTH} label")
    target = parse_health_label(str(label))
    if target is None:
        return Probe(url=None, error=f"cannot read {HEALTH}={label!r}: expected <port><path>")
    if not running:
        return Probe(url=None, error="container is not running")
    address = published_address(inspect, target[0])
    if address is None:
        return Probe(url=None, error=f"container port {target[0]}/tcp is not published")
    probe = probe_health(health_url(*address, target[1]))
    probe.body = masking.mask_text(probe.body, secrets)
    return probe


def _container(inspect: dict[str, Any], lines: int, secrets: set[str], names: Collection[str]) -> ContainerReport:
    config, cid = inspect.get("Config") or {}, str(inspect.get("Id", ""))
    running = bool((inspect.get("State") or {}).get("Running"))
    c = ContainerReport(
        service=service_of(inspect),
        name=str(inspect.get("Name", "")).lstrip("/"),
        id=cid[:12],
        state=state_from_inspect(inspect, secrets),
        image=str(config.get("Image", "")),
        image_id=str(inspect.get("Image", "")),
        repo_digests=[],
        env=[masking.mask_text(e, secrets) for e in masking.mask_env(config.get("Env") or [], names)],
        command=[masking.mask_text(a, secrets) for a in masking.mask_args(command_of(inspect))],
        health=_health(inspect, running, secrets),
    )
    rc, out, err = run_docker(compose.repo_digests(c.image_id))
    try:
        c.repo_digests = [str(d) for d in json.loads(out) or []] if rc == 0 else []
        c.image_error = None if rc == 0 else err
    except (ValueError, TypeError) as exc:
        c.image_error = f"cannot read docker image inspect output: {exc}"
    rc, out, _ = run_docker(logs_argv(cid, lines), merge_stderr=True)
    c.logs = masking.mask_text(out, secrets).splitlines()
    if rc != 0:
        c.logs, c.logs_error = [], "\n".join(c.logs) or f"docker logs exited {rc}"
    if not running:
        c.stats_error = f"container is {c.state.status}"
        return c
    rc, out, err = run_docker(stats_argv(cid))
    try:
        c.stats = json.loads(out.splitlines()[0]) if rc == 0 else None
        c.stats_error = None if rc == 0 else err
    except (ValueError, IndexError) as exc:
        c.stats_error = f"cannot read docker stats output {out!r}: {exc}"
    return c


def collect(project: str, services: list[str] | None = None, lines: int = 100,
            secrets: Mapping[str, str] | None = None) -> Report:
    """The project's containers (all, or those of `services`). Raises ContainersError only when docker cannot
    list containers; a requested service without a container is recorded in Report.errors. `secrets`: the
    project's secrets file (every key is a secret name, every value is hidden wherever it appears)."""
    inspects, errors = inspect_project(project)
    known = sorted({service_of(i) for i in inspects})
    chosen = [i for i in inspects if services is None or service_of(i) in services]
    errors += [f"no container of service {s!r} in project {project!r}" for s in services or [] if s not in known]
    names = frozenset(secrets or {})
    hidden = set(secretfile.mask_values(secrets_of(inspects, names) | set((secrets or {}).values())))
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(chosen)))) as pool:
        containers = sorted(
            pool.map(lambda i: _container(i, lines, hidden, names), chosen), key=lambda c: (c.service, c.name)
        )
    return Report(project, services, _now(), known, containers, errors)


def read_secrets(path: Path) -> dict[str, str]:
    """A secrets file's keys and values ({} when there is none or it cannot be read)."""
    try:
        return secretfile.read_secrets_file(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return {}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "_"


def save_bundle(report: Report, out_dir: str | os.PathLike[str]) -> Path:
    """Write summary.json (the --json document) and <service>.txt / <service>.log into out_dir."""
    bundle = Path(out_dir)
    bundle.mkdir(mode=0o700, parents=True, exist_ok=True)
    (bundle / "summary.json").write_text(json.dumps(asdict(report) | {"bundle": str(bundle)}, indent=2) + "\n")
    for service in sorted({c.service for c in report.containers}):
        group, name = [c for c in report.containers if c.service == service], _safe_name(service)
        (bundle / f"{name}.txt").write_text("\n".join(render_container(c, f"{name}.log") for c in group))
        titled = len(group) > 1
        (bundle / f"{name}.log").write_text(
            "".join((f"==> {c.name} <==\n" if titled else "") + "".join(f"{x}\n" for x in c.logs) for c in group)
        )
    return bundle


def write_bundle(
    project: str, out_dir: str | os.PathLike[str], services: list[str] | None = None, lines: int = 100,
    secrets: Mapping[str, str] | None = None,
) -> Path:
    """Collect and write a bundle into out_dir (created); returns it. Docker failures land in summary.json."""
    try:
        report = collect(project, services, lines, secrets)
    except ContainersError as exc:
        report = Report(project, services, _now(), [], [], [f"docker ps failed: {exc}"])
    return save_bundle(report, out_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agent.diagnose",
        description="Diagnose the containers of a compose project: state, health-check log, image digests, "
        "resource use, last log lines, the /health response, environment and command line (secrets masked).",
    )
    parser.add_argument("service", help="a compose service name, or `all`")
    parser.add_argument(
        "--project",
        default=os.environ.get("COMPOSE_PROJECT_NAME"),
        help="compose project name (default: $COMPOSE_PROJECT_NAME)",
    )
    parser.add_argument("--lines", type=int, default=100, help="log lines per container (default: 100)")
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("DEVTOOLS_HOST_ROOT", "/opt/devtools")),
                        help="the host agent's root (default /opt/devtools or $DEVTOOLS_HOST_ROOT): the project's "
                        "secrets file there is masked (every key and value)")
    parser.add_argument("--secrets-file", type=Path, help="mask the keys and values of this secrets file instead "
                        "(default: <root>/<project>/secrets.env)")
    parser.add_argument("--out", metavar="DIR", help="write the bundle into DIR and print its path")
    parser.add_argument("--json", action="store_true", help="print a JSON document instead of text")
    args = parser.parse_args(argv)
    if not args.project:
        parser.error("--project is required (or set COMPOSE_PROJECT_NAME)")
    if args.lines < 0:
        parser.error("--lines must be 0 or more")
    services = None if args.service == "all" else [args.service]
    secrets = read_secrets(args.secrets_file or args.root / args.project / "secrets.env")
    try:
        report = collect(args.project, services, args.lines, secrets)
    except ContainersError as exc:
        print(f"diagnose: docker ps failed: {exc}", file=sys.stderr)
        return 1
    if not report.containers:
        what = "no containers" if services is None else f"no container of service {args.service!r}"
        known = ", ".join(report.known_services) or "(none)"
        print(f"diagnose: {what} in project {args.project!r}; known services: {known}", file=sys.stderr)
        return 2
    document: dict[str, Any] = asdict(report)
    if args.out:
        document["bundle"] = str(save_bundle(report, args.out))
    if args.json:
        print(json.dumps(document, indent=2))
    elif args.out:
        print(document["bundle"])
    else:
        sys.stdout.write(render_report(report))
    return 0

