"""`ops.cli data` without an engine or a host: the stack's outputs from memory (stack_fakes.StackPulumi), the SSH
call recorded instead of run. What reaches the host, what is asked, what the exit code says."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from ops import cli, data
from ops.operator_host import Pulumi
from ops.ship import SshTarget

from .stack_fakes import StackPulumi

AGENT = "cd /opt/devtools/code && /opt/devtools/venv/bin/python -m agent.hostagent --root /opt/devtools"
LOCAL = {"data": {"hosts": {"names": ["127.0.0.1:2222"], "addresses": ["127.0.0.1"], "ports": [2222],
                            "sshUser": "root", "root": "/opt/devtools", "project": "data"}}}


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str, answer: int = 0,
        config: dict[str, str] | None = None) -> tuple[int, list[tuple[str, int, str]]]:
    calls: list[tuple[str, int, str]] = []

    def remote(target: SshTarget, command: str, timeout: float, capture: bool = False) -> tuple[int, str]:
        calls.append((target.host, target.port, command))
        return answer, "backups of project data in /opt/devtools/data/backups (oldest first):\n  none\n"

    monkeypatch.setattr(data, "remote", remote)
    pulumi = StackPulumi(tmp_path, {}, stacks={"local": LOCAL},
                         settings={"local": {"sshPrivateKeyPath": str(tmp_path / "id"), **(config or {})}})
    parsed = cli.build_parser().parse_args(["data", *args, "--stack", "local"])
    return data.run(pulumi, parsed, env={}), calls


def test_backup_runs_the_host_agent_with_the_stacks_keep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, calls = run(tmp_path, monkeypatch, "backup", "--label", "before-upgrade", config={"dataBackupKeep": "3"})
    assert code == 0
    assert calls == [("127.0.0.1", 2222, f"{AGENT} --project data backup --label before-upgrade --keep 3")]
    assert capsys.readouterr().out == ("==> backup of project data on 127.0.0.1:2222 (127.0.0.1:2222), the newest 3 "
                                       "kept\n")


@pytest.mark.parametrize(("host", "cli_code"), [(1, 1), (2, 2), (3, 1), (4, 1)])
def test_the_host_agents_exit_code_becomes_the_clis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: int,
                                                    cli_code: int) -> None:
    """Rule: refused or bad input on the host (2) stays 2; a failure, a lock held too long or a critical end is 1.
    Risk: CI reading a lock timeout (3) as `declined`."""
    assert run(tmp_path, monkeypatch, "backup", answer=host)[0] == cli_code


def test_backups_lists_what_the_host_keeps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, calls = run(tmp_path, monkeypatch, "backups")
    assert (code, calls) == (0, [("127.0.0.1", 2222, f"{AGENT} --project data backups")])
    assert capsys.readouterr().out == "backups of project data in /opt/devtools/data/backups (oldest first):\n  none\n"


def test_restore_prints_its_plan_and_asks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    class Tty:
        def isatty(self) -> bool:
            return True

        def readline(self) -> str:
            return "n\n"

    monkeypatch.setattr(sys, "stdin", Tty())
    code, calls = run(tmp_path, monkeypatch, "restore", "--backup", "20261202T120000Z", "--into", "data-restore")
    assert (code, calls) == (cli.EXIT_DECLINED, [])
    assert capsys.readouterr().out == (
        "restore backup 20261202T120000Z of project data into project data-restore on host 127.0.0.1:2222, only into "
        "volumes that are missing or empty (refused otherwise, nothing changed)\n"
        "  1. on root@127.0.0.1:2222\n"
        f"      $ {AGENT} --project data-restore restore-backup 20261202T120000Z --from-project data\n"
        "Go ahead? [y/N] declined: nothing changed\n")
    code, calls = run(tmp_path, monkeypatch, "restore", "--backup", "20261202T120000Z", "--replace", "--yes",
                      answer=2)
    assert (code, calls) == (2, [("127.0.0.1", 2222, f"{AGENT} --project data restore-backup 20261202T120000Z "
                                                      "--from-project data --replace")])


@pytest.mark.parametrize(("args", "message"), [
    (["backup", "--label", "x y"], "--label 'x y' must be 1-40 letters"),
    (["restore", "--backup", "yesterday", "--yes"], "--backup 'yesterday' is not a backup id"),
])
def test_bad_input_stops_before_any_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    calls: list[Any] = []

    def remote(*args: Any, **_kwargs: Any) -> tuple[int, str]:
        calls.append(args)
        return 0, ""

    monkeypatch.setattr(data, "remote", remote)
    pulumi = StackPulumi(tmp_path, {}, stacks={"local": LOCAL}, settings={"local": {}})
    monkeypatch.setattr(Pulumi, "find", classmethod(lambda cls, cwd, env: pulumi))
    assert cli.main(["data", *args, "--stack", "local"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {message}")
    assert calls == []
