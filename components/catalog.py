"""The services of the compose files, as the Pulumi program needs them (pure: file reads and YAML only).

    catalog = load_service_catalog(ROOT / "compose", config.build.app_root)

* `compose/docker-compose.yml` (prod) says which services run from a release pin `${<SERVICE>_IMAGE:?…}` and
  which one is the gateway (label `devtools.role: gateway`, health from `devtools.check.health: "8000/health"`).
  It must carry no `build:` (digest pins only).
* `compose/docker-compose.override.yml` (dev) says how to build them: `build:` context (under `${APP_ROOT:-…}`,
  replaced by the stack's app root), dockerfile and args.

Every error is a CatalogError naming the file and what is wrong in it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from agent.release import DIGEST, image_env_key
from agent.validate.catalog import HEALTH, ROLE, parse_health_label

__all__ = ["DEV_FILE", "PROD_FILE", "BuildSpec", "CatalogError", "ServiceCatalog", "ThirdPartyService",
           "enabled_third_party", "image_repo", "labels_of", "load_service_catalog", "load_third_party"]

PROD_FILE = "docker-compose.yml"
DEV_FILE = "docker-compose.override.yml"
GATEWAY = "gateway"

_VARIABLE = re.compile(r"\$\{[^}]*\}")
_PIN = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*):\?[^}]*\}$")
_APP_ROOT = re.compile(r"\$\{APP_ROOT(?:[:]?[-?][^}]*)?\}")
_DIGEST = re.compile(rf"@{DIGEST.pattern}$")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it: a tenth of the time


class CatalogError(Exception):
    """The compose files do not describe a deployable application; the message names the file and the problem."""


@dataclass(frozen=True)
class BuildSpec:
    """How to build one service's image (from the dev override file's `build:`)."""

    service: str
    context: Path
    dockerfile: Path
    args: tuple[tuple[str, str], ...]


def image_repo(registry: str, prefix: str, service: str) -> str:
    """Where a service's image lives: <registry>/<prefix>/<service>, empty parts left out."""
    return "/".join(p.strip("/") for p in (registry, prefix, service) if p.strip("/"))


@dataclass(frozen=True)
class ServiceCatalog:
    services: tuple[str, ...]  # services run from a release pin, in the prod file's order
    pin_keys: Mapping[str, str]  # service → env key its pin is read from (GATEWAY_MCP_IMAGE)
    builds: Mapping[str, BuildSpec]  # service → how to build it (from the dev file), in `services` order
    gateway: str  # the service labelled devtools.role: gateway
    gateway_health_path: str  # "/health"
    gateway_port: int  # the gateway's container port, 8000


def load_service_catalog(compose_dir: Path, app_root: Path) -> ServiceCatalog:
    """Read both compose files of `compose_dir`; build contexts `${APP_ROOT…}` become `app_root`."""
    prod_path, dev_path = compose_dir / PROD_FILE, compose_dir / DEV_FILE
    prod = _services(prod_path)
    pins = _pins(prod_path, prod)
    gateway, port, path = _gateway(prod_path, prod)
    builds = _builds(dev_path, _services(dev_path), pins, compose_dir.absolute(), app_root.absolute())
    return ServiceCatalog(
        services=tuple(pins), pin_keys=MappingProxyType(dict(pins)),
        builds=MappingProxyType({s: builds[s] for s in pins if s in builds}),
        gateway=gateway, gateway_health_path=path, gateway_port=port,
    )


@dataclass(frozen=True)
class ThirdPartyService:
    """A service the prod file runs from a fixed digest reference instead of a release pin (the `edge` profile's
    Caddy and Prometheus), with the compose profiles that enable it (none: always on)."""

    image: str  # repo[:tag]@sha256:…
    profiles: tuple[str, ...]


def load_third_party(compose_dir: Path) -> dict[str, ThirdPartyService]:
    """Every service of the prod file that is not a release pin, with its digest reference and profiles."""
    path = compose_dir / PROD_FILE
    services = _services(path)
    pins = _pins(path, services)  # also refuses a non-pin image that is not pinned by digest
    return {name: ThirdPartyService(str(spec["image"]), tuple(str(p) for p in spec.get("profiles") or ()))
            for name, spec in services.items() if name not in pins}


def enabled_third_party(services: Mapping[str, ThirdPartyService], compose_profiles: str) -> dict[str, str]:
    """service → image of the third-party services that run with COMPOSE_PROFILES=`compose_profiles` (compose's
    rule: a service without profiles always runs, one with profiles when any of them is enabled)."""
    enabled = {p.strip() for p in compose_profiles.split(",") if p.strip()}
    return {name: s.image for name, s in sorted(services.items()) if not s.profiles or enabled & set(s.profiles)}


def _services(path: Path) -> dict[str, dict[str, Any]]:
    """The `services:` mapping of one compose file (anchors and `<<` merges resolved by the YAML loader)."""
    try:
        document = yaml.load(path.read_text(), Loader=_LOADER)  # noqa: S506 - a safe loader (C or Python)
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML ({_one_line(exc)})") from exc
    services = document.get("services") if isinstance(document, dict) else None
    if not isinstance(services, dict) or not services:
        raise CatalogError(f"{path}: no `services:` mapping")
    for name, spec in services.items():
        if not isinstance(spec, dict):
            raise CatalogError(f"{path}: service {name!r} is not a mapping")
    return {str(name): spec for name, spec in services.items()}


def _pins(path: Path, services: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """service → pin key, for every service whose image is `${KEY:?…}`; other images must be digest refs."""
    pins: dict[str, str] = {}
    for name, spec in services.items():
        if "build" in spec:
            raise CatalogError(f"{path}: service {name!r} has a `build:`; the prod file carries digest pins only "
                               f"(build instructions belong in {DEV_FILE})")
        image = str(spec.get("image") or "")
        match = _PIN.match(image)
        if match:
            if match.group(1) != image_env_key(name):
                raise CatalogError(f"{path}: service {name!r} reads its image from ${{{match.group(1)}}}; the "
                                   f"release writes its pin as {image_env_key(name)}")
            pins[name] = match.group(1)
        elif not image or "${" in image or not _DIGEST.search(image):
            raise CatalogError(f"{path}: service {name!r} image {image!r} is neither a release pin "
                               f"${{{image_env_key(name)}:?…}} nor pinned by digest (…@sha256:<64 hex>)")
    if not pins:
        raise CatalogError(f"{path}: no service runs from a release pin ${{<SERVICE>_IMAGE:?…}}")
    return pins


def labels_of(spec: Mapping[str, Any]) -> dict[str, str]:
    """Compose labels, written as a mapping or as a list of KEY=VALUE."""
    labels = spec.get("labels") or {}
    if isinstance(labels, list):
        return dict(str(item).partition("=")[::2] for item in labels)
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def _gateway(path: Path, services: Mapping[str, Mapping[str, Any]]) -> tuple[str, int, str]:
    """The one service labelled `devtools.role: gateway`, its container port and health path."""
    found = [name for name, spec in services.items() if labels_of(spec).get(ROLE) == GATEWAY]
    if len(found) != 1:
        raise CatalogError(f"{path}: exactly one service must be labelled {ROLE}: {GATEWAY}, found "
                           f"{len(found)}{' (' + ', '.join(found) + ')' if found else ''}")
    name = found[0]
    label = labels_of(services[name]).get(HEALTH)
    parsed = parse_health_label(label or "")
    if parsed is None:
        raise CatalogError(f"{path}: gateway {name!r} label {HEALTH}: {label!r} is not "
                           "\"<container port>/<path>\" such as \"8000/health\"")
    return name, *parsed


def _builds(path: Path, services: Mapping[str, Mapping[str, Any]], pins: Mapping[str, str], compose_dir: Path,
            app_root: Path) -> dict[str, BuildSpec]:
    specs: dict[str, BuildSpec] = {}
    for name, spec in services.items():
        build = spec.get("build")
        if build is None:
            continue
        if name not in pins:
            raise CatalogError(f"{path}: service {name!r} has a `build:` but no release pin in {PROD_FILE}: "
                               "its image would be built and never run")
        specs[name] = _build_spec(path, name, build, compose_dir, app_root)
    return specs


def _build_spec(path: Path, name: str, build: Any, compose_dir: Path, app_root: Path) -> BuildSpec:
    if isinstance(build, str):
        build = {"context": build}
    if not isinstance(build, dict):
        raise CatalogError(f"{path}: service {name!r} `build:` is neither a context path nor a mapping")
    where = f"{path}: service {name!r} build"
    context_text = _APP_ROOT.sub(lambda _: str(app_root), str(build.get("context") or "."))
    context = Path(os.path.normpath(compose_dir / _plain(where + " context", context_text)))
    dockerfile = Path(os.path.normpath(context / _plain(where + " dockerfile", str(build.get("dockerfile")
                                                                                   or "Dockerfile"))))
    return BuildSpec(name, context, dockerfile, _args(where, build.get("args")))


def _args(where: str, args: Any) -> tuple[tuple[str, str], ...]:
    """Build args as sorted (name, value) pairs; a list entry without `=` would come from the environment."""
    if args is None:
        return ()
    if isinstance(args, list):
        pairs = [str(item).partition("=") for item in args]
        if any(not sep for _, sep, _ in pairs):
            raise CatalogError(f"{where} args: every entry must be NAME=value (none from the environment)")
        items = [(k, v) for k, _, v in pairs]
    elif isinstance(args, dict):
        if any(v is None for v in args.values()):
            raise CatalogError(f"{where} args: every arg needs a value (none from the environment)")
        items = [(str(k), _scalar(v)) for k, v in args.items()]
    else:
        raise CatalogError(f"{where} args: expected a mapping or a list of NAME=value")
    return tuple(sorted((k, _plain(f"{where} arg {k}", v)) for k, v in items))


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _plain(where: str, text: str) -> str:
    """`text` with no variable left: only ${APP_ROOT} is substituted, anything else would build the wrong thing."""
    if _VARIABLE.search(text):
        raise CatalogError(f"{where}: {text!r} uses a variable; only ${{APP_ROOT}} is substituted")
    return text


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
