"""(a) requests failed and longest gap under load during a one-service release, (b) containers recreated.

Two ways, each on its own compose project and host ports, both starting from the same base release:

* naive: what the old scripted deploy did, locally: write the env file of pins, then
  `docker compose down --remove-orphans` → `docker compose pull` → `docker compose up -d` (volumes are kept).
* ours:  `python -m ops.ship` → over SSH `agent.hostagent apply` (pull, `up -d --wait`, validate).

Two changes in a row: an agent (code-review) on top of the base, then the gateway on top of that. The load
goes to the gateway's /health the whole time.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agent.release import image_env_key
from bench import common as c
from bench.load import Load, LoadResult

AGENT = "code-review"
GATEWAY = "gateway-mcp"
LEAD_S, TAIL_S = 1.0, 1.0
HEALTHY_TIMEOUT_S = 120
# The host agent's progress lines: "pulled images of R (0.4s)", "compose up --wait: … (3.1s)",
# "validation passed (0.9s)"
STEP = re.compile(r"(pulled images|compose up --wait|validation passed)[^(]*\((\d+\.\d)s\)")
STEP_NAMES = {"pulled images": "pull", "compose up --wait": "up_wait", "validation passed": "validate"}


class Way(Protocol):
    name: str
    project: str
    prefix: str

    def setup(self, pins: dict[str, Any]) -> None: ...

    def release(self, pins: dict[str, Any]) -> dict[str, float]: ...


@dataclass
class Naive:
    name: str = "naive"
    project: str = "bench-naive"
    prefix: str = "87"

    @property
    def env_file(self) -> Path:
        return c.STATE / "naive" / "release.env"

    def compose(self, *args: str) -> list[str]:
        return ["docker", "compose", "--project-name", self.project, "--file", str(c.COMPOSE_FILE),
                "--env-file", str(self.env_file), *args]

    def write_env(self, pins: dict[str, Any]) -> None:
        lines = [f"{image_env_key(s)}={ref}" for s, ref in sorted(pins["images"].items())]
        lines += [f"HOST_PORT_PREFIX={self.prefix}", "SECRETS_ENV_FILE=/dev/null"]
        self.env_file.parent.mkdir(parents=True, exist_ok=True)
        self.env_file.write_text("\n".join(lines) + "\n")

    def setup(self, pins: dict[str, Any]) -> None:
        self.write_env(pins)
        c.run(self.compose("up", "--detach", "--wait", "--wait-timeout", str(HEALTHY_TIMEOUT_S)), 300,
              f"{self.project}: up --wait (base release)")

    def release(self, pins: dict[str, Any]) -> dict[str, float]:
        self.write_env(pins)
        return {
            "down": c.timed(self.compose("down", "--remove-orphans"), 300, f"{self.project}: down"),
            "pull": c.timed(self.compose("pull", "--quiet"), 300, f"{self.project}: pull"),
            "up": c.timed(self.compose("up", "--detach"), 300, f"{self.project}: up -d"),
        }


@dataclass
class Ours:
    name: str = "ours"
    project: str = "bench-agent"
    prefix: str = "88"

    @property
    def host_root(self) -> Path:
        return c.STATE / "host"

    def setup(self, pins: dict[str, Any]) -> None:
        """A host root of our own, using the stand-in host's agent venv (what cloud-init installs)."""
        from standin import localenv  # noqa: PLC0415 - only this way needs the stand-in's addresses

        self.host_root.mkdir(parents=True, exist_ok=True)
        venv = self.host_root / "venv"
        if not venv.exists():
            venv.symlink_to(localenv.load().host_root / "venv")
        self.release(pins)

    def release(self, pins: dict[str, Any]) -> dict[str, float]:
        wall, out = c.ship(pins, self.project, host_root=self.host_root, env={"HOST_PORT_PREFIX": self.prefix})
        return {"ship": wall, **{STEP_NAMES[m.group(1)]: float(m.group(2)) for m in STEP.finditer(out)}}


def measure(way: Way, pins: dict[str, Any], rate: float, max_seconds: float) -> dict[str, Any]:
    """One release under load; returns what the tables and the JSON need."""
    before = c.container_ids(way.project)
    load = Load(f"http://127.0.0.1:{way.prefix}00/health", rate, max_seconds)
    load.start()
    error = ""
    steps: dict[str, float] = {}
    healthy_s: float | None = None
    t0 = time.monotonic()
    try:
        time.sleep(LEAD_S)
        load.mark("release_start")
        t0 = time.monotonic()
        steps = way.release(pins)
        duration = round(time.monotonic() - t0, 2)
        load.mark("release_done")
        c.wait_healthy(way.project, HEALTHY_TIMEOUT_S)
        healthy_s = round(time.monotonic() - t0, 2)
        load.mark("all_healthy")
        time.sleep(TAIL_S)
    except c.BenchError as exc:
        error = str(exc)
        duration = round(time.monotonic() - t0, 2)
    finally:
        result: LoadResult = load.stop()
    after = c.container_ids(way.project)
    recreated = sorted(s for s in after if after[s] != before.get(s))
    covered = healthy_s is not None and result.seconds >= result.marks.get("all_healthy", float("inf"))
    return {"way": way.name, "project": way.project, "release": pins["release"], "ok": not error, "error": error,
            "duration_s": duration, "healthy_after_s": healthy_s, "steps_s": steps, "load": result.to_json(),
            "load_covered_release": covered, "recreated": recreated, "containers": len(after)}


def baseline(way: Way, rate: float, seconds: float) -> dict[str, Any]:
    with Load(f"http://127.0.0.1:{way.prefix}00/health", rate, seconds) as load:
        time.sleep(seconds)
    return load.result().to_json()


def run(base: dict[str, Any], run_id: str, rate: float, max_seconds: float, quiet_s: float) -> dict[str, Any]:
    """Both ways: set up the base release, then the agent change, then the gateway change."""
    ways: list[Way] = [Naive(), Ours()]
    agent = c.with_change(base, f"bench-{run_id}-agent", AGENT)
    gateway = c.with_change(agent, f"bench-{run_id}-gateway", GATEWAY)
    result: dict[str, Any] = {"rate": rate, "changes": {"agent": AGENT, "gateway": GATEWAY}, "baseline": {},
                              "rows": {"agent": {}, "gateway": {}}}
    try:
        for way in ways:
            c.say(f"(a) {way.name}: base release on project {way.project} (127.0.0.1:{way.prefix}xx)")
            way.setup(c.renamed(base, f"bench-{run_id}-base"))
            c.wait_healthy(way.project, HEALTHY_TIMEOUT_S)
            machine = c.await_quiet(quiet_s)
            result["baseline"][way.name] = {**baseline(way, rate, 3.0), "machine_before": machine}
        for key, pins in (("agent", agent), ("gateway", gateway)):
            for way in ways:
                machine = c.await_quiet(quiet_s)
                c.say(f"(a) {way.name}: one-service release ({key}: {result['changes'][key]}) under {rate:g} req/s")
                row = {**measure(way, pins, rate, max_seconds), "machine_before": machine}
                result["rows"][key][way.name] = row
                if not row["ok"]:
                    raise c.BenchError(f"(a) {way.name} {key} release failed: {row['error']}", partial=result)
    finally:
        c.say(f"(a) stopping {', '.join(w.project for w in ways)} (containers and volumes are kept)")
        for way in ways:
            try:
                c.stop_project(way.project)
            except c.BenchError as exc:
                c.say(f"(a) could not stop {way.project}: {exc}")
    return result


def _measured(result: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(change, way, row) for every row measured, in table order (a failed run leaves some out)."""
    rows = result["rows"]
    return [(key, name, rows[key][name]) for key in ("agent", "gateway") for name in ("naive", "ours")
            if name in rows.get(key, {})]


def tables(result: dict[str, Any]) -> None:
    rows = []
    for key, name, r in _measured(result):
        load = r["load"]
        errors = ", ".join(f"{k} {v}" for k, v in load["errors"].items()) or "-"
        if not r["ok"]:
            errors = "RELEASE FAILED: " + r["error"].splitlines()[0][:80] + "; " + errors
        elif not r["load_covered_release"]:
            errors = "the load stopped (--seconds) before the release was done; " + errors
        rows.append([f"{key} ({result['changes'][key]})", name, c.failures(load),
                     c.seconds(load["longest_gap_s"]), c.seconds(r["duration_s"]), c.seconds(r["healthy_after_s"]),
                     f"{load['cpu_busy_pct']:.0f}%", errors])
    for name, load in result["baseline"].items():
        rows.append(["no release (noise floor)", name, c.failures(load),
                     c.seconds(load["longest_gap_s"]), "-", "-", f"{load['cpu_busy_pct']:.0f}%", "-"])
    c.show(f"(a) gateway /health under {result['rate']:g} req/s during a one-service release",
           ["change", "way", "failed/scheduled", "longest gap", "duration", "all healthy", "cpu busy",
            "errors"], rows)
    cells: dict[str, dict[str, str]] = {"agent": {}, "gateway": {}}
    for key, name, r in _measured(result):
        count = f"{len(r['recreated'])}/{r['containers']}"
        listed = 0 < len(r["recreated"]) < r["containers"]
        cells[key][name] = f"{count} ({', '.join(r['recreated'])})" if listed else count
    brows = [[f"{key} ({result['changes'][key]})", cells[key].get("naive", "-"), cells[key].get("ours", "-")]
             for key in ("agent", "gateway")]
    c.show("(b) containers recreated for a one-service change", ["change", "naive", "ours"], brows)
