"""(c) requests failed while the load balancer flips green → blue and back, under the same load.

The data tier (project `data`) and then both colors (their app tier, reaching it over the stand-in's data network)
first get a validated release with `python -m ops.ship --tier` and its default local checks (port prefix and the
Prometheus phase), on the stand-in's own host root. The load goes through haproxy on
127.0.0.1:LB_PORT; each flip is `bash scripts/local-env.sh flip <color>`. Which color answered is counted from
haproxy's own per-server counters (`stot` of `show stat`), and from an X-Served-By header when there is one.
Afterwards each color is put back on the release it ran before (`hostagent rollback --to`), so the local stacks'
records of what their hosts run stay true.
"""

from __future__ import annotations

import time
from typing import Any

from bench import common as c
from bench.load import Load
from standin import lbctl, localenv

COLORS = lbctl.COLORS
LEAD_S, HOLD_S, TAIL_S = 1.0, 2.0, 1.0


def _served(env: localenv.LocalEnv) -> dict[str, int]:
    stat = lbctl.parse_stat(lbctl.runtime(env.lb_socket, lbctl.SHOW_STAT))
    return {color: int(stat.get(color, {}).get("stot") or 0) for color in COLORS}


def _live(env: localenv.LocalEnv) -> list[str]:
    return lbctl.serving(env.lb_socket)


def _flip(color: str) -> float:
    return c.timed(["bash", str(c.ROOT / "scripts" / "local-env.sh"), "flip", color], 120, f"flip to {color}")


def run(base: dict[str, Any], run_id: str, rate: float, max_seconds: float, quiet_s: float) -> dict[str, Any]:
    """(c), then each color back on the release it ran before: the local stacks record what their hosts run, and
    the bench must not leave them running a release of its own."""
    env = localenv.load()
    before = {color: c.current_release(env, color) for color in COLORS}
    try:
        return _measure(env, base, run_id, rate=rate, max_seconds=max_seconds, quiet_s=quiet_s)
    finally:
        missed = c.put_back(env, before, "(c)")
        if missed:
            raise c.BenchError("(c) " + "; ".join(missed))


def _measure(env: localenv.LocalEnv, base: dict[str, Any], run_id: str, *, rate: float, max_seconds: float,
             quiet_s: float) -> dict[str, Any]:
    ships = {}
    for project, tier in (("data", "data"), *((color, "app") for color in COLORS)):
        c.say(f"(c) validated release on {project} ({tier} tier; ops.ship with the local checks)")
        wall, out = c.ship(c.renamed(base, f"bench-{run_id}-flip"), project, host_root=None, env={},
                           local_checks=True, tier=tier)
        if "validation passed" not in out:
            raise c.BenchError(f"(c) ops.ship to {project} printed no 'validation passed':\n{c.tail(out)}")
        ships[project] = wall
    live = _live(env)
    if len(live) != 1:
        raise c.BenchError(f"(c) expected one live color behind the load balancer, found {live or 'none'}")
    start = live[0]
    machine = c.await_quiet(quiet_s)
    other = COLORS[1 - COLORS.index(start)]
    c.say(f"(c) flip {start} → {other} → {start} through {env.lb_url} under {rate:g} req/s")
    before = _served(env)
    flips: dict[str, float] = {}
    live_after: dict[str, list[str]] = {}
    with Load(f"{env.lb_url}/health", rate, max_seconds) as load:
        time.sleep(LEAD_S)
        for step, color in (("first", other), ("back", start)):
            load.mark(f"flip_{step}_start")
            flips[f"{start if step == 'first' else other}→{color}"] = _flip(color)
            load.mark(f"flip_{step}_done")
            live_after[color] = _live(env)
            time.sleep(HOLD_S if step == "first" else TAIL_S)
    result = load.result().to_json()
    after = _served(env)
    for color, seen in live_after.items():
        if seen != [color]:
            raise c.BenchError(f"(c) after flipping to {color}, haproxy's live color is {seen}")
    return {"rate": rate, "lb": env.lb_url, "start": start, "machine_before": machine, "ship_s": ships,
            "flip_s": flips, "load": result,
            "served_by_color": {k: after[k] - before[k] for k in COLORS}}


def tables(result: dict[str, Any]) -> None:
    load = result["load"]
    errors = ", ".join(f"{k} {v}" for k, v in load["errors"].items()) or "-"
    served = ", ".join(f"{k} {v}" for k, v in result["served_by_color"].items())
    flips = ", ".join(f"{k} {v:.1f} s" for k, v in result["flip_s"].items())
    c.show(f"(c) blue/green flip through {result['lb']} under {result['rate']:g} req/s (goal: 0 failed)",
           ["failed/scheduled", "longest gap", "flips", "answered per color (haproxy)", "cpu busy", "errors"],
           [[c.failures(load), c.seconds(load["longest_gap_s"]), flips, served, f"{load['cpu_busy_pct']:.0f}%",
             errors]])
