"""A private Pulumi workspace for the local stacks: a copy of the project (stack files get written by `pulumi config
set`) with its own file backend, run by the CLI and language host scripts/pulumi-toolchain.sh builds. The engine
tests (tests/engine/conftest.py) and the bench's (e) make theirs here."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILES = ("Pulumi.yaml", "Pulumi.prod.yaml", "Pulumi.blue.yaml", "Pulumi.local.yaml", "Pulumi.local-blue.yaml",
                 "__main__.py",
                 "agent", "components", "compose", "ops", "scripts", "standin", "requirements.txt")


class WorkspaceError(RuntimeError):
    """The toolchain a workspace needs is missing or broken; the message says what to run."""


def toolchain_env() -> dict[str, str]:
    """The environment `scripts/pulumi-toolchain.sh env` describes (PATH, offline settings)."""
    script = ROOT / "scripts" / "pulumi-toolchain.sh"
    proc = subprocess.run(["bash", "-c", f'eval "$(bash {script} env)" && env -0'], capture_output=True, text=True,
                          check=False, timeout=60)
    if proc.returncode != 0:
        raise WorkspaceError(f"scripts/pulumi-toolchain.sh env failed: {proc.stderr}")
    env = dict(line.split("=", 1) for line in proc.stdout.split("\0") if "=" in line)
    if shutil.which("pulumi", path=env["PATH"]) is None:
        raise WorkspaceError("no pulumi CLI: run `make pulumi-toolchain` (scripts/pulumi-toolchain.sh install)")
    return env


@dataclass
class Workspace:
    dir: Path
    env: dict[str, str]

    def pulumi(self, *args: str, stack: str, timeout: float = 300, stdin: str | None = None
               ) -> subprocess.CompletedProcess[str]:
        """Run the CLI in the project copy; values meant to stay secret go on stdin, never in argv."""
        return subprocess.run(["pulumi", *args, "--stack", stack, "--non-interactive"], cwd=self.dir, env=self.env,
                              input=stdin, capture_output=True, text=True, timeout=timeout, check=False)


def file_backend(state: Path) -> str:
    """A file state backend at `state`, without .attrs sidecars (see scripts/pulumi-toolchain.sh env)."""
    return f"file://{state}?metadata=skip"


def new_workspace(base: Path) -> Workspace:
    """A copy of the project under base/project with its own file backend under base/state."""
    project = base / "project"
    project.mkdir()
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, project / name)
    (project / ".venv").symlink_to(ROOT / ".venv")
    state = base / "state"
    state.mkdir()
    env = {**toolchain_env(), "PULUMI_BACKEND_URL": file_backend(state), "PULUMI_HOME": os.environ.get(
        "PULUMI_HOME", str(Path.home() / ".pulumi")), "DEVTOOLS_COMMIT": "e2e0c0ffee1234"}
    return Workspace(project, env)
