"""The release format, shared by every side: what a release id may be, how a release pins its images, the
release.json the laptop ships and the release.env compose reads on the host (the secrets file: agent.secretfile).

Standard library only. The Pulumi program checks its release id against RELEASE_ID at config time, so an id the
hosts would refuse is refused before any image is pushed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
"""An image digest as docker and registries print it (match a whole string with fullmatch)."""
DIGEST_REF = re.compile(rf"^[a-z0-9][a-z0-9._:/-]*@{DIGEST.pattern}\Z")
"""What a host runs: `<repo>@<digest>`."""
SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\Z")
RELEASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
"""A release id: a docker tag that is also a safe directory name (no leading dot, no `/`, no `..`), at most 64."""
RELEASE_ID_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit, without '..'"
ENV_KEY = re.compile(r"^[A-Z_][A-Z0-9_]*\Z")


def is_reserved(key: str) -> bool:
    """Names the release itself sets (its id, each service's image pin): never an extra setting's or a secret's."""
    return key == "RELEASE_ID" or key.endswith("_IMAGE")


def release_id_problem(release_id: str) -> str | None:
    """Why `release_id` is not a release id every host accepts, or None."""
    if not RELEASE_ID.match(release_id) or ".." in release_id:
        return f"release id {release_id!r} must be {RELEASE_ID_RULE}"
    return None


def release_manifest(release_id: str, images: Mapping[str, str], env: Mapping[str, str],
                     source: Mapping[str, Any], signing: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """release.json: id, images (service → repo@sha256:…), compose settings, compose files, and where it came from
    (`source` is left out of the release's identity: the same release shipped from another commit is no conflict).
    `signing`: the signatures the host requires before anything changes (agent.signing.manifest_section); left
    out when None, so a release without a signing policy keeps its bytes.
    """
    manifest = {"id": release_id, "images": dict(sorted(images.items())), "env": dict(sorted(env.items())),
                "compose_files": ["docker-compose.yml"], "source": dict(source)}
    if signing is not None:
        manifest["signing"] = dict(signing)
    return manifest


def image_env_key(service: str) -> str:
    """`gateway-mcp` → `GATEWAY_MCP_IMAGE`: the variable the compose file reads the service's pin from."""
    return service.upper().replace("-", "_") + "_IMAGE"


def render_release_env(release_id: str, images: Mapping[str, str], extra: Mapping[str, str]) -> str:
    """The env file compose interpolates for one release: the id, one digest pin per service, extra settings.

    Sorted and newline-terminated so the same release always renders byte-for-byte the same file.
    """
    lines = [f"RELEASE_ID={release_id}"]
    lines += [f"{image_env_key(s)}={images[s]}" for s in sorted(images)]
    lines += [f"{k}={extra[k]}" for k in sorted(extra)]
    return "\n".join(lines) + "\n"


def check_release(release_id: str, images: Mapping[str, str], extra: Mapping[str, str]) -> list[str]:
    """Every reason this release must be refused before anything on the host changes (empty = fine)."""
    problems: list[str] = []
    problem = release_id_problem(release_id)
    if problem:
        problems.append(problem)
    if not images:
        problems.append("release has no images: expected at least one service → repo@sha256:… pin")
    for service, ref in sorted(images.items()):
        if not SERVICE_NAME.match(service):
            problems.append(f"service name {service!r} must match {SERVICE_NAME.pattern}")
        if not DIGEST_REF.match(ref):
            problems.append(f"images.{service}: {ref!r} is not digest-pinned (expected repo@sha256:<64 hex>)")
    for key, value in sorted(extra.items()):
        if not ENV_KEY.match(key):
            problems.append(f"env.{key}: not an environment variable name (expected {ENV_KEY.pattern})")
        elif is_reserved(key):
            problems.append(f"env.{key}: reserved for the release itself (ids and pins come from images)")
        if "\n" in value:
            problems.append(f"env.{key}: value must be one line")
    return problems
