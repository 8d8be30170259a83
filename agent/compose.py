"""Pure builders for every docker / docker compose command the host agent runs (standard library only).

Each function returns an argv list; nothing here runs a process. Keeping them pure means every command the
agent can run on a droplet has an exact-string test (tests/unit/agent/test_compose.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


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


def pull(project: ComposeProject, services: Sequence[str] = ()) -> list[str]:
    """Pull the images the host lacks: of the whole project, or of `services` only (one image's services)."""
    return [*project.base(), "pull", "--quiet", "--policy", "missing", *services]


def up(project: ComposeProject, wait_timeout: int) -> list[str]:
    return [
        *project.base(), "up", "--detach", "--wait", "--wait-timeout", str(wait_timeout),
        "--remove-orphans", "--pull", "never",
    ]


def run_once(project: ComposeProject, service: str, args: Sequence[str], *, name: str) -> list[str]:
    """A one-shot container of `service` with `args` (a data service's migration): removed when it ends, no
    dependency started, no TTY. Named, so that a run outliving its deadline can be stopped (killing the CLI does not
    stop the container)."""
    return [*project.base(), "run", "--rm", "--no-deps", "-T", "--name", name, service, *args]


def down(project: ComposeProject, timeout: int) -> list[str]:
    """Stop and remove the project's containers and networks. Never `--volumes`: the data stays for the next apply."""
    return [*project.base(), "down", "--remove-orphans", "--timeout", str(timeout)]


def pause(project: ComposeProject, services: Sequence[str]) -> list[str]:
    """Freeze the services' containers (a backup reads their volumes meanwhile); `unpause` thaws them."""
    return [*project.base(), "pause", *services]


def unpause(project: ComposeProject, services: Sequence[str]) -> list[str]:
    return [*project.base(), "unpause", *services]


def stop(project: ComposeProject, services: Sequence[str], timeout: int) -> list[str]:
    """Stop (never remove) the services' containers: a restore writes their volumes meanwhile; `start` brings the
    same containers back."""
    return [*project.base(), "stop", "--timeout", str(timeout), *services]


def start(project: ComposeProject, services: Sequence[str]) -> list[str]:
    return [*project.base(), "start", *services]


def ps_json(project: ComposeProject) -> list[str]:
    return [*project.base(), "ps", "--all", "--format", "json"]


def logs_tail(project: ComposeProject, services: Sequence[str], lines: int) -> list[str]:
    return [*project.base(), "logs", "--no-color", "--timestamps", "--tail", str(lines), *services]


def image_inspect(refs: Sequence[str]) -> list[str]:
    return ["docker", "image", "inspect", *refs]


def repo_digests(ref: str) -> list[str]:
    """The `repo@sha256:…` names an image has in registries, as one JSON list (ops.build, agent.diagnose)."""
    return ["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", ref]


def image_remove(ref: str) -> list[str]:
    """Remove one image reference. Never forced: an image a container still uses stays."""
    return ["docker", "image", "rm", ref]


def container_stop(name: str, timeout: int) -> list[str]:
    """Stop one container (a one-shot run past its deadline; `--rm` then removes it). Never its volumes."""
    return ["docker", "container", "stop", "--time", str(timeout), name]


def network_inspect(name: str) -> list[str]:
    return ["docker", "network", "inspect", "--format", "{{.Name}}", name]


def network_create(name: str) -> list[str]:
    """A network the release's compose config declares `external: true` (shared between compose projects)."""
    return ["docker", "network", "create", name]


def docker_info() -> list[str]:
    return ["docker", "info", "--format", "{{.ServerVersion}}"]
