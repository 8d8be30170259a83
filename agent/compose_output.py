"""Reading what docker compose prints (pure, standard library only)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


PROGRESS = re.compile(r"^\s*(Container|Network|Volume|Image)\s+\S+\s+(Creat|Start|Stopp|Remov|Recreat|Running|"
                      r"Healthy|Waiting|Pull|Skipped|Exists)")


def compose_error(stderr: str, lines: int = 8) -> str:
    """Compose's stderr without its progress lines ("Container x  Healthy"): what actually went wrong."""
    kept = [line.strip() for line in stderr.splitlines() if line.strip() and not PROGRESS.match(line)]
    return "\n".join(kept[-lines:]) or tail(stderr, lines)


# What the engine says while it is down or still restoring containers after a restart (restart policies race
# compose for the same container: containerd still holds its task, or its shim's directory). All pass once the
# engine has settled.
ENGINE_SETTLING = re.compile(r"Cannot connect to the Docker daemon|task [0-9a-f]{12,64}: already exists"
                             r"|failed to start shim: mkdir \S+/[0-9a-f]{12,64}: file exists")


def engine_settling(reason: str) -> bool:
    """True when a failed compose command failed only because the engine was down or settling."""
    return ENGINE_SETTLING.search(reason) is not None


def image_groups(resolved: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """The distinct images of a resolved compose config, each with the services that run it (sorted). Empty when
    a service names no image (compose would build or name it): such a config is pulled as a whole."""
    services = resolved.get("services")
    if not isinstance(services, Mapping):
        return {}
    groups: dict[str, list[str]] = {}
    for name, service in services.items():
        image = service.get("image") if isinstance(service, Mapping) else None
        if not isinstance(image, str) or not image:
            return {}
        groups.setdefault(image, []).append(str(name))
    return {image: tuple(sorted(names)) for image, names in groups.items()}


def parse_ps(output: str) -> list[dict[str, Any]]:
    """`docker compose ps --format json` prints one object per line (older versions: one JSON array)."""
    text = output.strip()
    if not text:
        return []
    if text.startswith("["):
        rows: list[dict[str, Any]] = json.loads(text)
        return rows
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def unhealthy_services(rows: Sequence[dict[str, Any]]) -> list[str]:
    bad = {
        str(r.get("Service"))
        for r in rows
        if r.get("State") != "running" or r.get("Health") not in ("", "healthy", None)
    }
    return sorted(bad)

