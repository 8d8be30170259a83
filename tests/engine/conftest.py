"""The program on the real Pulumi engine: the CLI and language host built by scripts/pulumi-toolchain.sh, a file
backend in a temporary directory, and a copy of the project (stack files get written by `pulumi config set`).
The workspace itself is bench/workspace.py's, shared with the bench's (e)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.workspace import ROOT, Workspace, file_backend, new_workspace, toolchain_env

__all__ = ["ROOT", "Workspace", "file_backend", "new_workspace", "toolchain_env"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/engine/" in str(item.fspath):
            item.add_marker(pytest.mark.engine)


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    yield new_workspace(tmp_path)


def ready_to_build() -> None:
    """What the program's local builds need, as `make up` prepares it: the BuildKit builder the docker-build
    provider uses, and the static busybox the example app's Dockerfile copies into its images."""
    builder = subprocess.run(["bash", str(ROOT / "scripts" / "buildkit-local.sh"), "up"], capture_output=True,
                             text=True, timeout=1800, check=False)
    assert builder.returncode == 0, builder.stderr
    vendor = subprocess.run([sys.executable, "-m", "ops.build", "--vendor-only"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=False)
    assert vendor.returncode == 0, vendor.stderr

