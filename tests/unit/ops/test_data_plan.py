"""ops.data_plan: the data tier read from a stack's outputs (every value checked, refused naming its output), the
host agent commands `ops.cli data` runs there, and which volume snapshots it keeps, as exact strings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ops import data_plan as dp
from ops.operator_plan import HostAccess, PlanError
from tests.ssh_test_keys import HOST_PUBLIC_KEY

VOLUME = "506f78a4-e098-11e5-ad9f-000f53306ae1"


def outputs(**hosts: Any) -> dict[str, Any]:
    base = {"names": ["devtools-prod-data-1"], "addresses": ["203.0.113.9"], "ports": [22], "sshUser": "root",
            "sshHostKey": HOST_PUBLIC_KEY, "root": "/opt/devtools", "project": "data", "dropletIds": [42]}
    return {"color": "green", "data": {"hosts": base | hosts, "volume": {"id": VOLUME, "name": "devtools-prod-data"}}}


def local() -> dict[str, Any]:
    return {"data": {"hosts": {"names": ["127.0.0.1:2222"], "addresses": ["127.0.0.1"], "ports": [2222],
                               "sshUser": "root", "root": "/opt/devtools", "project": "data"}}}


def test_the_data_tier_of_a_droplet_stack_and_of_the_local_one() -> None:
    tier = dp.data_tier_of("prod", outputs())
    assert tier == dp.DataTier(HostAccess("devtools-prod-data-1", "203.0.113.9", 22, "root", HOST_PUBLIC_KEY,
                                          "/opt/devtools", "data"), VOLUME, "devtools-prod-data")
    assert dp.data_tier_of("local", local()) == dp.DataTier(
        HostAccess("127.0.0.1:2222", "127.0.0.1", 2222, "root", "", "/opt/devtools", "data"), None, None)


@pytest.mark.parametrize(("given", "message"), [
    ({"color": "green"}, "stack prod exports no data tier (output data.hosts): the data tier belongs to the stack "
                         "that owns the traffic (prod; locally `local`); run `pulumi up --stack prod` first"),
    (outputs(sshUser="-oProxyCommand=touch /tmp/x"),
     "stack prod's output data.hosts.sshUser \"-oProxyCommand=touch /tmp/x\" is not"),
    (outputs(root="/opt/../etc"), "stack prod's output data.hosts.root \"/opt/../etc\" is not"),
    (outputs(project="../green"), "stack prod's output data.hosts.project \"../green\" is not a project name"),
    (outputs(names=["../../x"]), "stack prod's output data.hosts.names[0] \"../../x\" is not a plain name"),
    (outputs(addresses=["-J evil"]), "stack prod's output data.hosts.addresses[0] \"-J evil\" is not an IP address"),
    (outputs(names=["a", "b"], addresses=["203.0.113.9", "203.0.113.10"], ports=[22, 22]),
     "stack prod's outputs data.hosts.names, .addresses and .ports must list the one data host: refusing to use "
     "them"),
    (outputs(sshHostKey=""), "stack prod's data droplet exports no pinned host key (data.hosts.sshHostKey): "
                             "refusing to trust whatever key it shows"),
    (outputs(sshHostKey="ssh-ed25519 AAAAnotakey"), "stack prod's output data.hosts.sshHostKey is not an OpenSSH "
                                                    "public key"),
    ({"data": {"hosts": {"addresses": ["203.0.113.9"]}}},
     "stack prod's output data.hosts lacks names, ports, sshUser, root, project: it was written by an older "
     "program"),
])
def test_what_the_stack_exports_is_checked_before_use(given: dict[str, Any], message: str) -> None:
    """Rule: every value of `data` that reaches ssh's argv, known_hosts, a remote command or a path is checked by
    the same rules as `hosts` and refused naming the output. Risk: `sshUser: -oProxyCommand=…` runs a command on
    the operator's laptop or in CI."""
    with pytest.raises(PlanError) as refused:
        dp.data_tier_of("prod", given)
    assert str(refused.value).startswith(message)


def test_a_droplet_data_tier_must_name_its_volume() -> None:
    """Rule: on DigitalOcean the volume is snapshotted too; an export without it is refused, not skipped. Risk: a
    daily job that reports success and never takes the off-host copy."""
    given = outputs()
    del given["data"]["volume"]
    with pytest.raises(PlanError, match=r"^stack prod's output data.volume.id None is not a DigitalOcean volume id: "
                                        r"the data droplet's block volume is what `data backup` snapshots"):
        dp.data_tier_of("prod", given)
    given["data"]["volume"] = {"id": VOLUME, "name": "Bad Name"}
    with pytest.raises(PlanError, match=r"^stack prod's output data.volume.name 'Bad Name' is not a DigitalOcean "
                                        r"volume name$"):
        dp.data_tier_of("prod", given)


def test_the_host_agent_commands() -> None:
    tier = dp.data_tier_of("prod", outputs())
    agent = "cd /opt/devtools/code && /opt/devtools/venv/bin/python -m agent.hostagent --root /opt/devtools"
    assert dp.backup_command(tier, "before-upgrade", 7) == (
        f"{agent} --project data backup --label before-upgrade --keep 7")
    assert dp.backup_command(tier, None, 3) == f"{agent} --project data backup --keep 3"
    assert dp.backups_command(tier) == f"{agent} --project data backups"
    assert dp.restore_command(tier, "20261202T120000Z", "data-restore", False) == (
        f"{agent} --project data-restore restore-backup 20261202T120000Z --from-project data")
    assert dp.restore_command(tier, "20261202T120000Z-2", None, True) == (
        f"{agent} --project data restore-backup 20261202T120000Z-2 --from-project data --replace")
    assert dp.restore_plan(tier, "20261202T120000Z", "data-restore", False) == (
        "restore backup 20261202T120000Z of project data into project data-restore on host devtools-prod-data-1, "
        "only into volumes that are missing or empty (refused otherwise, nothing changed)\n"
        "  1. on root@203.0.113.9:22\n"
        f"      $ {agent} --project data-restore restore-backup 20261202T120000Z --from-project data")
    assert dp.restore_plan(tier, "20261202T120000Z", None, True).splitlines()[0] == (
        "restore backup 20261202T120000Z of project data into project data on host devtools-prod-data-1, "
        "replacing what its volumes hold (a backup of it is taken first)")


@pytest.mark.parametrize(("call", "message"), [
    (lambda t: dp.restore_command(t, "latest; rm -rf /", None, False),
     "--backup 'latest; rm -rf /' is not a backup id (such as 20261202T120000Z): `python -m ops.cli data backups` "
     "lists them"),
    (lambda t: dp.restore_command(t, "20261202T120000Z", "Data Copy", False),
     "--into 'Data Copy' is not a project name (lowercase letters, digits, '_' or '-', starting with a letter or "
     "digit)"),
    (lambda t: dp.backup_command(t, "a b", 7),
     "--label 'a b' must be 1-40 letters, digits, '.', '_' or '-', starting with a letter or digit"),
])
def test_operator_input_is_refused_before_it_reaches_a_remote_shell(call: Any, message: str) -> None:
    with pytest.raises(PlanError) as refused:
        call(dp.data_tier_of("prod", outputs()))
    assert str(refused.value) == message


def test_backup_keep_comes_from_the_stack_config() -> None:
    assert dp.backup_keep(None) == 7 and dp.backup_keep("") == 7 and dp.backup_keep("12") == 12
    for bad in ("0", "101", "-1", "seven"):
        with pytest.raises(PlanError, match=rf"^devtools:dataBackupKeep '{bad}' is not a whole number from 1 to 100: "
                                            r"set it with `pulumi config set devtools:dataBackupKeep 7`$"):
            dp.backup_keep(bad)


def test_only_our_snapshots_beyond_the_newest_are_deleted() -> None:
    """Rule: snapshots are named `<project>-data-<UTC>`; retention deletes only those, oldest first, never the one
    just taken. Risk: a manual snapshot someone took before a migration deleted by the daily job."""
    assert dp.snapshot_name("devtools", datetime(2026, 12, 2, 12, 0, 5, tzinfo=UTC)) == "devtools-data-20261202T120005Z"
    snapshots = [{"id": f"s{i}", "name": f"devtools-data-2026120{i}T030000Z"} for i in range(1, 6)]
    snapshots += [{"id": "m", "name": "before-migration"}, {"id": "o", "name": "other-data-20261201T030000Z"},
                  {"id": "x", "name": "devtools-data-20261201T030000Z-copy"}]
    assert [s["id"] for s in dp.snapshots_to_delete(snapshots, "devtools", 3, "s5")] == ["s1", "s2"]
    assert [s["id"] for s in dp.snapshots_to_delete(snapshots, "devtools", 1, "s1")] == ["s2", "s3", "s4"]
    assert dp.render_snapshots(snapshots[:1], "devtools") == (
        "  devtools-data-20261201T030000Z  id s1  ? GB  created ?")
    assert dp.render_snapshots(snapshots[5:], "devtools") == "  none"
