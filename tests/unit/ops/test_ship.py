"""The laptop side of a rollout: exact ssh argv; what runs on the host comes from agent.remote."""

from pathlib import Path

from agent.remote import agent_command
from ops import ship
from ops.ship import SshTarget

TARGET = SshTarget("127.0.0.1", 2222, "root", Path("/s/id_ed25519"), Path("/s/known_hosts"))


def test_ssh_argv_checks_host_keys_and_never_prompts():
    assert TARGET.argv("true") == [
        "ssh", "-p", "2222", "-i", "/s/id_ed25519", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
        "-o", "UserKnownHostsFile=/s/known_hosts", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5",
        "-o", "ServerAliveCountMax=3", "root@127.0.0.1", "true",
    ]


def test_secrets_travel_on_stdin_not_argv():
    """The secrets command line must not carry a value: argv is visible in ps on both machines."""
    argv = TARGET.argv(agent_command("/opt/devtools", "green", ["secrets"]))
    assert argv[-1] == (
        "cd /opt/devtools/code && /opt/devtools/venv/bin/python -m agent.hostagent --root /opt/devtools "
        "--project green secrets"
    )


def test_the_upload_waits_for_the_project_lock_as_long_as_the_apply_would():
    """The upload swaps the agent code under the project's lock: `--lock-timeout` bounds both waits."""
    assert ship.lock_timeout([]) == 300
    assert ship.lock_timeout(["--validate-deadline", "20", "--lock-timeout", "2"]) == 2
    assert ship.lock_timeout(["--lock-timeout=7.5"]) == 8
