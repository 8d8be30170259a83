"""The application's two tiers, read from the one compose file (pure: YAML only).

    text = (ROOT / "compose" / "docker-compose.yml").read_text()
    tiers = read_tiers(text)
    tiers.data                      # ("rag-context", "state-persistence"): `devtools.tier: data`
    tier_compose(text, DATA, network="devtools-data")   # the data tier's compose file, as bytes
    data_release_id(tier_images(tiers, images, DATA), env, compose)   # "data-<12 hex>": from its content alone

The colors (green, blue) run the `app` tier: every service without a `devtools.tier` label. The `data` tier runs
once per environment and never flips: the services that keep data (`devtools.tier: data`). Each tier is released
with its own compose file, written here from the one compose file: the tier's services and the named volumes they
use. When both tiers share one docker engine (the local stand-in, an existing host), they share an external
docker network (`network`), over which the colors reach the data services by name; on droplets the colors reach
the data host's private address, and no network is shared.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from agent.validate.catalog import DATA_URL_ENV, HEALTH, MIGRATE, TIER, parse_health_label
from components.catalog import CatalogError, labels_of

APP, DATA = "app", "data"
TIERS = (APP, DATA)
SHARED_NETWORK = "data"
"""The name the tiers' compose files give the shared network (its docker name is the `network` argument)."""
HEADER = "# Written by components/tiers.py from compose/docker-compose.yml: the {tier} tier. Do not edit.\n"
_PORT = re.compile(r"^(?:\$\{[^}]*\}|[^:$]+):(?P<host>(?:\$\{[^}]*\}|[0-9])+):[0-9]+$")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Plain(yaml.SafeDumper):
    """Writes every shared value out in full (no &id001 anchors): the file reads like the one it came from."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


@dataclass(frozen=True)
class DataService:
    """A data-tier service as the colors see it: the variable that carries its address and its ports."""

    service: str
    url_env: str  # STATE_URL
    container_port: int  # what the colors dial over a shared network
    published: str  # the host port as compose publishes it, e.g. "${HOST_PORT_PREFIX:-80}08"
    migrate: str | None  # entrypoint args of its one-shot migration, None: none


@dataclass(frozen=True)
class Tiers:
    app: tuple[str, ...]
    data: tuple[str, ...]
    data_services: tuple[DataService, ...]

    def of(self, service: str) -> str:
        return DATA if service in self.data else APP


def _document(text: str) -> dict[str, Any]:
    document = yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader (C or Python)
    if not isinstance(document, dict) or not isinstance(document.get("services"), dict):
        raise CatalogError("docker-compose.yml: no `services:` mapping")
    return document


def read_tiers(text: str) -> Tiers:
    """Each service's tier; a data service must name the variable of its address and publish its health port."""
    return _tiers(_document(text))


def _tiers(document: Mapping[str, Any]) -> Tiers:
    """read_tiers of a parsed compose file (tier_compose parses once for both)."""
    services: dict[str, Any] = document["services"]
    app: list[str] = []
    data: list[DataService] = []
    for name, spec in services.items():
        labels = labels_of(spec)
        tier = labels.get(TIER, APP)
        if tier not in TIERS:
            raise CatalogError(f"docker-compose.yml: service {name!r} label {TIER}: {tier!r} is not one of "
                               f"{', '.join(TIERS)}")
        if tier == APP:
            for key in (DATA_URL_ENV, MIGRATE):
                if key in labels:
                    raise CatalogError(f"docker-compose.yml: service {name!r} has {key} but is not "
                                       f"{TIER}: {DATA} (only the data tier has it)")
            app.append(str(name))
            continue
        data.append(_data_service(str(name), spec, labels))
    if not app:
        raise CatalogError(f"docker-compose.yml: every service is {TIER}: {DATA}; the colors would run nothing")
    return Tiers(app=tuple(app), data=tuple(d.service for d in data), data_services=tuple(data))


def _data_service(name: str, spec: Mapping[str, Any], labels: Mapping[str, str]) -> DataService:
    where = f"docker-compose.yml: data service {name!r}"
    url_env = labels.get(DATA_URL_ENV, "")
    if not url_env.isidentifier() or url_env.upper() != url_env:
        raise CatalogError(f"{where} needs {DATA_URL_ENV}: <ENV KEY> (the variable the colors read its address "
                           f"from, such as STATE_URL); got {url_env!r}")
    health = parse_health_label(labels.get(HEALTH, ""))
    if health is None:
        raise CatalogError(f"{where} needs {HEALTH}: \"<container port>/<path>\" (its port is its address)")
    port = health[0]
    published = [p for p in (str(x) for x in spec.get("ports") or ()) if p.endswith(f":{port}")]
    if len(published) != 1:
        raise CatalogError(f"{where} must publish its port {port} once (\"${{DATA_BIND:-127.0.0.1}}:<host port>:"
                           f"{port}\"); found {len(published)}")
    match = _PORT.match(published[0])
    if match is None:
        raise CatalogError(f"{where} port {published[0]!r} must name its bind address, host port and {port}")
    migrate = labels.get(MIGRATE, "").strip() or None
    return DataService(service=name, url_env=url_env, container_port=port, published=match.group("host"),
                       migrate=migrate)


def published_port(template: str, host_port_prefix: str) -> int:
    """The host port of a published template such as "${HOST_PORT_PREFIX:-80}08" with the given prefix."""
    text = template
    start = text.find("${HOST_PORT_PREFIX")
    if start >= 0:
        end = text.index("}", start)
        text = text[:start] + host_port_prefix + text[end + 1:]
    if not text.isdigit():
        raise CatalogError(f"docker-compose.yml: host port {template!r} is not a number once HOST_PORT_PREFIX="
                           f"{host_port_prefix} (only that variable is substituted)")
    return int(text)


def data_env(tiers: Tiers, *, address: str | None, host_port_prefix: str) -> dict[str, str]:
    """What a color's release sets so its services reach the data tier: each data service's url variable.
    address None: a shared docker network (the service's name and container port); else the data host's address
    and the published port."""
    env: dict[str, str] = {}
    for d in tiers.data_services:
        where = (f"{d.service}:{d.container_port}" if address is None
                 else f"{address}:{published_port(d.published, host_port_prefix)}")
        env[d.url_env] = f"http://{where}"
    return env


def tier_compose(text: str, tier: str, *, network: str | None) -> bytes:
    """The compose file of one tier: its services, the named volumes they use, the project name; `network`: the
    docker network both tiers join (external: the host agent creates it when missing), None: no shared network."""
    if tier not in TIERS:
        raise ValueError(f"tier {tier!r} is not one of {', '.join(TIERS)}")
    document = _document(text)
    tiers = _tiers(document)
    keep = tiers.data if tier == DATA else tiers.app
    services = {name: dict(spec) for name, spec in document["services"].items() if name in keep}
    used: set[str] = set()
    for spec in services.values():
        for volume in spec.get("volumes") or ():
            source = str(volume).split(":", 1)[0] if isinstance(volume, str) else str(volume.get("source", ""))
            if source and not source.startswith((".", "/", "$", "~")):
                used.add(source)
        if network is not None:
            spec["networks"] = ["default", SHARED_NETWORK]
    out: dict[str, Any] = {}
    if "name" in document:
        out["name"] = document["name"]
    out["services"] = services
    volumes = {k: v for k, v in (document.get("volumes") or {}).items() if k in used}
    if volumes:
        out["volumes"] = volumes
    if network is not None:
        out["networks"] = {SHARED_NETWORK: {"name": network, "external": True}}
    body = yaml.dump(out, Dumper=_Plain, sort_keys=False, default_flow_style=False, width=120)
    return (HEADER.format(tier=tier) + body).encode()


def tier_images(tiers: Tiers, images: Mapping[str, str], tier: str) -> dict[str, str]:
    """The pins of one tier's services out of a release's images: each tier's release pins what its file runs."""
    keep = tiers.data if tier == DATA else tiers.app
    return {service: ref for service, ref in sorted(images.items()) if service in keep}


DATA_RELEASE_PREFIX = "data-"


def data_release_id(images: Mapping[str, str], env: Mapping[str, str], compose: bytes) -> str:
    """The data tier's release id, `data-<12 hex>` of its content: its pins, its release env and its compose file.
    An app-only release or a flip leaves it as it is; a host refuses one id with two contents, so everything that
    goes into the data release is in its id (agent.release.RELEASE_ID accepts it). The signing policy is not: a host
    checks it at each apply and leaves it out of a release's identity (agent.installs.tree_digest)."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"images": dict(sorted(images.items())), "env": dict(sorted(env.items()))},
                             sort_keys=True).encode())
    digest.update(b"\0" + compose)
    return DATA_RELEASE_PREFIX + digest.hexdigest()[:12]
