"""scripts/signing-local.sh against a toolchain holding a stand-in cosign (a script that logs its argv and the
COSIGN_PASSWORD it saw): the toolchain's cosign copied to the host's path when missing or different, the key pair
made once and never overwritten, a second `up` that changes and prints nothing."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.live  # real processes (tests/unit/conftest.py)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "signing-local.sh"
FAKE_COSIGN = """#!/bin/bash
printf '%s | COSIGN_PASSWORD=%s\\n' "$*" "${COSIGN_PASSWORD-unset}" >>"$COSIGN_LOG"
case $1 in
  version) printf 'GitVersion:    v3.1.3\\nGitCommit:     unknown\\n' ;;
  generate-key-pair) [[ $2 == --output-key-prefix ]] || exit 3
    printf 'ENCRYPTED %s\\n' "$RANDOM" >"$3.key" && printf 'PUBLIC\\n' >"$3.pub" ;;
  public-key) [[ $2 == --key && $4 == --outfile ]] || exit 3
    printf 'PUBLIC of %s\\n' "$3" >"$5" ;;
  *) exit 3 ;;
esac
"""


class Machine:
    def __init__(self, tmp_path: Path) -> None:
        self.tc = tmp_path / "tc"
        self.build = self.tc / "cosign-3.1.3" / "bin" / "cosign"
        self.host_cosign = tmp_path / "usr-local-bin" / "cosign"
        self.keys = tmp_path / "state" / "signing"
        self.log = tmp_path / "cosign.log"
        self.env = {"PATH": "/usr/bin:/bin", "DEVTOOLS_TOOLCHAIN": str(self.tc),
                    "DEVTOOLS_STATE": str(tmp_path / "state"), "HOST_COSIGN": str(self.host_cosign),
                    "COSIGN_LOG": str(self.log)}

    def toolchain_with_cosign(self, text: str = FAKE_COSIGN) -> None:
        self.build.parent.mkdir(parents=True, exist_ok=True)
        self.build.write_text(text)
        self.build.chmod(0o755)
        (self.tc / "bin").mkdir(exist_ok=True)
        if not (self.tc / "bin" / "cosign").is_symlink():
            (self.tc / "bin" / "cosign").symlink_to(self.build)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                              check=False, env=self.env)

    def files(self) -> dict[str, tuple[int, int, bytes]]:
        paths = [self.host_cosign, self.keys / "cosign.key", self.keys / "cosign.pub"]
        return {p.name: (p.stat().st_mode & 0o777, p.stat().st_mtime_ns, p.read_bytes()) for p in paths}


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


def test_up_installs_cosign_and_makes_the_pair_once_and_a_second_up_changes_and_prints_nothing(machine):
    machine.toolchain_with_cosign()
    first = machine.run("up")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) == 2, first.stdout
    assert lines[0].startswith(f"==> installed {machine.host_cosign} (v3.1.3, from {machine.tc}/bin/cosign) (")
    assert lines[1].startswith(f"==> made the local signing key pair {machine.keys}/cosign.key (0600, empty "
                               f"password) and {machine.keys}/cosign.pub (")
    assert machine.host_cosign.read_text() == FAKE_COSIGN
    files = machine.files()
    assert (files["cosign"][0], files["cosign.key"][0], files["cosign.pub"][0]) == (0o755, 0o600, 0o644)
    assert (machine.keys.stat().st_mode & 0o777) == 0o700
    assert sorted(p.name for p in machine.keys.iterdir()) == [".lock", "cosign.key", "cosign.pub"]
    # the password is empty and reaches cosign through its environment only; the pair is made aside, then linked
    version, generate = machine.log.read_text().splitlines()
    assert version == "version | COSIGN_PASSWORD=unset"
    assert re.fullmatch(rf"generate-key-pair --output-key-prefix {re.escape(str(machine.keys))}/\.new\.\w{{6}}/cosign "
                        r"\| COSIGN_PASSWORD=", generate), generate
    second = machine.run("up")
    assert (second.returncode, second.stdout, second.stderr) == (0, "", "")
    assert machine.files() == files
    status = machine.run("status")
    assert status.returncode == 0, status.stdout
    assert status.stdout.splitlines() == [
        f"cosign   {machine.host_cosign!s:<44} installed (the toolchain's {machine.tc}/bin/cosign)",
        f"keys     {str(machine.keys) + '/cosign.{key,pub}':<44} present"]


def test_a_different_toolchain_cosign_replaces_the_hosts_and_keeps_the_pair(machine):
    machine.toolchain_with_cosign()
    assert machine.run("up").returncode == 0
    keys = {k: v for k, v in machine.files().items() if k != "cosign"}
    newer = FAKE_COSIGN.replace("v3.1.3", "v3.1.4")
    machine.toolchain_with_cosign(newer)
    assert machine.run("status").returncode == 1
    proc = machine.run("up")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"==> installed {machine.host_cosign} (v3.1.4, from ")
    assert len(proc.stdout.splitlines()) == 1
    assert machine.host_cosign.read_text() == newer
    assert {k: v for k, v in machine.files().items() if k != "cosign"} == keys


def test_a_public_key_without_its_private_key_is_never_replaced(machine):
    machine.toolchain_with_cosign()
    machine.keys.mkdir(parents=True)
    (machine.keys / "cosign.pub").write_text("THE OLD PUBLIC KEY\n")
    proc = machine.run("up")
    assert proc.returncode == 1
    assert proc.stderr == (f"signing-local: error: {machine.keys}/cosign.pub exists without its private key "
                           f"{machine.keys}/cosign.key: not making a new pair over it (move it aside to make one)\n")
    assert (machine.keys / "cosign.pub").read_text() == "THE OLD PUBLIC KEY\n"
    assert not (machine.keys / "cosign.key").exists()
    assert "generate-key-pair" not in machine.log.read_text()


def test_a_private_key_alone_gets_its_public_half_and_is_kept(machine):
    """An interrupted first run leaves at most the private key (it is linked into place first)."""
    machine.toolchain_with_cosign()
    machine.keys.mkdir(parents=True)
    key = machine.keys / "cosign.key"
    key.write_text("THE OLD PRIVATE KEY\n")
    key.chmod(0o600)
    proc = machine.run("up")
    assert proc.returncode == 0, proc.stderr
    assert f"==> wrote {machine.keys}/cosign.pub (the public half of {key}) (" in proc.stdout
    assert key.read_text() == "THE OLD PRIVATE KEY\n"
    assert (machine.keys / "cosign.pub").read_text() == f"PUBLIC of {key}\n"
    assert ((machine.keys / "cosign.pub").stat().st_mode & 0o777) == 0o644
    assert machine.log.read_text().splitlines()[-1] == (
        f"public-key --key {key} --outfile {machine.keys}/cosign.pub.tmp | COSIGN_PASSWORD=")


def test_without_a_toolchain_cosign_up_builds_it_and_says_so(machine):
    """No cosign in the toolchain: `up` runs `pulumi-toolchain.sh install cosign` (here without go on PATH, so the
    build stops at once and names what is missing), and nothing is installed or made."""
    if shutil.which("go", path=machine.env["PATH"]):
        pytest.skip(f"go is on {machine.env['PATH']}: this test needs a PATH without go")
    proc = machine.run("up")
    assert proc.returncode == 1
    assert proc.stdout.startswith("==> cosign is not built yet: building it from the Go module proxy, once "
                                  "(scripts/pulumi-toolchain.sh)\n")
    assert "pulumi-toolchain: error: no 'go' on PATH: install Go 1.26.6 or newer" in proc.stderr
    assert not machine.host_cosign.exists() and not (machine.keys / "cosign.key").exists()


def test_help_and_usage(machine):
    proc = machine.run("--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: scripts/signing-local.sh up|status|--help\n")
    bad = machine.run("down")
    assert bad.returncode == 2 and bad.stderr.startswith("usage: scripts/signing-local.sh")
