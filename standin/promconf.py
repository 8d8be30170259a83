"""Prometheus config for the local stand-in: both colors' services, scraped on loopback.

Standard library only. Service <i> of a color publishes 127.0.0.1:<prefix><i:02d> (compose/docker-compose.yml).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# In the order of their published ports: gateway-mcp is <prefix>00, state-persistence <prefix>08.
SERVICES = (
    "gateway-mcp",
    "orchestrator",
    "feature-dev",
    "code-review",
    "infrastructure",
    "cicd",
    "documentation",
    "rag-context",
    "state-persistence",
)


def render(prefixes: dict[str, str], *, interval: str = "2s", host: str = "127.0.0.1") -> str:
    """One static target group per (color, service), labelled with both."""
    lines = [
        "# Rendered by `python -m standin.promconf`: every service of both colors on loopback.",
        "global:",
        f"  scrape_interval: {interval}",
        f"  scrape_timeout: {interval}",
        f"  evaluation_interval: {interval}",
        "scrape_configs:",
        "  - job_name: devtools",
        "    metrics_path: /metrics",
        "    static_configs:",
    ]
    for color, prefix in prefixes.items():
        if not (len(prefix) == 2 and prefix.isdigit()):
            raise ValueError(f"port prefix of {color} must be two digits, not {prefix!r}")
        for i, service in enumerate(SERVICES):
            lines.append(f'      - targets: ["{host}:{prefix}{i:02d}"]')
            lines.append(f"        labels: {{color: {color}, service: {service}}}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m standin.promconf", description=__doc__.splitlines()[0])
    p.add_argument("--green-prefix", required=True, help="two-digit port prefix of green, e.g. 81")
    p.add_argument("--blue-prefix", required=True, help="two-digit port prefix of blue, e.g. 82")
    p.add_argument("--interval", default="2s")
    p.add_argument("--output", type=Path)
    a = p.parse_args(argv)
    try:
        text = render({"green": a.green_prefix, "blue": a.blue_prefix}, interval=a.interval)
    except ValueError as exc:
        print(f"promconf: {exc}", file=sys.stderr)
        return 1
    if a.output:
        a.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
