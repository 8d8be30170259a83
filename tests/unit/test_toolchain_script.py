"""scripts/pulumi-toolchain.sh: its help, the offline settings it hands to every pulumi command, and cosign: built
alone (no CLI), linked onto PATH, found by `path`, removed by `clean` (a stand-in `go` builds nothing real here)."""

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
    assert proc.stdout.splitlines()[0] == ("usage: scripts/pulumi-toolchain.sh [install [NAME...] | env | status | "
                                           "path NAME | clean NAME... | --help]")
    assert "  cosign                        v3.1.3, the upstream CLI main package (tools/cosign)" in proc.stdout
    assert "'install cosign' builds cosign alone, without the CLI" in proc.stdout
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
    assert "cosign                         3.1.3    missing" in proc.stdout.splitlines()


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


COSIGN_BUILD = "cosign-3.1.3/bin/cosign"


def toolchain_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "DEVTOOLS_TOOLCHAIN": str(tmp_path / "tc"),
            "DEVTOOLS_STATE": str(tmp_path / "state"), "PULUMI_HOME": str(tmp_path / "home"), **extra}


def fake_build(tc: Path, relative: str = COSIGN_BUILD) -> Path:
    binary = tc / relative
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\necho cosign\n")
    binary.chmod(0o755)
    return binary


def test_path_names_the_install_command_while_cosign_is_missing(tmp_path):
    proc = run("path", "cosign", env=toolchain_env(tmp_path))
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        1, "", "pulumi-toolchain: error: cosign 3.1.3 is not installed: run scripts/pulumi-toolchain.sh install "
               "cosign\n")
    fake_build(tmp_path / "tc")  # built, but not linked onto PATH: not installed either
    assert run("path", "cosign", env=toolchain_env(tmp_path)).returncode == 1
    status = run("status", env=toolchain_env(tmp_path))
    assert status.returncode == 1
    assert (f"cosign                         3.1.3    built   {tmp_path}/tc/{COSIGN_BUILD}, not linked from "
            f"{tmp_path}/tc/bin (run: install cosign)") in status.stdout.splitlines()


def test_path_prints_the_command_on_path_and_refuses_a_link_to_another_version(tmp_path):
    tc = tmp_path / "tc"
    binary = fake_build(tc)
    (tc / "bin").mkdir()
    (tc / "bin" / "cosign").symlink_to(binary)
    proc = run("path", "cosign", env=toolchain_env(tmp_path))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"{tc}/bin/cosign\n", "")
    status = run("status", env=toolchain_env(tmp_path))
    assert f"cosign                         3.1.3    built   {tc}/{COSIGN_BUILD}" in status.stdout.splitlines()
    (tc / "bin" / "cosign").unlink()
    (tc / "bin" / "cosign").symlink_to(fake_build(tc, "cosign-3.1.2/bin/cosign"))
    assert run("path", "cosign", env=toolchain_env(tmp_path)).returncode == 1


def test_path_of_an_unknown_component_is_a_usage_error(tmp_path):
    proc = run("path", "cosine", env=toolchain_env(tmp_path))
    assert (proc.returncode, proc.stderr) == (2, "pulumi-toolchain: error: unknown component: cosine (see --help)\n")
    assert run("path", env=toolchain_env(tmp_path)).returncode == 2


def test_clean_cosign_removes_its_build_and_its_link_only(tmp_path):
    tc = tmp_path / "tc"
    (tc / "bin").mkdir(parents=True)
    (tc / "bin" / "cosign").symlink_to(fake_build(tc))
    (tc / "bin" / "pulumi").symlink_to(fake_build(tc, "pulumi-3.260.0/bin/pulumi"))
    proc = run("clean", "cosign", env=toolchain_env(tmp_path))
    assert (proc.returncode, proc.stdout) == (0, f"==> removed {tc}/cosign-3.1.3\n")
    assert sorted(p.name for p in tc.iterdir()) == ["bin", "pulumi-3.260.0"]
    assert [p.name for p in (tc / "bin").iterdir()] == ["pulumi"]


FAKE_GO = """#!/bin/bash
# A stand-in for go: `go env GOVERSION`, and `go build ... -o OUT ... PKG` writes a script to OUT; argv logged.
case $1 in
  env) echo go1.26.8 ;;
  build) printf '%s\\n' "$*" >>"$GO_LOG"
    while [[ $# -gt 0 && $1 != -o ]]; do shift; done
    printf '#!/bin/sh\\necho cosign v3.1.3\\n' >"$2" && chmod 755 "$2" ;;
  *) exit 3 ;;
esac
"""


def test_install_cosign_builds_it_alone_links_it_and_a_second_run_only_checks_the_cache(tmp_path):
    """`install cosign` needs no Pulumi CLI (local-env.sh builds cosign before anything else of the toolchain): one
    build of upstream's main package with the version linker flag, a link in the toolchain's bin directory (on
    PATH after `env`), and the cache on the second run."""
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "go").write_text(FAKE_GO)
    (fake / "curl").write_text("#!/bin/sh\nexit 0\n")  # the proxy "answers"; nothing leaves this machine
    for f in fake.iterdir():
        f.chmod(0o755)
    log = tmp_path / "go.log"
    env = toolchain_env(tmp_path, PATH=f"{fake}:/usr/bin:/bin", GO_LOG=str(log))
    first = run("install", "cosign", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    tc = tmp_path / "tc"
    assert log.read_text() == (f"build -trimpath -o {tc}/{COSIGN_BUILD}.tmp -ldflags -s -w -X "
                               "sigs.k8s.io/release-utils/version.gitVersion=v3.1.3 "
                               "github.com/sigstore/cosign/v3/cmd/cosign\n")
    assert "pulumi" not in first.stdout.replace(str(tc), "")  # neither built nor mentioned
    assert f"==> cosign 3.1.3: built {tc}/{COSIGN_BUILD} (" in first.stdout
    assert os.readlink(tc / "bin" / "cosign") == f"{tc}/{COSIGN_BUILD}"
    assert run("path", "cosign", env=env).stdout == f"{tc}/bin/cosign\n"
    second = run("install", "cosign", env=env)
    assert second.returncode == 0, second.stderr
    assert f"==> cosign 3.1.3: cached in {tc}/cosign-3.1.3 (" in second.stdout
    assert len(log.read_text().splitlines()) == 1  # no second build
    assert second.stdout.splitlines()[-1].startswith(f"==> toolchain in {tc} (cosign v3.1.3); env: source ")
