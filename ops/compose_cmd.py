"""Pure builders for every docker / docker compose command the host agent runs (standard library only).

Each function returns an argv list; nothing here runs a process. Keeping them pure means every command the
agent can run on a droplet has an exact-string test (tests/unit/test_compose_cmd.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DIGEST_REF = re.compile(r"^[a-z0-9][a-z0-9._:/-]*@sha256:[0-9a-f]{64}$")
SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
RELEASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ENV_KEY = re.compile(r"^[A-Z_][A-Z0-9_]*$")


@dataclass(frozen=True)
class ComposeProject:
    """How to address one color's compose project on a host.

    `directory` is the stable `run` symlink that points at the active release, so bind-mount paths (and
    therefore compose's per-service config hash) do not change from one release to the next: only services
    whose own configuration changed are recreated.
    """

    name: str
    directory: Path
    files: tuple[str, ...]
    env_file: str = "release.env"

    def base(self) -> list[str]:
        argv = ["docker", "compose", "--project-name", self.name, "--project-directory", str(self.directory)]
        for f in self.files:
            argv += ["--file", str(self.directory / f)]
        return [*argv, "--env-file", str(self.directory / self.env_file)]


def config_json(project: ComposeProject) -> list[str]:
    return [*project.base(), "config", "--format", "json"]


def pull(project: ComposeProject) -> list[str]:
    return [*project.base(), "pull", "--quiet", "--policy", "missing"]


def up(project: ComposeProject, wait_timeout: int) -> list[str]:
    return [
        *project.base(), "up", "--detach", "--wait", "--wait-timeout", str(wait_timeout),
        "--remove-orphans", "--pull", "never",
    ]


def down(project: ComposeProject, timeout: int) -> list[str]:
    """Stop and remove the project's containers and networks. Never `--volumes`: the data stays for the next apply."""
    return [*project.base(), "down", "--remove-orphans", "--timeout", str(timeout)]


def ps_json(project: ComposeProject) -> list[str]:
    return [*project.base(), "ps", "--all", "--format", "json"]


def logs_tail(project: ComposeProject, services: Sequence[str], lines: int) -> list[str]:
    return [*project.base(), "logs", "--no-color", "--timestamps", "--tail", str(lines), *services]


def project_containers(project_name: str) -> list[str]:
    """All containers of a project, whichever release created them (labels survive a changed directory)."""
    return ["docker", "ps", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={project_name}"]


def inspect(ids: Sequence[str]) -> list[str]:
    return ["docker", "inspect", "--type", "container", *ids]


def image_inspect(refs: Sequence[str]) -> list[str]:
    return ["docker", "image", "inspect", *refs]


def image_remove(ref: str) -> list[str]:
    """Remove one image reference. Never forced: an image a container still uses stays."""
    return ["docker", "image", "rm", ref]


def docker_info() -> list[str]:
    return ["docker", "info", "--format", "{{.ServerVersion}}"]


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
    if not RELEASE_ID.match(release_id):
        problems.append(f"release id {release_id!r} must match {RELEASE_ID.pattern}")
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
        elif key == "RELEASE_ID" or key.endswith("_IMAGE"):
            problems.append(f"env.{key}: reserved for the release itself (ids and pins come from images)")
        if "\n" in value:
            problems.append(f"env.{key}: value must be one line")
    return problems


def parse_secrets(text: str) -> dict[str, str]:
    """KEY=VALUE lines (blank lines and # comments allowed) for the host's 0600 secrets file.

    Errors name the line and the key, never the value.
    """
    secrets: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not ENV_KEY.match(key):
            raise ValueError(f"secrets line {number}: expected KEY=VALUE with KEY matching {ENV_KEY.pattern}")
        if key == "RELEASE_ID" or key.endswith("_IMAGE"):
            raise ValueError(f"secrets line {number}: {key} is reserved for the release itself")
        secrets[key] = value
    return secrets


def render_secrets(secrets: Mapping[str, str]) -> str:
    return "".join(f"{k}={secrets[k]}\n" for k in sorted(secrets))
