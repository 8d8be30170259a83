"""A week of the metrics the stability targets read, as OpenMetrics text with timestamps, for `promtool tsdb
create-blocks-from openmetrics` to backfill into a real Prometheus's data directory (then started on it).

One sample every STEP_S seconds up to `end`, counters counting from 0:
* http_requests_total: gateway-mcp 100 answers a step, 1 of 400 a 5xx (0.25 %: met); api 50 a step, 1 a 5xx
  (2 %: missed).
* rollouts: green one every 6 h, the one at day 4 failed at validate (target 100 %: missed); blue one every 12 h,
  never failed (and has no failure series at all: met).
* pulls (histogram): green 3 pulls every 6 h, 2 within 10 s and 1 within 30 s (met); blue 2 every 12 h, one
  within 30 s and one over 60 s (50 % within 60 s: missed).
* trace probes: research one an hour, all traced (met); support one an hour, every fifth untraced (80 %: missed).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

STEP_S = 300
DAYS = 7
BUCKETS = ("0.5", "1", "2.5", "5", "10", "20", "30", "60", "120", "300", "+Inf")
PROMTOOL = Path("/usr/bin/promtool")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def openmetrics(end: int) -> str:
    start = end - DAYS * 86400 - 3600
    times = range(start - start % STEP_S, end, STEP_S)
    families: dict[str, list[str]] = {"http_requests": [], "devtools_rollouts": [], "devtools_rollout_failures": [],
                                      "devtools_image_pull_duration_seconds": [], "devtools_trace_probes": [],
                                      "devtools_trace_probes_traced": []}
    req = {("gateway-mcp", "200"): 0.0, ("gateway-mcp", "500"): 0.0, ("api", "200"): 0.0, ("api", "500"): 0.0}
    rollouts = {"green": 0, "blue": 0}
    failures = 0
    pulls = {p: dict.fromkeys(BUCKETS, 0) for p in ("green", "blue")}
    pull_sum = {"green": 0.0, "blue": 0.0}
    probes = {"research": 0, "support": 0}
    traced = {"research": 0, "support": 0}
    for n, t in enumerate(times):
        req["gateway-mcp", "200"] += 99.75
        req["gateway-mcp", "500"] += 0.25
        req["api", "200"] += 49
        req["api", "500"] += 1
        for (service, code), v in req.items():
            families["http_requests"].append(f"http_requests_total{_labels(service=service, code=code)} {v:g} {t}")
        hour = n * STEP_S // 3600
        if n % (6 * 3600 // STEP_S) == 0:
            rollouts["green"] += 1
            failures += 1 if n * STEP_S // 86400 == 4 and failures == 0 else 0
            for le in BUCKETS:
                pulls["green"][le] += 3 if float(le) >= 30 else 2 if float(le) >= 10 else 0
            pull_sum["green"] += 8 + 9 + 25
        if n % (12 * 3600 // STEP_S) == 0:
            rollouts["blue"] += 1
            for le in BUCKETS:
                pulls["blue"][le] += 2 if float(le) >= 120 else 1 if float(le) >= 30 else 0
            pull_sum["blue"] += 20 + 90
        if n % (3600 // STEP_S) == 0:
            probes["research"] += 1
            traced["research"] += 1
            probes["support"] += 1
            traced["support"] += 0 if hour % 5 == 0 else 1
        for project, v in rollouts.items():
            families["devtools_rollouts"].append(f"devtools_rollouts_total{_labels(project=project)} {v} {t}")
        families["devtools_rollout_failures"].append(
            f"devtools_rollout_failures_total{_labels(project='green', stage='validate')} {failures} {t}")
        for project, counts in pulls.items():
            name = "devtools_image_pull_duration_seconds"
            families[name] += [f"{name}_bucket{_labels(project=project, le=le)} {c} {t}" for le, c in counts.items()]
            families[name] += [f"{name}_count{_labels(project=project)} {counts['+Inf']} {t}",
                               f"{name}_sum{_labels(project=project)} {pull_sum[project]:g} {t}"]
        for agent, probed in probes.items():
            families["devtools_trace_probes"].append(
                f"devtools_trace_probes_total{_labels(project='green', agent=agent)} {probed} {t}")
            families["devtools_trace_probes_traced"].append(
                f"devtools_trace_probes_traced_total{_labels(project='green', agent=agent)} {traced[agent]} {t}")
    out = []
    for family, lines in families.items():
        kind = "histogram" if family.endswith("_seconds") else "counter"
        out += [f"# TYPE {family} {kind}", *lines]
    return "\n".join([*out, "# EOF"]) + "\n"


def backfill(data_dir: Path, end: int, work: Path) -> None:
    """The week up to `end` as TSDB blocks in data_dir (a Prometheus started on it serves them)."""
    source = work / "week.om"
    source.write_text(openmetrics(end))
    proc = subprocess.run([str(PROMTOOL), "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=24h",
                           str(source), str(data_dir)], capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"promtool backfill failed: {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
