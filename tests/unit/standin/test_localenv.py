"""standin.localenv: scripts/local.env's addresses as the shell script reads them, the environment winning."""

from __future__ import annotations

from pathlib import Path

from standin import localenv


def test_the_data_tier_has_its_port_prefix_and_network() -> None:
    env = localenv.load({})
    assert (env.data_port_prefix, env.data_network) == ("83", "devtools-data")
    assert env.port_prefix == {"green": "81", "blue": "82"}
    assert env.data_port_prefix not in env.port_prefix.values()
    assert (env.host_root, env.lb_url) == (Path("/opt/devtools"), "http://127.0.0.1:8080")


def test_the_environment_wins_as_in_the_shell_script() -> None:
    env = localenv.load({"DATA_PORT_PREFIX": "93", "DATA_NETWORK": "mine-data"})
    assert (env.data_port_prefix, env.data_network) == ("93", "mine-data")
