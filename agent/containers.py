"""A compose project's containers, whichever release created them (standard library only).

Compose labels every container with its project and service. Listing by the project label finds them all, also
those a release running from another directory started. `agent.status` (what runs, for a drift check) and
`agent.diagnose` (what is wrong with it) both list and inspect a project's containers here.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Any

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
DOCKER_TIMEOUT = 30.0

Run = Callable[[list[str]], tuple[int, str, str]]


class ContainersError(Exception):
    """Docker could not list the project's containers (no CLI, no daemon)."""


def ps_argv(project: str) -> list[str]:
    """The full ids of all containers of a project, running or not."""
    return ["docker", "ps", "--all", "--quiet", "--no-trunc", "--filter", f"label={PROJECT_LABEL}={project}"]


def inspect_argv(container_ids: Sequence[str]) -> list[str]:
    return ["docker", "container", "inspect", *container_ids]


def service_of(inspect: Mapping[str, Any]) -> str:
    """The compose service a `docker container inspect` object belongs to ("" for none)."""
    return str(((inspect.get("Config") or {}).get("Labels") or {}).get(SERVICE_LABEL) or "")


def run_docker(argv: list[str], merge_stderr: bool = False) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a docker command; a missing CLI or a timeout is exit code -1."""
    try:
        proc = subprocess.run(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            timeout=DOCKER_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return -1, "", f"{' '.join(argv[:2])}: {exc}"
    err = (proc.stderr or b"").decode("utf-8", "replace").strip()
    return (
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        err or f"{' '.join(argv[:2])} exited {proc.returncode}",
    )


def inspect_project(project: str, run: Run = run_docker) -> tuple[list[dict[str, Any]], list[str]]:
    """The `docker container inspect` objects of a project's containers, and what could not be read. Raises
    ContainersError only when docker cannot list them; a container removed between the two commands is an
    error in the list while the others are still returned."""
    rc, out, err = run(ps_argv(project))
    if rc != 0:
        raise ContainersError(err)
    container_ids = out.split()
    if not container_ids:
        return [], []
    rc, out, err = run(inspect_argv(container_ids))
    errors = [] if rc == 0 else [err]
    try:
        inspected = [i for i in json.loads(out or "[]") if isinstance(i, dict)]
    except (ValueError, TypeError) as exc:
        return [], [*errors, f"cannot read docker container inspect output: {exc}"]
    return inspected, errors
