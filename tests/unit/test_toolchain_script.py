"""scripts/pulumi-toolchain.sh: its help and the offline settings it hands to every pulumi command."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.live  # real peers or processes (tests/unit/conftest.py)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "pulumi-toolchain.sh"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False,
                          env=env)


def test_help_names_what_it_builds_and_what_it_cannot():
    proc = run("--help")
    assert proc.returncode == 0, proc.stderr
    for name in ("pulumi ", "pulumi-language-python", "pulumi-resource-docker-build", "pulumi-resource-command"):
        assert name in proc.stdout
    assert "the project's OWN build of the subset" in proc.stdout  # never passed off as upstream's
    assert "Not buildable here: pulumi-resource-digitalocean v4.84.1" in proc.stdout


def test_env_turns_off_downloads_and_uses_a_file_backend(tmp_path):
    """Offline by construction: no update check, no automatic plugin download, state in a local file backend."""
    proc = run("env", env={"PATH": "/usr/bin:/bin", "DEVTOOLS_TOOLCHAIN": str(tmp_path / "tc"),
                           "DEVTOOLS_STATE": str(tmp_path / "state")})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "export PULUMI_SKIP_UPDATE_CHECK=true" in lines
    assert "export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true" in lines
    assert f'export PATH="{tmp_path / "tc"}/bin:$PATH"' in lines
    state = tmp_path / "state"
    assert f'export PULUMI_BACKEND_URL="${{PULUMI_BACKEND_URL:-file://{state}/pulumi-state?metadata=skip}}"' in lines


def test_unknown_command_fails_with_usage():
    proc = run("frobnicate")
    assert proc.returncode != 0
    assert "usage: scripts/pulumi-toolchain.sh" in proc.stdout + proc.stderr


def test_status_fails_while_a_buildable_part_is_missing(tmp_path):
    """`make up` asks `status` whether to announce a first build (about 15 min): it must say no only when every
    buildable part is there."""
    proc = run("status", env={"PATH": "/usr/bin:/bin", "DEVTOOLS_TOOLCHAIN": str(tmp_path / "tc"),
                              "PULUMI_HOME": str(tmp_path / "home")})
    assert proc.returncode == 1
    assert "pulumi                         3.260.0  missing" in proc.stdout


def test_a_toolchain_directory_someone_else_made_is_refused_and_ours_is_private(tmp_path):
    """The toolchain lives under world-writable /var/tmp and holds binaries every `pulumi` run executes: a directory
    another user created first (so could fill) must be refused, and ours must be 0700."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, -1)  # nobody
    proc = run("install", "pulumi", env={**os.environ, "DEVTOOLS_TOOLCHAIN": str(theirs),
                                         "DEVTOOLS_STATE": str(tmp_path / "state")})
    assert proc.returncode == 1
    assert f"pulumi-toolchain: error: {theirs} exists but is not a directory owned by " in proc.stderr
    assert sorted(p.name for p in theirs.iterdir()) == []
