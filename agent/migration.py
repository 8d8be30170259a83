"""What a release needs before its containers change, read from its resolved compose config (pure, standard library
only): the docker networks it declares `external: true`, and its data services' one-shot migrations.

External networks are shared between compose projects (the colors reach the data tier over one on a shared
engine); compose refuses to start a project whose external network is missing, so the host agent creates each one
that does not exist yet (agent.steps).

A service labelled `devtools.migrate: "<args>"` has a migration: before the release's containers change, the agent
runs its NEW image once (`docker compose run --rm --no-deps -T <service> <args>`, with the release's own compose
settings) whenever the image differs from the one the current release runs there, or the project has no current
release yet. A migration must be safe to repeat (a retried release runs it again) and must leave data the previous
image still reads: a failed release is restored without running anything backwards.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.validate.catalog import MIGRATE

_NOT_IN_A_NAME = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class Migration:
    service: str
    args: tuple[str, ...]
    image: str  # the new image, as the resolved config names it (repo@sha256:…)
    previous: str | None  # the image the current release runs for the service, None: none

    @property
    def command(self) -> str:
        return shlex.join(self.args)


def _services(resolved: Mapping[str, Any] | None) -> Mapping[str, Any]:
    services = resolved.get("services") if isinstance(resolved, Mapping) else None
    return services if isinstance(services, Mapping) else {}


def external_networks(resolved: Mapping[str, Any]) -> list[str]:
    """The docker names of the networks the resolved config declares external, sorted, each once."""
    networks = resolved.get("networks")
    names: set[str] = set()
    for key, spec in (networks.items() if isinstance(networks, Mapping) else ()):
        if isinstance(spec, Mapping) and spec.get("external") is True:
            names.add(str(spec.get("name") or key))
    return sorted(names)


def migrations(resolved: Mapping[str, Any], current: Mapping[str, Any] | None) -> list[Migration]:
    """The migrations a release runs, in service order: each service with a `devtools.migrate` label whose image is
    not the one it has in `current` (the current release's resolved config; None: the project's first release).
    A label whose arguments cannot be split (an open quote) raises ValueError naming it."""
    before = _services(current)
    out: list[Migration] = []
    for name, spec in sorted(_services(resolved).items()):
        if not isinstance(spec, Mapping):
            continue
        labels = spec.get("labels")
        raw = str(labels.get(MIGRATE, "")) if isinstance(labels, Mapping) else ""
        if not raw.strip():
            continue
        try:
            args = tuple(shlex.split(raw))
        except ValueError as exc:
            raise ValueError(f"service {name}: label {MIGRATE} {raw!r} cannot be split into arguments: {exc}") from exc
        image = str(spec.get("image") or "")
        old = before.get(name)
        previous = None
        if isinstance(old, Mapping) and old.get("image"):
            previous = str(old["image"])
        if current is not None and previous == image:
            continue
        out.append(Migration(service=str(name), args=args, image=image, previous=previous))
    return out


def container_name(project: str, service: str, job: str) -> str:
    """The one-shot container's name: the project's, the service's and the job's (unique per job and service)."""
    return _NOT_IN_A_NAME.sub("-", f"{project}-migrate-{service}-{job}")
