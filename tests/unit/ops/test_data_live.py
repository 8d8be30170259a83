"""`ops.cli data` on DigitalOcean: the volume snapshot and its retention through pydo against the loopback stand-in
of DigitalOcean's API (tests/unit/ops/do_standin.py); the host's side is recorded, not run (tests/e2e runs it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ops import cli, data
from ops.ship import SshTarget
from tests.ssh_test_keys import HOST_PUBLIC_KEY

from .do_standin import DoStandin
from .stack_fakes import StackPulumi

pytestmark = pytest.mark.live  # a loopback HTTPS server (tests/unit/conftest.py)

TOKEN = "dop_v1_" + "5" * 64
VOLUME = "506f78a4-e098-11e5-ad9f-000f53306ae1"
PROD = {"color": "green", "liveColor": "green",
        "data": {"hosts": {"names": ["devtools-prod-data-1"], "addresses": ["203.0.113.9"], "ports": [22],
                           "sshUser": "root", "sshHostKey": HOST_PUBLIC_KEY, "root": "/opt/devtools",
                           "project": "data", "dropletIds": [42]},
                 "volume": {"id": VOLUME, "name": "devtools-prod-data"}}}


@pytest.fixture
def do(tmp_path: Path) -> Iterator[DoStandin]:
    with DoStandin(tmp_path, TOKEN) as standin:
        standin.volumes.add(VOLUME)
        yield standin


def run(do: DoStandin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str, token: str = TOKEN,
        keep: str | None = None) -> tuple[int, list[str]]:
    (tmp_path / "Pulumi.yaml").write_text("name: devtools\nruntime: python\n")
    commands: list[str] = []

    def remote(target: SshTarget, command: str, timeout: float, capture: bool = False) -> tuple[int, str]:
        commands.append(command)
        return 0, ""

    monkeypatch.setattr(data, "remote", remote)
    monkeypatch.setattr(data, "clock", lambda: datetime(2026, 12, 2, 12, 0, 5, tzinfo=UTC))
    settings = {"sshPrivateKeyPath": str(tmp_path / "id"), **({"dataBackupKeep": keep} if keep else {})}
    pulumi = StackPulumi(tmp_path, {}, stacks={"prod": PROD}, settings={"prod": settings})
    parsed = cli.build_parser().parse_args(["data", *args, "--stack", "prod", "--api-url", do.url,
                                            "--ca-file", str(do.ca_file)])
    return data.run(pulumi, parsed, env={"DIGITALOCEAN_TOKEN": token} if token else {}), commands


def names(do: DoStandin) -> list[str]:
    return sorted(s["name"] for s in do.snapshots.values())


def test_backup_snapshots_the_volume_and_keeps_only_our_newest(do: DoStandin, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Rule: after the host's backup, the data volume is snapshotted as `<project>-data-<UTC>` and our snapshots
    beyond dataBackupKeep are deleted, oldest first; anybody else's stay. Risk: snapshots piling up on the bill, or
    the daily job deleting a snapshot someone took by hand before a migration."""
    for day in range(1, 4):
        do.add_snapshot(VOLUME, f"devtools-data-2026112{day}T030000Z")
    manual = do.add_snapshot(VOLUME, "before-migration")
    other = do.add_snapshot("11111111-2222-3333-4444-555555555555", "devtools-data-20261101T030000Z")
    code, commands = run(do, tmp_path, monkeypatch, "backup", keep="2")
    assert code == 0
    assert commands == ["cd /opt/devtools/code && /opt/devtools/venv/bin/python -m agent.hostagent --root "
                        "/opt/devtools --project data backup --keep 2"]
    assert names(do) == ["before-migration", "devtools-data-20261101T030000Z", "devtools-data-20261123T030000Z",
                         "devtools-data-20261202T120005Z"]
    assert manual in do.snapshots and other in do.snapshots
    created = [(p, b) for m, p, b in do.requests if m == "POST"]
    assert created == [(f"/v2/volumes/{VOLUME}/snapshots", {"name": "devtools-data-20261202T120005Z"})]
    taken = next(sid for sid, s in do.snapshots.items() if s["name"] == "devtools-data-20261202T120005Z")
    out = capsys.readouterr().out.splitlines()
    assert out[1:3] == ["==> snapshot devtools-data-20261202T120005Z of volume devtools-prod-data (DigitalOcean)",
                        f"snapshot devtools-data-20261202T120005Z taken (id {taken}, 1.5 GB)"]
    assert [line.split(" (id")[0] for line in out[3:]] == ["deleted snapshot devtools-data-20261121T030000Z",
                                                          "deleted snapshot devtools-data-20261122T030000Z"]


def test_backups_lists_our_snapshots_beside_the_hosts_backups(do: DoStandin, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    sid = do.add_snapshot(VOLUME, "devtools-data-20261201T030000Z")
    do.add_snapshot(VOLUME, "before-migration")
    code, commands = run(do, tmp_path, monkeypatch, "backups")
    assert code == 0 and commands[0].endswith("--project data backups")
    assert capsys.readouterr().out == (
        "snapshots of volume devtools-prod-data (DigitalOcean, oldest first):\n"
        f"  devtools-data-20261201T030000Z  id {sid}  1.5 GB  created 2026-12-01T10:00:00Z\n")


def test_no_token_refuses_before_the_host_is_touched(do: DoStandin, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, commands = run(do, tmp_path, monkeypatch, "backup", token="")
    assert (code, commands, do.requests) == (2, [], [])
    assert capsys.readouterr().err == (
        "error: data backup: DIGITALOCEAN_TOKEN is not set: on DigitalOcean the data tier's volume is snapshotted "
        "too (a token that may create, list and delete volume snapshots)\n")


def test_a_refused_token_fails_without_printing_it(do: DoStandin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, commands = run(do, tmp_path, monkeypatch, "backup", token="dop_v1_wrong")
    captured = capsys.readouterr()
    assert code == 1 and len(commands) == 1  # the host's backup ran; the snapshot was refused
    assert captured.err == ("error: data backup: DigitalOcean's API answered HTTP 401 (unauthorized: Unable to "
                            "authenticate you)\n")
    assert "dop_v1_wrong" not in captured.out + captured.err and TOKEN not in captured.out + captured.err
    assert do.snapshots == {}


