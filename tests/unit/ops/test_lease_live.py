"""`ops.cli ssh-lease` through pydo against a loopback stand-in of DigitalOcean's API (tests/unit/ops/do_standin.py):
the requests it sends, what it leaves behind, what it prints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ops import cli
from ops import lease as ssh_lease

from .do_standin import DoStandin

pytestmark = pytest.mark.live  # a loopback HTTPS server (tests/unit/conftest.py)

TOKEN = "dop_v1_" + "7" * 64
NOW = datetime(2026, 12, 2, 8, 30, tzinfo=UTC)
RUNNER = "52.170.12.7"
PROJECT_FILES = {"Pulumi.yaml": "name: devtools\nruntime: python\n",
                 "Pulumi.prod.yaml": "config:\n  devtools:sshAllowlist:\n    - 198.51.100.0/24\n",
                 "Pulumi.self.yaml": "config:\n  devtools:sshAllowlist:\n    - 52.170.12.0/24\n"}


@pytest.fixture
def do(tmp_path: Path) -> Iterator[DoStandin]:
    with DoStandin(tmp_path, TOKEN, public_ip=RUNNER) as standin:
        yield standin


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    for name, text in PROJECT_FILES.items():
        (root / name).write_text(text)
    return root


def lease(do: DoStandin, project: Path, action: str, *extra: str, token: str = TOKEN,
          env: dict[str, str] | None = None) -> int:
    args = cli.build_parser().parse_args(["ssh-lease", action, "--cwd", str(project), "--api-url", do.url,
                                          "--ca-file", str(do.ca_file), "--whats-my-ip", f"{do.url}/ip", *extra])
    return ssh_lease.run(args, {"DIGITALOCEAN_TOKEN": token, "GITHUB_RUN_ID": "4242", "GITHUB_RUN_ATTEMPT": "2",
                                **(env or {})}, now=NOW)


def test_open_admits_the_runner_until_the_ttl_and_close_removes_exactly_that_lease(
        do: DoStandin, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rule: open adds one firewall admitting <runner ip>/32 to port 22 of the stack's droplet tag, named with its
    expiry and holder, and records it; close deletes exactly that one. Risk: SSH left open to a runner address
    that GitHub hands to someone else next, or a close that removes the program's own firewall."""
    program = do.add_firewall("devtools-prod-ssh", ["198.51.100.0/24"])
    other = do.add_firewall("devtools-prod-ssh-lease-20261202t093000z-gh-99-1", ["20.1.2.3/32"])
    record = tmp_path / "lease.json"
    assert lease(do, project, "open", "--stack", "prod", "--ttl", "75", "--record", str(record)) == 0
    name = "devtools-prod-ssh-lease-20261202t094500z-gh-4242-2"
    created = [b for m, p, b in do.requests if (m, p) == ("POST", "/v2/firewalls")]
    assert created == [{"name": name, "tags": ["devtools-prod"], "droplet_ids": [],
                        "inbound_rules": [{"protocol": "tcp", "ports": "22",
                                           "sources": {"addresses": ["52.170.12.7/32"]}}],
                        "outbound_rules": []}]
    assert [b for m, p, b in do.requests if p == "/v2/tags"] == [{"name": "devtools-prod"}]
    fid = json.loads(record.read_text())["firewall_id"]
    assert json.loads(record.read_text()) == {
        "stack": "prod", "firewall_id": fid, "addresses": ["52.170.12.7/32"], "name": name,
        "expires": "2026-12-02T09:45:00+00:00", "holder": "gh-4242-2"}
    assert capsys.readouterr().out == (f"opened SSH lease {name}: 52.170.12.7/32 may reach port 22 of the droplets "
                                       "tagged devtools-prod until 2026-12-02T09:45:00+00:00\n")

    assert lease(do, project, "close", "--stack", "prod", "--record", str(record)) == 0
    assert set(do.firewalls) == {program, other}  # another job's live lease and the program's stay
    assert capsys.readouterr().out == f"closed this job's lease {name} (52.170.12.7/32)\n"


def test_a_lease_left_by_a_killed_job_is_closed_by_the_next_one(do: DoStandin, project: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Rule: open (every deploy, operate and drift run) first deletes the stack's expired leases; list exits 1 while
    one is left. Risk: a job killed before its always() step leaves port 22 open to its address for good."""
    stale = do.add_firewall("devtools-prod-ssh-lease-20261202t070000z-gh-17-1", ["20.9.9.9/32"])
    blue = do.add_firewall("devtools-blue-ssh-lease-20261202t070000z-gh-17-1", ["20.9.9.9/32"])
    assert lease(do, project, "list", "--stack", "prod") == 1
    assert capsys.readouterr().out == ("devtools-prod-ssh-lease-20261202t070000z-gh-17-1  20.9.9.9/32  until "
                                       "2026-12-02T07:00:00+00:00  EXPIRED\n")
    assert lease(do, project, "open", "--stack", "prod") == 0
    assert stale not in do.firewalls and blue in do.firewalls  # only this stack's leases
    out = capsys.readouterr().out
    assert out.startswith("closed expired lease devtools-prod-ssh-lease-20261202t070000z-gh-17-1 (20.9.9.9/32)\n")


def test_a_runner_the_allowlist_admits_needs_no_lease(do: DoStandin, project: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Rule: a self-hosted runner or bastion whose fixed address sshAllowlist holds opens nothing (and needs no
    firewall-writing token). Risk: a second path that duplicates the allowlist, or fails where the allowlist is
    the design."""
    record = tmp_path / "lease.json"
    assert lease(do, project, "open", "--stack", "self", "--record", str(record), token="") == 0
    assert [p for _m, p, _b in do.requests] == ["/ip"]
    assert json.loads(record.read_text()) == {"stack": "self", "firewall_id": None, "addresses": ["52.170.12.7/32"]}
    assert capsys.readouterr().out == ("52.170.12.7/32 is already admitted by sshAllowlist 52.170.12.0/24 of stack "
                                       "self: no lease needed\n")


def test_no_token_refuses_and_the_token_never_reaches_the_output(do: DoStandin, project: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Rule: the token comes from the environment only and is never printed, even when the API refuses it.
    Risk: a firewall-writing token in a CI log."""
    assert lease(do, project, "open", "--stack", "prod", token="") == 2
    assert capsys.readouterr().err == ("error: ssh-lease open: DIGITALOCEAN_TOKEN is not set: a lease needs a token "
                                       "that may create and delete firewalls\n")
    assert lease(do, project, "open", "--stack", "prod", token="dop_v1_wrong") == 1
    captured = capsys.readouterr()
    assert "dop_v1_wrong" not in captured.out + captured.err and TOKEN not in captured.out + captured.err
    assert captured.err == ("error: ssh-lease open: DigitalOcean's API answered HTTP 401 (unauthorized: Unable to "
                            "authenticate you)\n")
    assert not [p for m, p, _b in do.requests if m == "POST"]


def test_a_private_address_is_refused_before_any_call(do: DoStandin, project: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Rule: a lease admits one public address; a private or loopback one (a misread what's-my-IP answer) is refused.
    Risk: a lease that admits nothing useful, or a range."""
    assert lease(do, project, "open", "--stack", "prod", "--address", "10.0.0.5") == 1
    assert "10.0.0.5 is not a public address" in capsys.readouterr().err
    assert do.requests == []
