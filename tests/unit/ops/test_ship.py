"""The laptop side of a rollout: exact ssh argv; what runs on the host comes from agent.remote."""

from pathlib import Path

import pytest

from agent.remote import agent_command
from components.tiers import tier_compose
from ops import ship
from ops.ship import SshTarget
from standin import localenv
from tests.compose_services import SERVICES

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


COMPOSE = (Path(__file__).resolve().parents[3] / "compose" / "docker-compose.yml").read_text()
PINS = {s: f"127.0.0.1:5000/devtools/{s}@sha256:{'a' * 64}" for s in SERVICES}
DATA = ("rag-context", "state-persistence")


def test_a_color_ships_the_app_tier_reaching_the_data_tier_by_name_on_the_shared_network():
    tiered = ship.tier_release(COMPOSE, "app", PINS, {"HOST_PORT_PREFIX": "81"}, network="devtools-data")
    assert tiered.compose == tier_compose(COMPOSE, "app", network="devtools-data")
    assert sorted(tiered.images) == sorted(s for s in SERVICES if s not in DATA)
    assert tiered.env == {"HOST_PORT_PREFIX": "81", "RAG_URL": "http://rag-context:8007",
                          "STATE_URL": "http://state-persistence:8008"}
    nowhere = ship.tier_release(COMPOSE, "app", PINS, {"STATE_URL": "http://127.0.0.1:9"}, network="n")
    assert nowhere.env["STATE_URL"] == "http://127.0.0.1:9"


def test_the_data_tier_ships_its_own_services_and_no_address():
    tiered = ship.tier_release(COMPOSE, "data", PINS, {}, network="devtools-data")
    assert tiered.compose == tier_compose(COMPOSE, "data", network="devtools-data")
    assert (sorted(tiered.images), tiered.env) == (list(DATA), {})
    with pytest.raises(ValueError) as caught:
        ship.tier_release(COMPOSE, "data", {"rag-context": PINS["rag-context"]}, {}, network="devtools-data")
    assert str(caught.value) == "--pins: no image for state-persistence of the data tier (build them with ops.build)"


def test_the_stand_in_checks_a_color_and_the_data_tier_by_their_prefix_and_selector():
    local = localenv.load({})
    assert ship.local_checks(local, "green", None) == ("81", 'color="green"')
    assert ship.local_checks(local, "blue", "app") == ("82", 'color="blue"')
    assert ship.local_checks(local, "data", "data") == ("83", 'color="data"')
    assert ship.local_checks(local, "release", None) is None
