"""ops.cli without an engine: its refusal when `pulumi` is absent, --help, and the confirmation rules."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from components.ssh_keys import public_half
from ops import cli
from ops import operator_plan as plan
from ops.operator_host import CliError, Pulumi

ROOT = Path(__file__).resolve().parents[3]


def run_cli(*args: str, path: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], cwd=ROOT, env={"PATH": path}, input=stdin,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.live
@pytest.mark.parametrize("args", [["flip", "blue", "--yes"], ["rollback"], ["drift"], ["status"],
                                  ["reapply", "--yes"], ["collect", "--out", "x"], ["hostkey", "--yes"],
                                  ["data", "backup"], ["standby", "destroy", "--stack", "blue", "--yes"]])
def test_every_command_refuses_clearly_without_pulumi(tmp_path: Path, args: list[str]) -> None:
    proc = run_cli(*args, path=str(tmp_path))  # an empty PATH directory: no pulumi, no ssh
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: the Pulumi CLI (`pulumi`) is not on PATH."), proc.stderr
    assert "make pulumi-toolchain" in proc.stderr
    assert proc.stdout == ""


def test_a_directory_without_pulumi_yaml_is_refused(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "pulumi").write_text("#!/bin/sh\nexit 0\n")
    (fake_bin / "pulumi").chmod(0o755)
    with pytest.raises(CliError, match=r"no Pulumi\.yaml here; pass --cwd"):
        Pulumi.find(tmp_path, {"PATH": str(fake_bin)})


@pytest.mark.live
@pytest.mark.parametrize("command", ["status", "drift", "flip", "rollback", "reapply", "collect", "ssh-lease",
                                     "hostkey", "standby", "data backup", "data backups", "data restore"])
def test_help_for_every_command(command: str) -> None:
    proc = run_cli(*command.split(), "--help", path="/usr/bin:/bin")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: python -m ops.cli {command}")
    assert "--stack" in proc.stdout


@pytest.mark.live
def test_bad_color_is_a_usage_error() -> None:
    proc = run_cli("flip", "red", path="/usr/bin:/bin")
    assert proc.returncode == 2
    assert "invalid choice: 'red'" in proc.stderr


FAKE_PULUMI = """#!/bin/sh
# `pulumi config get` of an unset key, and `pulumi config set` recording its argv and stdin
case "$2" in
  get) echo "error: configuration key 'devtools:sshHostPrivateKey' not found for stack 'prod'" >&2; exit 1 ;;
  set) echo "$@" > "{record}.argv"; cat > "{record}.stdin" ;;
esac
"""


@pytest.mark.live
def test_hostkey_generates_a_key_and_sets_it_as_a_secret_from_stdin(tmp_path: Path) -> None:
    """`ops.cli hostkey` runs ssh-keygen and hands the private half to `pulumi config set --secret` on stdin: the
    argv holds no key material, the output shows only the public half, and the temporary key file is gone."""
    bin_dir, record = tmp_path / "bin", tmp_path / "record"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text(FAKE_PULUMI.format(record=record))
    (bin_dir / "pulumi").chmod(0o755)
    proc = subprocess.run([sys.executable, "-m", "ops.cli", "hostkey", "--stack", "prod", "--yes"], cwd=ROOT,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "TMPDIR": str(tmp_path)}, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    private = (tmp_path / "record.stdin").read_text()
    public = public_half(private).line
    assert (tmp_path / "record.argv").read_text() == (
        "config set --secret devtools:sshHostPrivateKey --stack prod --non-interactive\n")
    assert public in proc.stdout and "PRIVATE KEY" not in proc.stdout + proc.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("devtools-hostkey-")]


def test_hostkey_refuses_a_stack_that_has_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Droplets keep the host key they were created with and the rollout pins it: a new one would lock both out."""
    monkeypatch.setattr(Pulumi, "config", lambda self, stack, key: "-----BEGIN OPENSSH PRIVATE KEY-----")
    args = cli.build_parser().parse_args(["hostkey", "--stack", "prod", "--yes"])
    with pytest.raises(CliError, match=(
            r"^stack prod already has devtools:sshHostPrivateKey: its droplets present that key and the rollout "
            r"pins it; a new one would lock both out \(docs/runbook.md, host keys\)")):
        cli.cmd_hostkey(Pulumi(ROOT, {}), args)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_confirm_needs_a_terminal_or_yes() -> None:
    assert cli.confirm("go?", True, io.StringIO(), io.StringIO()) is True
    with pytest.raises(CliError, match="not a terminal, so nobody can answer the question: pass --yes"):
        cli.confirm("go?", False, io.StringIO("y\n"), io.StringIO())
    out = io.StringIO()
    assert cli.confirm("Go ahead?", False, Tty("y\n"), out) is True
    assert out.getvalue() == "Go ahead? [y/N] "
    assert cli.confirm("Go ahead?", False, Tty("\n"), io.StringIO()) is False
    assert cli.confirm("Go ahead?", False, Tty("nope\n"), io.StringIO()) is False


def test_declining_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "ran"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "pulumi").write_text(f"#!/bin/sh\ntouch {marker}\n")
    (fake_bin / "pulumi").chmod(0o755)
    monkeypatch.setattr(sys, "stdin", Tty("n\n"))
    args = cli.build_parser().parse_args(["flip", "blue", "--stack", "prod"])
    steps = plan.flip_plan("prod", {"liveColor": "green"}, "blue")
    code = cli.run_plan(Pulumi(ROOT, {"PATH": str(fake_bin)}), "flip stack prod", steps, args)
    assert code == cli.EXIT_DECLINED
    assert not marker.exists()
    out = capsys.readouterr().out
    assert out.startswith("flip stack prod\n  1. set devtools:liveColor = blue on stack prod\n")
    assert out.endswith("Go ahead? [y/N] declined: nothing changed\n")
