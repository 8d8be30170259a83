"""Registry credentials on a host: written from stdin into the docker config, mode 0600, never echoed."""

from __future__ import annotations

import base64
import io
import json
import stat
from pathlib import Path

import pytest

from agent import hostagent
from agent.registry_auth import config_path, install, read_auths

SERVER = "registry.digitalocean.com"
TOKEN = "dop_v1_read_only_expiring_0123456789"
AUTH = base64.b64encode(f"{TOKEN}:{TOKEN}".encode()).decode()
PULL = json.dumps({"auths": {SERVER: {"auth": AUTH}}})


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_docker_config_is_written_0600_in_a_0700_directory(tmp_path: Path) -> None:
    """What `docker compose pull` reads as root: ~/.docker/config.json, readable by its owner only."""
    path, servers = install(PULL, {"HOME": str(tmp_path)})
    assert path == tmp_path / ".docker" / "config.json"
    assert servers == [SERVER]
    assert json.loads(path.read_text()) == {"auths": {SERVER: {"auth": AUTH}}}
    assert (_mode(path), _mode(path.parent)) == (0o600, 0o700)
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json"]  # no temporary file left


def test_new_credentials_replace_their_servers_entry_and_keep_everything_else(tmp_path: Path) -> None:
    """Each release brings a new expiring credential; other registries and docker settings in the file stay."""
    (tmp_path / ".docker").mkdir(mode=0o755)
    old = {"auths": {SERVER: {"auth": "b2xkOm9sZA=="}, "ghcr.io": {"auth": "Z2g6Z2g="}}, "detachKeys": "ctrl-q"}
    (tmp_path / ".docker" / "config.json").write_text(json.dumps(old))
    path, _ = install(PULL, {"HOME": str(tmp_path)})
    assert json.loads(path.read_text()) == {"auths": {SERVER: {"auth": AUTH}, "ghcr.io": {"auth": "Z2g6Z2g="}},
                                            "detachKeys": "ctrl-q"}
    assert (_mode(path), _mode(path.parent)) == (0o600, 0o700)


def test_docker_config_in_the_environment_wins(tmp_path: Path) -> None:
    assert config_path({"HOME": "/root", "DOCKER_CONFIG": str(tmp_path)}) == tmp_path / "config.json"
    assert config_path({"HOME": "/root"}) == Path("/root/.docker/config.json")


@pytest.mark.parametrize(("text", "reason"), [
    (f"not json {TOKEN}", "not JSON"),
    (json.dumps({"auth": TOKEN}), "no `auths` object"),
    (json.dumps({"auths": {}}), "no `auths` object"),
    (json.dumps({"auths": {SERVER: {"auth": TOKEN + "!"}}}), f"{SERVER}: `auth` is not base64 of user:password"),
    (json.dumps({"auths": {SERVER: {"auth": base64.b64encode(TOKEN.encode()).decode()}}}),
     f"{SERVER}: `auth` is not base64 of user:password"),
], ids=["not json", "no auths", "empty auths", "not base64", "no colon"])
def test_bad_credentials_are_refused_without_their_value(text: str, reason: str) -> None:
    """A malformed credential changes nothing and the message says what is wrong, never the token."""
    with pytest.raises(ValueError) as err:
        read_auths(text)
    assert str(err.value) == f"registry credentials refused: {reason}"
    assert TOKEN not in str(err.value)


def test_hostagent_registry_auth_reads_stdin_and_names_only_the_servers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The rollout sends the credential on the SSH session's stdin (never argv); the agent writes it and says which
    registries it covers, in its output and its audit log, never the credential."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(PULL))
    assert hostagent.main(["--root", str(tmp_path / "root"), "--project", "green", "registry-auth"]) == 0
    assert json.loads((tmp_path / "home/.docker/config.json").read_text())["auths"][SERVER] == {"auth": AUTH}
    out = capsys.readouterr()
    assert out.out == (f"registry credentials for {SERVER} written to {tmp_path / 'home/.docker/config.json'} "
                       "(mode 0600)\n")
    audit = (tmp_path / "root/green/audit.jsonl").read_text()
    assert '"event": "registry.credentials"' in audit and '"servers": ["registry.digitalocean.com"]' in audit
    assert TOKEN not in out.out + out.err + audit and AUTH not in audit


def test_hostagent_registry_auth_refuses_bad_input_and_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"oops {TOKEN}"))
    assert hostagent.main(["--root", str(tmp_path / "root"), "--project", "green", "registry-auth"]) == 2
    assert not (tmp_path / "home").exists()
    err = capsys.readouterr().err
    assert err == "registry credentials refused: not JSON; nothing changed\n"
