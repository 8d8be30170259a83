"""Shared fixtures for tests on the real parts: dockerd, registry, sshd, haproxy, prometheus on loopback.

`local_env` brings the whole stand-in up once per session with scripts/local-env.sh (idempotent);
`host` talks to the SSH stand-in exactly as a rollout talks to a droplet.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.containers import PROJECT_LABEL, SERVICE_LABEL
from agent.remote import agent_command
from agent.validate.catalog import resolve_compose
from ops.ship import SshTarget
from standin import localenv

ROOT = Path(__file__).resolve().parents[2]
PINS_DIR = Path(tempfile.mkdtemp(prefix="devtools-pins-"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def local_env() -> localenv.LocalEnv:
    if os.environ.get("DEVTOOLS_ENV_READY") != "1":
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "local-env.sh"), "up"], capture_output=True,
                              text=True, timeout=3600, check=False)  # fresh: packages, then cosign's build
        if proc.returncode != 0:
            pytest.fail(f"scripts/local-env.sh up failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return localenv.load()


@dataclass
class Host:
    """The SSH stand-in: every call goes over real SSH with host-key checking."""

    env: localenv.LocalEnv
    root: str

    @property
    def target(self) -> SshTarget:
        e = self.env
        return SshTarget(e.ssh_host, e.ssh_port, e.ssh_user, e.ssh_key, e.known_hosts)

    def ssh(self, command: str, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.target.argv(command), capture_output=True, text=True, timeout=timeout,
                              check=False, **kw)

    def agent(self, project: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return self.ssh(agent_command(self.root, project, list(args)), timeout=timeout)

    def status(self, project: str) -> dict[str, Any]:
        proc = self.agent(project, "status", "--compact")
        assert proc.returncode == 0, proc.stderr
        data: dict[str, Any] = json.loads(proc.stdout)
        return data

    def audit(self, project: str) -> list[dict[str, Any]]:
        path = Path(self.root) / project / "audit.jsonl"  # the stand-in host shares this filesystem
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def ship(self, pins: dict[str, Any], project: str, *agent_args: str, env: dict[str, str] | None = None,
             local_checks: bool = False, secrets_file: Path | None = None, tier: str | None = None,
             public_keys: tuple[Path, ...] = ()) -> subprocess.CompletedProcess[str]:
        """`python -m ops.ship` of `pins` to `project` (one tier's compose file with `tier`; signatures required
        by `public_keys`)."""
        pins_file = PINS_DIR / f"ship-{pins['release']}.json"
        pins_file.write_text(json.dumps(pins))
        argv = [sys.executable, "-m", "ops.ship", "--pins", str(pins_file), "--project", project,
                "--host-root", self.root]
        if tier is not None:
            argv += ["--tier", tier]
        argv += [f"--env={k}={v}" for k, v in (env or {}).items()]
        if not local_checks:
            argv.append("--no-local-env")
        if secrets_file is not None:
            argv += ["--secrets-file", str(secrets_file)]
        argv += [f"--public-key={key}" for key in public_keys]
        argv += ["--", *agent_args]
        return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=900, check=False)


HOST_ROOTS: list[Path] = []  # the session's host root, once `host` has made it


def _projects(root: Path) -> set[str]:
    """The compose projects a test shipped to under `root` (each keeps its release records there)."""
    return {p.name for p in root.iterdir() if (p / "releases").is_dir()} if root.is_dir() else set()


def _stop(projects: set[str]) -> None:
    """Stop (never remove) the projects' running containers: containers and volumes stay for inspection."""
    for project in sorted(projects):
        ids = subprocess.run(["docker", "ps", "-q", "--filter", f"label={PROJECT_LABEL}={project}"],
                             capture_output=True, text=True, check=False).stdout.split()
        if ids:
            subprocess.run(["docker", "stop", "--time", "2", *ids], capture_output=True, check=False, timeout=120)


@pytest.fixture(scope="module", autouse=True)
def _module_projects_stop() -> Iterator[None]:
    """Each module's own projects stop when the module ends, so the session's last modules do not start their
    releases next to every earlier module's health checks (some sixty containers on a 2-core machine, where a
    service starting slower than its three failed checks is marked unhealthy)."""
    before = {root: _projects(root) for root in HOST_ROOTS}
    yield
    for root in HOST_ROOTS:
        _stop(_projects(root) - before.get(root, set()))


@pytest.fixture(scope="session")
def host(local_env: localenv.LocalEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    """A host root of the tests' own, next to the stand-in's agent venv (what cloud-init installs)."""
    root = Path(tempfile.mkdtemp(prefix="devtools-e2e-", dir="/var/tmp"))
    (root / "venv").symlink_to(local_env.host_root / "venv")
    HOST_ROOTS.append(root)
    yield Host(local_env, str(root))
    _stop(_projects(root))
    HOST_ROOTS.remove(root)
    shutil.rmtree(root, ignore_errors=True)


def build_release(env: localenv.LocalEnv, tag: str, *extra: str, app_root: Path | None = None) -> dict[str, Any]:
    """Build and push the example images with ops.build; returns its pins JSON."""
    out = PINS_DIR / f"pins-{tag}.json"
    run_env = dict(os.environ, REGISTRY_ADDR=env.registry)
    if app_root is not None:
        run_env["APP_ROOT"] = str(app_root)
    proc = subprocess.run([sys.executable, "-m", "ops.build", "--tag", tag, "--out", str(out), *extra],
                          capture_output=True, text=True, cwd=ROOT, env=run_env, timeout=900, check=False)
    assert proc.returncode == 0, f"ops.build failed:\n{proc.stdout}\n{proc.stderr}"
    pins: dict[str, Any] = json.loads(out.read_text())
    return pins


def dev_config() -> dict[str, Any]:
    """The dev variant's resolved compose config (prod file + override + dev.env), labels included."""
    compose = ROOT / "compose"
    return resolve_compose([str(compose / "docker-compose.yml"), str(compose / "docker-compose.override.yml")],
                           str(compose / "dev.env"))


def compose_exec(project: str, service: str, command: str) -> subprocess.CompletedProcess[str]:
    """Run a shell command in the project's container of `service` (the example images ship busybox sh)."""
    cid = subprocess.run(["docker", "ps", "-q", "--filter", f"label={PROJECT_LABEL}={project}",
                          "--filter", f"label={SERVICE_LABEL}={service}"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert len(cid) == 1, f"expected one running {service} container in {project}, found {cid}"
    return subprocess.run(["docker", "exec", cid[0], "sh", "-c", command], capture_output=True, text=True,
                          timeout=30, check=False)
