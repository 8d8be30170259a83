"""Side-by-side measurements of the release tooling against the naive way, in one run, on the local stand-in.

    python -m bench            # everything, about 15 minutes on 2 cores ((e) 11 of them); `make bench` starts the
                               # stand-in first
    python -m bench --only d   # one measurement: a, b (a and b come from the same releases), c, d or e

  (a) gateway /health under load during a one-service release: failed requests, longest gap, duration
      naive: docker compose down --remove-orphans → pull → up -d     ours: ops.ship → hostagent apply
  (b) containers recreated by that one-service change (out of 9)
  (c) failed requests through the load balancer while it flips green → blue → green
  (d) wall time of python -m agent.validate vs a serial curl script, against servers with 200 ms latency
      (per answer, and as a network round trip where a new connection costs one more)
  (e) three releases (good; bad under traffic only; failing validation) under MCP tool calls through haproxy:
      failed requests, time to detect, time to revert, duration
      naive: pulumi up --stack local into the live color in place   ours: python -m ops.cli release --stack local
      (needs the Pulumi toolchain and the BuildKit builder: make pulumi-toolchain builder)

Each table is printed when its measurement ends, then a summary; everything goes to reports/bench.json.
Loads are open-loop (a fixed schedule of --rate requests per second) and stop by themselves after --seconds;
(e) caps the rate at 20 tool calls per second and bounds each of its loads at 15 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import common as c
from bench import flip, release_flow, release_flow_table, releases, summary, validator

MEASURES = ("a", "b", "c", "d", "e")


def bounded(kind: type, low: float, high: float) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text}: must be between {low:g} and {high:g}")
        return value

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=MEASURES, help="run one measurement (a and b share their releases)")
    p.add_argument("--rate", type=bounded(float, 1, 1000), default=200.0,
                   help="requests per second of every load (default 200, at most 1000; (e) at most 20)")
    p.add_argument("--seconds", type=bounded(float, 5, 300), default=120.0,
                   help="longest any one load may run, in seconds; it stops sooner when its release is done "
                        "(default 120, at most 300)")
    p.add_argument("--repeat", type=bounded(int, 1, 10), default=3, help="(d) runs of each way (default 3)")
    p.add_argument("--delay-ms", type=bounded(float, 0, 2000), default=200.0,
                   help="(d) latency of the loopback servers, per answer and as a network round trip (default 200)")
    p.add_argument("--quiet-wait", type=bounded(float, 0, 600), default=30.0, metavar="SECONDS",
                   help="before each measurement, wait at most this long for the machine's CPU to be under 75%% "
                        "busy (default 30; how busy it was is recorded either way)")
    p.add_argument("--json", type=Path, default=c.ROOT / "reports" / "bench.json",
                   help="results file (default reports/bench.json; results of other measurements in it are kept)")
    return p.parse_args(argv)


def machine() -> dict[str, Any]:
    def out(argv: list[str]) -> str:
        try:
            return c.run(argv, 30, " ".join(argv), check=False).stdout.strip()
        except c.BenchError:
            return "?"

    return {"cores": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
            "docker": out(["docker", "version", "--format", "{{.Server.Version}}"]),
            "compose": out(["docker", "compose", "version", "--short"])}


def require_stand_in() -> None:
    proc = c.run(["bash", str(c.ROOT / "scripts" / "local-env.sh"), "status"], 60, "local-env status", check=False)
    if proc.returncode != 0:
        raise c.BenchError(f"the local stand-in is not fully up (start it with `make env`):\n{proc.stdout}")


def load_previous(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = [args.only] if args.only else list(MEASURES)
    run_id = time.strftime("%Y%m%d%H%M%S")
    previous = load_previous(args.json)
    results: dict[str, Any] = dict(previous.get("results", {}))
    errors: dict[str, str] = {}
    stamp = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run": run_id}
    settings = {"rate": args.rate, "seconds": args.seconds, "repeat": args.repeat, "delay_ms": args.delay_ms,
                "quiet_wait": args.quiet_wait}
    c.STATE.mkdir(parents=True, exist_ok=True)
    c.STATE.chmod(0o700)  # under world-writable /var/tmp: the bench's host root and pins are ours alone
    t0 = time.monotonic()
    base: dict[str, Any] | None = None
    try:
        if {"a", "b", "c"} & set(wanted):
            require_stand_in()
            c.say("building the base release once (docker's cache makes unchanged images quick)")
            base = c.build("bench-base")
    except c.BenchError as exc:
        errors["setup"] = str(exc)
    def attempt(key: str, measure: Callable[[], dict[str, Any]], show: Callable[[dict[str, Any]], None]) -> None:
        """Run one measurement; on failure keep what it measured (with the error), never an older result."""
        try:
            results[key] = {**measure(), **stamp}
        except c.BenchError as exc:
            errors[key] = str(exc)
            results.pop(key, None)
            if exc.partial:
                results[key] = {**exc.partial, **stamp, "error": str(exc)}
        if key in results:
            show(results[key])

    if base is not None and {"a", "b"} & set(wanted):
        attempt("ab", lambda: releases.run(base, run_id, args.rate, args.seconds, args.quiet_wait), releases.tables)
    if base is not None and "c" in wanted:
        attempt("c", lambda: flip.run(base, run_id, args.rate, args.seconds, args.quiet_wait), flip.tables)
    if "d" in wanted:
        attempt("d", lambda: validator.run(args.delay_ms / 1000, args.repeat, args.quiet_wait), validator.tables)
    if "e" in wanted:
        try:
            require_stand_in()
        except c.BenchError as exc:
            errors["e"] = str(exc)
        else:
            attempt("e", lambda: release_flow.run(args.rate, args.quiet_wait), release_flow_table.tables)
    rows = summary.rows(results)
    c.show("summary", ["measure", "naive", "ours", "ratio / goal"], rows)
    for key, message in errors.items():
        print(f"FAILED {key}: {message}", file=sys.stderr)
    document = {"machine": machine(), "settings": settings, "last_run": {**stamp, "only": args.only,
                "seconds": round(time.monotonic() - t0, 1), "errors": errors},
                "results": results, "summary": [dict(zip(["measure", "naive", "ours", "ratio_goal"], r, strict=True))
                                                for r in rows]}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    partial = args.json.with_name(args.json.name + ".partial")
    partial.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    partial.replace(args.json)
    c.say(f"results in {args.json} ({time.monotonic() - t0:.0f}s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
