"""Prometheus config for the local stand-in: both colors' app-tier services and the data tier's services, scraped on
loopback.

Standard library only. The services are those compose/docker-compose.yml runs from a release pin, in file
order; service <i> publishes 127.0.0.1:<prefix><i:02d> (the compose file's ports). The colors (green 81xx, blue
82xx) run the app tier, every service without `devtools.tier: data`; the data tier runs once, as compose project
`data` with its own prefix (83xx), and its targets carry the label color="data" (the validator's selector for it).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

COMPOSE_FILE = Path(__file__).resolve().parent.parent / "compose" / "docker-compose.yml"
_TOP_KEY = re.compile(r"^(?P<key>[^\s#][^:]*):")
_SERVICE = re.compile(r"^  (?P<name>[A-Za-z0-9][A-Za-z0-9._-]*):")
_PINNED_IMAGE = re.compile(r"^    image: *\$\{[A-Za-z_][A-Za-z0-9_]*:\?")
_DATA_TIER = re.compile(r"^ {4,}.*\bdevtools\.tier: *[\"']?data[\"']? *(?:[,}]|$)")
DATA_COLOR = "data"


def compose_services(text: str) -> tuple[str, ...]:
    """The services of a compose file whose image is a release pin (`image: ${<KEY>:?…}`), in file order.

    The Pulumi program reads the same list with a YAML parser (components.catalog); the stand-in has the
    system python only, so this reads the compose file's own layout: service keys indented by two spaces
    under `services:`, their `image:` by four.
    """
    return _services_with(text, lambda line: bool(_PINNED_IMAGE.match(line)))


def _services_with(text: str, marks: Callable[[str], bool]) -> tuple[str, ...]:
    """The services (keys indented by two under `services:`) one of whose lines `marks`, in file order."""
    services: list[str] = []
    inside, current = False, None
    for line in text.splitlines():
        top = _TOP_KEY.match(line)
        if top:
            inside, current = top["key"] == "services", None
            continue
        service = _SERVICE.match(line) if inside else None
        if service:
            current = service["name"]
        elif current and marks(line):
            services.append(current)
            current = None
    return tuple(services)


def data_tier(text: str) -> tuple[str, ...]:
    """The services of a compose file labelled `devtools.tier: data`, in file order (the layout compose_services
    reads: the label's line indented under its service; the program reads the same with components.tiers)."""
    # a comment is no label
    return _services_with(text, lambda line: bool(_DATA_TIER.match(line.split("#", 1)[0].rstrip())))


def render(prefixes: dict[str, str], services: Sequence[str], *, data: Sequence[str] = (),
           data_prefix: str | None = None, interval: str = "2s", host: str = "127.0.0.1",
           node_port: int | None = None) -> str:
    """One static target group per (color, app-tier service) and per data service (color "data", at `data_prefix`;
    none without it), labelled with both; `services` in compose file order, `data` the data tier's among them.
    `node_port`: the job `node`, node_exporter's textfile collector (the host agent's rollout metrics)."""
    groups = [(color, prefix, [(i, s) for i, s in enumerate(services) if s not in data])
              for color, prefix in prefixes.items()]
    if data_prefix is not None:
        groups.append((DATA_COLOR, data_prefix, [(i, s) for i, s in enumerate(services) if s in data]))
    lines = [
        "# Rendered by `python -m standin.promconf`: the colors' app tier and the data tier, on loopback.",
        "global:",
        f"  scrape_interval: {interval}",
        f"  scrape_timeout: {interval}",
        f"  evaluation_interval: {interval}",
        "rule_files: [slo-rules.yml]  # the local stack's SLO rules (python -m components.slo), beside this file",
        "scrape_configs:",
        "  - job_name: devtools",
        "    metrics_path: /metrics",
        "    static_configs:",
    ]
    for color, prefix, targets in groups:
        if not (len(prefix) == 2 and prefix.isdigit()):
            raise ValueError(f"port prefix of {color} must be two digits, not {prefix!r}")
        for i, service in targets:
            lines.append(f'      - targets: ["{host}:{prefix}{i:02d}"]')
            lines.append(f"        labels: {{color: {color}, service: {service}}}")
    if node_port is not None:
        lines += ["  - job_name: node", "    static_configs:", f'      - targets: ["{host}:{node_port}"]']
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m standin.promconf", description=__doc__.splitlines()[0])
    p.add_argument("--green-prefix", required=True, help="two-digit port prefix of green, e.g. 81")
    p.add_argument("--blue-prefix", required=True, help="two-digit port prefix of blue, e.g. 82")
    p.add_argument("--data-prefix", help="two-digit port prefix of the data tier, e.g. 83 (default: not scraped)")
    p.add_argument("--node-port", type=int, help="node_exporter's port on loopback: the job `node` (default: none)")
    p.add_argument("--interval", default="2s")
    p.add_argument("--compose", type=Path, default=COMPOSE_FILE, help="the compose file naming the services")
    p.add_argument("--output", type=Path)
    a = p.parse_args(argv)
    try:
        services = compose_services(a.compose.read_text())
        if not services:
            raise ValueError(f"{a.compose} names no service run from a release pin")
        text = render({"green": a.green_prefix, "blue": a.blue_prefix}, services, data=data_tier(a.compose.read_text()),
                      data_prefix=a.data_prefix, interval=a.interval, node_port=a.node_port)
    except (OSError, ValueError) as exc:
        print(f"promconf: {exc}", file=sys.stderr)
        return 1
    if a.output:
        a.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
