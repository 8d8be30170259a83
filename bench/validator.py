"""(d) wall time of `python -m agent.validate` vs a serial curl script doing the same checks, at 200 ms latency.

The checks come from the real compose file: its resolved config (`docker compose config --format json`, with
placeholder pins) has every published port rewritten to a loopback server of bench/latency.py that answers
like the example application after `delay` seconds, in each of its two latency models (per answer; network
round trip, where a new connection costs one more). Both ways run against the same servers, alternately, and
both must pass every check; the median of the runs is compared. The validator runs in a venv like a host's.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from agent.validate.catalog import Catalog, load_catalog
from agent.validate.report import read_json
from bench import common as c
from bench.latency import Role, Servers, serving

SCRIPT = Path(__file__).resolve().parent / "serial_checks.sh"
FAKE_DIGEST = "sha256:" + "0" * 64
HOST_REQUIREMENTS = c.ROOT / "ops" / "requirements-host.txt"
SYSTEM_PYTHON = "/usr/bin/python3"  # what cloud-init makes the host venv from
MODELS = {"answer": "per answer", "network": "network round trip"}  # bench/latency.py's two models


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
    lines += [f"mcp http://{host}:{s.health.host_port}{s.mcp.path} {s.mcp.min_tools} {s.mcp.protocol}"
              for s in catalog.services if s.mcp is not None]
    lines += [f"e2e http://{host}:{s.health.host_port}{s.e2e.path} {s.e2e.expect}"
              for s in catalog.services if s.e2e is not None]
    return "\n".join(lines) + "\n"


def host_python() -> str:
    """The validator's interpreter as a host runs it: a venv of the system python3 with agent/requirements.txt
    only, as cloud-init makes it. Not the project venv: httpx imports its CLI's packages (click, rich, pygments)
    when they are installed, 0.1 s more start-up that no host pays. Made once, again when the requirements change.
    """
    venv = c.STATE / "host-venv"
    stamp, wanted = venv / "requirements-host.txt", HOST_REQUIREMENTS.read_text()
    python = venv / "bin" / "python"
    if python.exists() and stamp.is_file() and stamp.read_text() == wanted:
        return str(python)
    system = SYSTEM_PYTHON if Path(SYSTEM_PYTHON).exists() else (shutil.which("python3") or c.PY)
    c.say(f"(d) making {venv}: {system} -m venv, pip install -r agent/requirements.txt")
    c.run([system, "-m", "venv", "--clear", str(venv)], 300, f"{system} -m venv (apt-get install python3-venv)")
    c.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "-r", str(HOST_REQUIREMENTS)],
          600, "pip install -r agent/requirements.txt")
    stamp.write_text(wanted)
    return str(python)


def host_bytecode(python: str) -> dict[str, str]:
    """The validator's environment as on a host, where the agent's directory is writable and Python keeps the
    bytecode it compiles (__pycache__) from the first run on. Here it goes under $BENCH_STATE/pycache (the
    checkout stays clean), compiled before the timed runs; a PYTHONDONTWRITEBYTECODE of the caller is cleared
    (empty means unset). Without this every run would compile ops/ again, which no host does."""
    env = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(c.STATE / "pycache")}
    c.run([python, "-m", "compileall", "-q", str(c.ROOT / "ops")], 120, "python -m compileall ops", env=env)
    return env


def _once(servers: Servers, argv: list[str], what: str, input_text: str | None = None,
          env: dict[str, str] | None = None) -> tuple[float, int, str]:
    first = servers.requests()
    t0 = time.monotonic()
    proc = c.run(argv, 120, what, input_text=input_text, env=env)
    wall = time.monotonic() - t0
    return wall, servers.requests() - first - 1, proc.stdout


def _measure(model: str, python: str, resolved: dict[str, Any], catalog: Catalog, *, delay: float, repeat: int,
             env: dict[str, str]) -> dict[str, Any]:
    """Both ways, `repeat` times each, alternating, against fresh latency servers of one model."""
    roles = [Role(s.name, e2e=s.e2e is not None, mcp=s.mcp is not None) for s in catalog.services]
    work = c.STATE / "validate"
    work.mkdir(parents=True, exist_ok=True)
    walls: dict[str, list[float]] = {"validator": [], "curl": []}
    requests: dict[str, int] = {}
    reported: list[float] = []
    with serving(roles, delay, network=model == "network") as servers:
        config = point_at(resolved, catalog, servers.ports)
        checks = plan(load_catalog(config))
        (work / "resolved.json").write_text(json.dumps(config, indent=2) + "\n")
        report = work / "report.json"
        c.say(f"(d) {MODELS[model]}: {len(catalog.services)} servers at {delay * 1000:.0f} ms, {repeat} runs each way")
        for _ in range(repeat):
            wall, n, _out = _once(servers, [python, "-m", "agent.validate", "--config", str(work / "resolved.json"),
                                            "--json", str(report), "--no-color"], "agent.validate", env=env)
            walls["validator"].append(round(wall, 3))
            requests["validator"] = n
            reported.append(round(read_json(report).duration_s, 3))
            wall, n, _out = _once(servers, ["bash", str(SCRIPT)], "serial curl checks", input_text=checks)
            walls["curl"].append(round(wall, 3))
            requests["curl"] = n
        phases = read_json(report).phases()
    median = {k: round(statistics.median(v), 3) for k, v in walls.items()}
    return {"wall_s": walls, "median_s": median, "validator_reported_s": reported,
            "slowest_check_by_phase_s": {name: max(r.duration_s for r in results) for name, results in phases},
            "requests_per_run": requests, "checks": len(checks.strip().splitlines()),
            "ratio": round(median["curl"] / median["validator"], 2)}


def run(delay: float = 0.2, repeat: int = 3, quiet_s: float = 0) -> dict[str, Any]:
    ensure_curl()
    python = host_python()
    env = host_bytecode(python)
    resolved = resolved_config()
    catalog = load_catalog(resolved)
    machine = c.await_quiet(quiet_s)
    models = {model: _measure(model, python, resolved, catalog, delay=delay, repeat=repeat, env=env)
              for model in MODELS}
    version = c.run([python, "--version"], 30, "python --version").stdout.strip()
    return {"delay_s": delay, "repeat": repeat, "machine_before": machine, "python": f"{python} ({version})",
            "models": models, "goal": 5.0}


def tables(result: dict[str, Any]) -> None:
    rows = []
    for model, label in MODELS.items():
        m = result["models"][model]
        med, req = m["median_s"], m["requests_per_run"]
        runs = {k: ", ".join(f"{w:.2f}" for w in v) for k, v in m["wall_s"].items()}
        reported = statistics.median(m["validator_reported_s"])
        rows += [[label, "serial curl script (naive)", c.seconds(med["curl"]), runs["curl"], req["curl"], "-"],
                 [label, "python -m agent.validate (ours)", c.seconds(med["validator"]), runs["validator"],
                  req["validator"], f"{m['ratio']:.1f}x (its report: {reported:.2f} s)"]]
    checks = result["models"]["answer"]["checks"]
    c.show(f"(d) {checks} checks at {result['delay_s'] * 1000:.0f} ms latency, wall time (goal ≥ "
           f"{result['goal']:.0f}x; validator on {result['python']})",
           ["latency", "way", "median", "runs (s)", "requests per run", "ratio"], rows)
