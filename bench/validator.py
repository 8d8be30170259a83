"""(d) wall time of `python -m ops.validate` vs a serial curl script doing the same checks, at 200 ms latency.

The checks come from the real compose file: its resolved config (`docker compose config --format json`, with
placeholder pins) has every published port rewritten to a loopback server of bench/latency.py that answers
like the example application after `delay` seconds. Both ways run against the same servers, alternately, and
both must pass every check; the median of the runs is compared.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from bench import common as c
from bench.latency import Role, Servers, serving
from ops.catalog import Catalog, load_catalog

SCRIPT = Path(__file__).resolve().parent / "serial_checks.sh"
FAKE_DIGEST = "sha256:" + "0" * 64


def ensure_curl() -> None:
    if shutil.which("curl") is None:
        c.say("curl is missing: apt-get install -y curl")
        c.run(["apt-get", "install", "-y", "-q", "curl"], 600, "apt-get install curl")


def resolved_config() -> dict[str, Any]:
    """The compose file resolved with placeholder pins (nothing is pulled or started)."""
    out = c.run(["docker", "compose", "--project-name", "bench-validate", "--file", str(c.COMPOSE_FILE), "config",
                 "--format", "json"], 60, "docker compose config", env=_placeholder_env(_pin_keys())).stdout
    resolved: dict[str, Any] = json.loads(out)
    return resolved


def _pin_keys() -> list[str]:
    """The X of every `${X_IMAGE:?…}` pin the compose file requires."""
    return sorted(set(re.findall(r"\$\{([A-Z_]+)_IMAGE:\?", c.COMPOSE_FILE.read_text())))


def _placeholder_env(keys: list[str]) -> dict[str, str]:
    env = {f"{k}_IMAGE": f"127.0.0.1:5000/bench/{k.lower()}@{FAKE_DIGEST}" for k in keys}
    return {**env, "HOST_PORT_PREFIX": "89", "SECRETS_ENV_FILE": "/dev/null"}


def point_at(resolved: dict[str, Any], catalog: Catalog, ports: dict[str, int]) -> dict[str, Any]:
    """A copy of the resolved config whose health ports are published on the latency servers' ports."""
    copy: dict[str, Any] = json.loads(json.dumps(resolved))
    for service in catalog.services:
        for entry in copy["services"][service.name].get("ports", []):
            if str(entry.get("target")) == str(service.health.container_port):
                entry["published"] = str(ports[service.name])
    return copy


def plan(catalog: Catalog, host: str = "127.0.0.1") -> str:
    """The serial script's input: the same checks the validator derives from the labels."""
    lines = [f"health http://{host}:{s.health.host_port}{s.health.path}" for s in catalog.services]
    lines += [f"mcp http://{host}:{s.health.host_port}{s.mcp.path} {s.mcp.min_tools}"
              for s in catalog.services if s.mcp is not None]
    lines += [f"e2e http://{host}:{s.health.host_port}{s.e2e.path} {s.e2e.expect}"
              for s in catalog.services if s.e2e is not None]
    return "\n".join(lines) + "\n"


def _once(servers: Servers, argv: list[str], what: str, input_text: str | None = None) -> tuple[float, int, str]:
    first = servers.requests()
    t0 = time.monotonic()
    proc = c.run(argv, 120, what, input_text=input_text)
    wall = time.monotonic() - t0
    return wall, servers.requests() - first - 1, proc.stdout


def run(delay: float = 0.2, repeat: int = 3, quiet_s: float = 0) -> dict[str, Any]:
    ensure_curl()
    resolved = resolved_config()
    catalog = load_catalog(resolved)
    roles = [Role(s.name, e2e=s.e2e is not None, mcp=s.mcp is not None) for s in catalog.services]
    work = c.STATE / "validate"
    work.mkdir(parents=True, exist_ok=True)
    walls: dict[str, list[float]] = {"validator": [], "curl": []}
    requests: dict[str, int] = {}
    reported: list[float] = []
    with serving(roles, delay) as servers:
        config = point_at(resolved, catalog, servers.ports)
        checked = load_catalog(config)
        (work / "resolved.json").write_text(json.dumps(config, indent=2) + "\n")
        checks = plan(checked)
        report = work / "report.json"
        machine = c.await_quiet(quiet_s)
        c.say(f"(d) {len(catalog.services)} latency servers ({delay * 1000:.0f} ms); {repeat} runs of each way")
        for _ in range(repeat):
            wall, n, _out = _once(servers, [c.PY, "-m", "ops.validate", "--config", str(work / "resolved.json"),
                                            "--json", str(report), "--no-color"], "ops.validate")
            walls["validator"].append(round(wall, 3))
            requests["validator"] = n
            reported.append(round(float(json.loads(report.read_text())["duration_s"]), 3))
            wall, n, _out = _once(servers, ["bash", str(SCRIPT)], "serial curl checks", input_text=checks)
            walls["curl"].append(round(wall, 3))
            requests["curl"] = n
        phases = json.loads(report.read_text())["phases"]
    slowest = {name: max(ch["duration_s"] for ch in phase["checks"]) for name, phase in phases.items()}
    summary = {k: round(statistics.median(v), 3) for k, v in walls.items()}
    n_checks = len(checks.strip().splitlines())
    return {"delay_s": delay, "repeat": repeat, "machine_before": machine, "checks": n_checks, "wall_s": walls,
            "median_s": summary,
            "validator_reported_s": reported, "slowest_check_by_phase_s": slowest, "requests_per_run": requests,
            "ratio": round(summary["curl"] / summary["validator"], 2), "goal": 5.0}


def tables(result: dict[str, Any]) -> None:
    med, req = result["median_s"], result["requests_per_run"]
    runs = {k: ", ".join(f"{w:.2f}" for w in v) for k, v in result["wall_s"].items()}
    rows = [["serial curl script (naive)", c.seconds(med["curl"]), runs["curl"], req["curl"]],
            ["python -m ops.validate (ours)", c.seconds(med["validator"]), runs["validator"], req["validator"]]]
    c.show(f"(d) {result['checks']} checks at {result['delay_s'] * 1000:.0f} ms latency: wall time "
           f"(ratio {result['ratio']:.1f}x, goal ≥ {result['goal']:.0f}x; the validator's own report: "
           f"{statistics.median(result['validator_reported_s']):.2f} s)",
           ["way", "median", "runs (s)", "requests per run"], rows)
