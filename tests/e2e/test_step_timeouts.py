"""A step that outlives its timeout takes the same restore path as a step that fails, on the real stand-in.

Before, a `compose pull` (or the validator) that hung past its timeout escaped the release state machine as an
exception: the job ended critical (exit 4) without restoring or auditing the failure. Here one image of a
release lives in a registry that accepts connections and never answers, so the pull hangs; with
`--pull-timeout 5` the apply must fail at pull within seconds, the previous release must keep serving with its
data, and the audit must record the failure and the restore.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from standin import localenv
from tests.e2e.conftest import Host
from tests.e2e.releases import Serving

PROJECT, PREFIX = "timeouts", "90"


@pytest.fixture
def silent_registry() -> Iterator[str]:
    """host:port of a listener that accepts connections and never says a word (a registry stuck mid-answer)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


@pytest.fixture(scope="module")
def serving(local_env: localenv.LocalEnv, host: Host) -> Serving:
    return Serving.started(local_env, host, PROJECT, PREFIX, "timeouts-base")


def test_a_pull_that_hangs_past_its_timeout_restores_the_previous_release(serving: Serving,
                                                                           silent_registry: str) -> None:
    digest = "sha256:" + "5" * 64
    pins = {**serving.pins, "release": "timeouts-hang",
            "images": {**serving.pins["images"], "cicd": f"{silent_registry}/devtools/cicd@{digest}"}}
    n = len(serving.host.audit(PROJECT))
    started = time.monotonic()
    proc = serving.ship(pins, "--pull-timeout", "5")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "apply of timeouts-hang failed at pull: compose pull did not return within 5s" in proc.stdout
    assert "previous release timeouts-base restored and serving" in proc.stdout
    assert time.monotonic() - started < 120
    assert serving.last_events(n) == ["apply.started", "apply.failed", "rollback.succeeded"]
    assert serving.host.status(PROJECT)["current"] == "timeouts-base"
    serving.assert_serving()
