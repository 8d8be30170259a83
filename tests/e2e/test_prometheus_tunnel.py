"""The release analysis reaches a host's own Prometheus (edge profile, published on the host's 127.0.0.1 only)
through an SSH local forward: here the stand-in's sshd and the stand-in's Prometheus, both real, on loopback."""

from __future__ import annotations

import dataclasses
import socket

import httpx
import pytest

from ops.operator_host import CliError, prometheus_tunnel
from ops.ship import SshTarget
from standin import localenv
from tests.e2e.conftest import local_env  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e


def _target(env: localenv.LocalEnv) -> SshTarget:
    return SshTarget(env.ssh_host, env.ssh_port, env.ssh_user, env.ssh_key, env.known_hosts)


def test_the_tunnel_answers_as_the_hosts_prometheus_and_closes(local_env: localenv.LocalEnv) -> None:  # noqa: F811
    with prometheus_tunnel(_target(local_env), local_env.prometheus_port) as url:
        assert url.startswith("http://127.0.0.1:") and not url.endswith(f":{local_env.prometheus_port}")
        answer = httpx.get(f"{url}/api/v1/query", params={"query": "up"}, timeout=10, trust_env=False).json()
        assert answer["status"] == "success" and answer["data"]["result"], answer
        port = int(url.rsplit(":", 1)[1])
    # the forward ends with the block: nothing is left listening on its port
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_a_host_that_refuses_ssh_is_a_clear_error(local_env: localenv.LocalEnv) -> None:  # noqa: F811
    wrong = dataclasses.replace(_target(local_env), port=1)  # nothing listens on port 1
    with pytest.raises(CliError, match=r"ssh tunnel to 127\.0\.0\.1:\d+ ended \(exit 255\)"), \
            prometheus_tunnel(wrong, local_env.prometheus_port):
        pass
