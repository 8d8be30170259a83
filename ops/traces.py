"""Trace coverage per agent from the laptop or CI, with Langfuse's official Python client: the measurement the host
validator's trace phase makes (agent/validate/traces.py), over any window.

    python -m ops.cli traces [--since 1h] [--agents a,b] [--min 0.9] [--json]

Keys and address from the environment: LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY, LANGFUSE_HOST (never argv).
For each agent: does Langfuse hold a trace tagged `devtools-e2e` and `agent:<agent>`, named `e2e-probe`, since the
window began? Exit 0 at or above the minimum, 1 below it, 2 for missing or refused keys and bad arguments.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose" / "docker-compose.yml"
TAG, TRACE_NAME = "devtools-e2e", "e2e-probe"
PUBLIC, SECRET, HOST = "LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LANGFUSE_HOST"
E2E_LABEL = "devtools.check.e2e"
DEFAULT_MIN = 0.9
_SPAN = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
EXIT_OK, EXIT_BELOW, EXIT_INPUT = 0, 1, 2


class TracesError(Exception):
    """Keys missing or refused, or an argument that cannot be used: the message names the key, never a value."""


def parse_since(text: str) -> timedelta:
    match = _SPAN.match(text.strip())
    if not match or int(match[1]) == 0:
        raise TracesError(f"--since {text!r}: give a span such as 30m, 1h or 7d")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def compose_agents(compose: Path = COMPOSE) -> list[str]:
    """The services whose end-to-end probe the validator runs (a `devtools.check.e2e` label)."""
    services = (yaml.safe_load(compose.read_text()) or {}).get("services") or {}
    return sorted(name for name, svc in services.items() if E2E_LABEL in ((svc or {}).get("labels") or {}))


def keys_from(environ: Mapping[str, str]) -> tuple[str, str, str]:
    missing = [k for k in (PUBLIC, SECRET, HOST) if not environ.get(k)]
    if missing:
        raise TracesError(f"{' and '.join(missing)} not set in the environment")
    return environ[PUBLIC], environ[SECRET], environ[HOST]


def measure(client: Any, agents: Sequence[str], since: datetime) -> dict[str, bool]:
    """agent → whether Langfuse holds its probe's trace since `since` (client: `langfuse.Langfuse`)."""
    from langfuse.api.commons.errors import AccessDeniedError, UnauthorizedError  # noqa: PLC0415

    found: dict[str, bool] = {}
    for agent in agents:
        try:
            page = client.api.trace.list(tags=[TAG, f"agent:{agent}"], name=TRACE_NAME, from_timestamp=since,
                                         limit=1, page=1)
        except (UnauthorizedError, AccessDeniedError) as exc:
            raise TracesError(f"Langfuse refused the keys (HTTP {exc.status_code}): check {PUBLIC} and "
                              f"{SECRET}") from None
        found[agent] = bool(page.data)
    return found


def summary(found: Mapping[str, bool], minimum: float, host: str, since: datetime) -> dict[str, Any]:
    """The report's shape (the validator's `traces` section) plus the window's start."""
    coverage = round(sum(found.values()) / len(found), 4) if found else 1.0
    return {"agents": dict(sorted(found.items())), "coverage": coverage, "min": minimum, "host": host,
            "since": since.strftime("%Y-%m-%dT%H:%M:%SZ")}


def render(result: Mapping[str, Any]) -> str:
    width = max([len("AGENT"), *(len(a) for a in result["agents"])])
    lines = [f"{'AGENT'.ljust(width)}  TRACE"]
    lines += [f"{a.ljust(width)}  {'yes' if seen else 'NONE'}" for a, seen in result["agents"].items()]
    count, total = sum(result["agents"].values()), len(result["agents"])
    verdict = "ok" if result["coverage"] >= result["min"] else "BELOW THE MINIMUM"
    lines.append(f"trace coverage {result['coverage']:g} ({count} of {total} agents since {result['since']}, "
                 f"minimum {result['min']:g}): {verdict}")
    return "\n".join(lines) + "\n"


def add_parser(sub: Any) -> None:
    s = sub.add_parser("traces", help="trace coverage per agent in Langfuse (keys: LANGFUSE_PUBLIC_KEY, "
                                      "LANGFUSE_SECRET_KEY, LANGFUSE_HOST)")
    s.add_argument("--since", default="1h", help="the window, back from now: 30m, 1h, 7d (default 1h)")
    s.add_argument("--agents", help="comma-separated agents (default: the compose file's probed services)")
    s.add_argument("--min", type=float, default=DEFAULT_MIN, help=f"lowest coverage (default {DEFAULT_MIN})")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace, environ: Mapping[str, str], client: Any = None) -> int:
    try:
        if not 0 <= args.min <= 1:
            raise TracesError(f"--min {args.min:g}: give a ratio between 0 and 1, e.g. 0.9")
        since = datetime.now(UTC) - parse_since(args.since)
        agents = [a for a in (args.agents or "").split(",") if a] or compose_agents()
        public, secret, host = keys_from(environ)
        if client is None:
            from langfuse import Langfuse  # noqa: PLC0415 - the client only where it is used

            client = Langfuse(public_key=public, secret_key=secret, host=host, tracing_enabled=False)
        result = summary(measure(client, agents, since), args.min, host, since)
    except TracesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    sys.stdout.write(json.dumps(result, indent=2) + "\n" if args.json else render(result))
    return EXIT_OK if result["coverage"] >= args.min else EXIT_BELOW
