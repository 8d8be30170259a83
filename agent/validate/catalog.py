"""The service catalog: which services are checked and how, read from the resolved compose file.

The compose file declares checks as `devtools.*` labels (its header comment is the contract). This module turns
the JSON of `docker compose config --format json` into frozen dataclasses. Standard library only: it is copied
to each host and imported by the host agent.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ROLE = "devtools.role"
HEALTH = "devtools.check.health"
MCP = "devtools.check.mcp"
MCP_MIN_TOOLS = "devtools.check.mcp.min-tools"
MCP_PROTOCOL = "devtools.check.mcp.protocol"
E2E = "devtools.check.e2e"
E2E_EXPECT = "devtools.check.e2e.expect"
E2E_BODY = "devtools.check.e2e.body"
METRICS = "devtools.metrics"
TIER = "devtools.tier"  # app (default) | data: the data tier runs once per environment, never in a color
DATA_URL_ENV = "devtools.data.url-env"  # a data service: the variable that gives the colors its address
MIGRATE = "devtools.migrate"  # a data service: entrypoint args of a one-shot run before its new version starts
CHECK_LABELS = (HEALTH, MCP, MCP_MIN_TOOLS, MCP_PROTOCOL, E2E, E2E_EXPECT, E2E_BODY)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
DEFAULT_MIN_TOOLS = 1
# How phase 2 speaks MCP: "per-request" is revision 2026-07-28 (one self-contained POST, no session),
# "handshake" the initialize handshake of the revisions before it, "auto" the first and then the second.
MCP_PROTOCOLS = ("auto", "per-request", "handshake")
DEFAULT_BODY = "{}"

_HEALTH = re.compile(r"^([0-9]{1,5})(/\S*)$")
_E2E = re.compile(r"^([A-Z]+) (/\S*)$")
_PATH = re.compile(r"^/\S*$")


class CatalogError(ValueError):
    """The resolved compose file does not describe a checkable application."""


@dataclass(frozen=True)
class Health:
    container_port: int
    path: str
    host_port: int
    host_ip: str


@dataclass(frozen=True)
class Mcp:
    path: str
    min_tools: int
    protocol: str = "auto"


@dataclass(frozen=True)
class E2e:
    method: str
    path: str
    expect: str
    body: str = DEFAULT_BODY


@dataclass(frozen=True)
class Service:
    name: str
    role: str
    health: Health
    mcp: Mcp | None = None
    e2e: E2e | None = None
    metrics: str | None = None


@dataclass(frozen=True)
class Catalog:
    project: str
    services: tuple[Service, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.services)

    @property
    def mcp_services(self) -> tuple[Service, ...]:
        return tuple(s for s in self.services if s.mcp is not None)

    @property
    def e2e_services(self) -> tuple[Service, ...]:
        return tuple(s for s in self.services if s.e2e is not None)

    @property
    def metrics_services(self) -> tuple[Service, ...]:
        return tuple(s for s in self.services if s.metrics is not None)

    def service(self, name: str) -> Service:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(f"no checked service {name!r}: checked are {', '.join(self.names)}")


def _fail(service: str, label: str, value: str, must: str) -> CatalogError:
    return CatalogError(f"service {service}: label {label} {json.dumps(value)} must be {must}")


def _published(service: str, port: int, ports: Any) -> tuple[int, str]:
    for entry in ports if isinstance(ports, list) else []:
        if not isinstance(entry, Mapping) or str(entry.get("target", "")) != str(port):
            continue
        published = str(entry.get("published") or "")
        if not published.isdigit() or not 0 < int(published) < 65536:
            raise CatalogError(
                f"service {service}: port {port} is published as {published!r}: the validator needs one fixed host port"
            )
        return int(published), str(entry.get("host_ip") or "")
    raise CatalogError(
        f"service {service}: label {HEALTH} names container port {port}, which is not published: "
        f'add "127.0.0.1:<host port>:{port}" to its ports'
    )


def parse_health_label(value: str) -> tuple[int, str] | None:
    """`devtools.check.health: "8000/health"` → (8000, "/health"); None when it is not "<container port><path>"."""
    match = _HEALTH.match(value)
    if match is None or not 0 < int(match.group(1)) < 65536:
        return None
    return int(match.group(1)), match.group(2)


def _health(name: str, value: str, ports: Any) -> Health:
    parsed = parse_health_label(value)
    if parsed is None:
        raise _fail(name, HEALTH, value, '"<container port><path>", e.g. "8000/health"')
    port, path = parsed
    host_port, host_ip = _published(name, port, ports)
    return Health(container_port=port, path=path, host_port=host_port, host_ip=host_ip)


def _refused_without(name: str, labels: Mapping[str, str], main: str, dependents: Sequence[str], what: str) -> None:
    """A label that refines `main` is an error when `main` is missing: it would be silently ignored."""
    for dependent in dependents:
        if dependent in labels:
            raise CatalogError(f"service {name}: label {dependent} needs {main} ({what})")


def _mcp(name: str, labels: Mapping[str, str]) -> Mcp | None:
    if MCP not in labels:
        _refused_without(name, labels, MCP, (MCP_MIN_TOOLS, MCP_PROTOCOL), "the MCP endpoint path")
        return None
    path = labels[MCP]
    if _PATH.match(path) is None:
        raise _fail(name, MCP, path, '"<path>", e.g. "/mcp"')
    raw = labels.get(MCP_MIN_TOOLS, str(DEFAULT_MIN_TOOLS))
    if not raw.isdigit():
        raise _fail(name, MCP_MIN_TOOLS, raw, 'a whole number of tools, e.g. "6"')
    protocol = labels.get(MCP_PROTOCOL, MCP_PROTOCOLS[0])
    if protocol not in MCP_PROTOCOLS:
        raise _fail(name, MCP_PROTOCOL, protocol, f"one of {', '.join(MCP_PROTOCOLS)}")
    return Mcp(path=path, min_tools=int(raw), protocol=protocol)


def _e2e(name: str, labels: Mapping[str, str]) -> E2e | None:
    if E2E not in labels:
        _refused_without(name, labels, E2E, (E2E_EXPECT, E2E_BODY), '"<METHOD> <path>"')
        return None
    value = labels[E2E]
    match = _E2E.match(value)
    if match is None:
        raise _fail(name, E2E, value, '"<METHOD> <path>", e.g. "POST /e2e"')
    if match.group(1) not in METHODS:
        raise _fail(name, E2E, value, f'"<METHOD> <path>" with METHOD one of {", ".join(METHODS)}')
    expect = labels.get(E2E_EXPECT, "")
    if not expect:
        raise CatalogError(
            f"service {name}: label {E2E} needs {E2E_EXPECT}: a substring the probe's response must contain"
        )
    body = labels.get(E2E_BODY, DEFAULT_BODY)
    return E2e(method=match.group(1), path=match.group(2), expect=expect, body=body)


def _service(name: str, spec: Mapping[str, Any]) -> Service | None:
    raw_labels = spec.get("labels") or {}
    if not isinstance(raw_labels, Mapping):
        raise CatalogError(f"service {name}: labels must be a mapping in the resolved config")
    labels = {str(k): str(v) for k, v in raw_labels.items()}
    unknown = sorted(k for k in labels if k.startswith("devtools.check.") and k not in CHECK_LABELS)
    if unknown:
        raise CatalogError(f"service {name}: unknown label {unknown[0]}: allowed are {', '.join(CHECK_LABELS)}")
    if HEALTH not in labels:
        _refused_without(name, labels, HEALTH, sorted(CHECK_LABELS), "every checked service has one")
        return None
    metrics = labels.get(METRICS)
    if metrics is not None and _PATH.match(metrics) is None:
        raise _fail(name, METRICS, metrics, '"<path>", e.g. "/metrics"')
    return Service(
        name=name,
        role=labels.get(ROLE, ""),
        health=_health(name, labels[HEALTH], spec.get("ports")),
        mcp=_mcp(name, labels),
        e2e=_e2e(name, labels),
        metrics=metrics,
    )


def load_catalog(resolved: Mapping[str, Any]) -> Catalog:
    """Build the catalog from the JSON printed by `docker compose config --format json`."""
    services = resolved.get("services") if isinstance(resolved, Mapping) else None
    if not isinstance(services, Mapping) or not services:
        raise CatalogError(
            "the resolved compose config has no services: expected the JSON printed by "
            "`docker compose -f docker-compose.yml config --format json`"
        )
    checked = []
    for name in sorted(services):
        spec = services[name]
        if not isinstance(spec, Mapping):
            raise CatalogError(f"service {name}: expected a mapping in the resolved config")
        service = _service(str(name), spec)
        if service is not None:
            checked.append(service)
    return Catalog(project=str(resolved.get("name") or ""), services=tuple(checked))


def compose_config_argv(
    files: Sequence[str],
    env_file: str | None = None,
    project: str | None = None,
    profiles: Sequence[str] = (),
) -> list[str]:
    """The argv of `docker compose ... config --format json` for the given files."""
    if not files:
        raise CatalogError("no compose file given: pass at least one, e.g. compose/docker-compose.yml")
    argv = ["docker", "compose"]
    if project:
        argv += ["--project-name", project]
    for f in files:
        argv += ["--file", str(f)]
    if env_file:
        argv += ["--env-file", str(env_file)]
    for p in profiles:
        argv += ["--profile", p]
    return [*argv, "config", "--format", "json"]


def resolve_compose(
    files: Sequence[str],
    env_file: str | None = None,
    project: str | None = None,
    profiles: Sequence[str] = (),
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Run `docker compose config --format json` and return its parsed output."""
    argv = compose_config_argv(files, env_file, project, profiles)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise CatalogError("docker is not on PATH: install docker with the compose v2 plugin") from exc
    except subprocess.TimeoutExpired as exc:
        raise CatalogError(f"docker compose config did not finish within {timeout:g}s") from exc
    if done.returncode != 0:
        message = done.stderr.strip() or f"exit status {done.returncode}"
        raise CatalogError(f"docker compose config failed: {message}")
    try:
        parsed = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise CatalogError(f"docker compose config printed no JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise CatalogError("docker compose config printed JSON that is not an object")
    return parsed
