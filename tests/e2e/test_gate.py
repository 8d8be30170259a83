"""The Pulumi gate and a pool host's provisional release, over real SSH on the stand-in: a gate that fails after a
good apply puts the previous release back with a debug bundle (the command the program runs, from
components.commands), and a release the pool never confirms goes back by itself, while a late confirm of it
activates it again.

The tests share one compose project and run in file order; `serving` tracks what must be running.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from components import commands
from components.config_slices import AgentPlace, ValidatorSettings
from standin import localenv
from tests.e2e.conftest import Host
from tests.e2e.releases import Serving, changed_app, variant

PROJECT, PREFIX = "gate", "88"


@pytest.fixture(scope="module")
def serving(local_env: localenv.LocalEnv, host: Host) -> Serving:
    return Serving.started(local_env, host, PROJECT, PREFIX, "gate-base")


def test_a_gate_that_fails_after_a_good_apply_puts_the_previous_release_back(serving: Serving,
                                                                              local_env: localenv.LocalEnv) -> None:
    """The apply passed (here: its own validation skipped), the Pulumi gate did not: the host must not stay on the
    new release without a bundle. The gate's command, as the program sends it over SSH, restores the previous
    release, writes a debug bundle, prints its summary last and still fails the update."""
    pins = variant(local_env, serving.pins, "gate-slow", "cicd", "--broken", "cicd=slow")
    n = len(serving.host.audit(PROJECT))
    applied = serving.ship(pins, "--no-validate")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert serving.host.status(PROJECT)["current"] == "gate-slow"
    script = commands.validate_script(AgentPlace(serving.host.root, PROJECT),
                                      ValidatorSettings(deadline=20, prometheus_url=None, prometheus_selector=""),
                                      "gate-slow")
    gate = serving.host.ssh(script, timeout=600)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    summary = commands.parse_gate_summary(gate.stdout)
    assert (summary["passed"], summary["release"]) == (False, "gate-slow")
    assert "e2e/cicd" in summary["failed"]
    assert "gate of gate-slow failed at validate: validation gate failed: " in gate.stdout
    assert "failing services: cicd" in gate.stdout
    assert f"previous release {serving.pins['release']} restored and serving" in gate.stdout
    status = serving.host.status(PROJECT)
    assert (status["current"], status["previous"]) == (serving.pins["release"], "gate-slow")
    assert serving.last_events(n) == ["apply.started", "apply.succeeded", "gate.failed", "rollback.succeeded"]
    failed = serving.host.audit(PROJECT)[n + 2]
    assert failed["services"] == ["cicd"] and (Path(failed["diagnostics"]) / "cicd.txt").is_file()
    serving.assert_serving()


def test_a_release_the_pool_never_confirms_goes_back_and_a_late_confirm_brings_it(
        serving: Serving, local_env: localenv.LocalEnv, tmp_path: Path) -> None:
    """Host 2 of a pool failed, so host 1 never hears `confirm`: its worker puts the release before back at the
    deadline (the pool does not stay mixed). Re-running the update confirms it at the end, which activates it
    again on a host that went back."""
    pins = variant(local_env, serving.pins, "gate-pool", "documentation",
                   app_root=changed_app(tmp_path, "documentation", "pool"))
    n = len(serving.host.audit(PROJECT))
    applied = serving.ship(pins, "--confirm-within", "5")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert f"provisional: back to {serving.pins['release']} unless confirmed within 5s" in applied.stdout
    deadline = time.monotonic() + 180
    while (status := serving.host.status(PROJECT))["current"] != serving.pins["release"] or status["pending"]:
        assert time.monotonic() < deadline, status
        time.sleep(2)
    assert status["provisional"] is None and status["previous"] == "gate-pool"
    assert serving.last_events(n) == ["apply.started", "apply.succeeded", "apply.unconfirmed", "rollback.succeeded"]
    serving.assert_serving()

    confirmed = serving.host.agent(PROJECT, "confirm", "--release", "gate-pool", timeout=600)
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    assert "release gate-pool confirmed" in confirmed.stdout
    assert serving.last_events(n)[4:] == ["apply.started", "apply.succeeded", "apply.confirmed"]
    serving.pins = pins
    serving.assert_serving()


def test_a_release_confirmed_in_time_stays(serving: Serving, local_env: localenv.LocalEnv, tmp_path: Path) -> None:
    pins = variant(local_env, serving.pins, "gate-kept", "documentation",
                   app_root=changed_app(tmp_path, "documentation", "kept"))
    n = len(serving.host.audit(PROJECT))
    applied = serving.ship(pins, "--confirm-within", "600")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert serving.host.status(PROJECT)["provisional"]["release"] == "gate-kept"
    confirmed = serving.host.agent(PROJECT, "confirm", "--release", "gate-kept")
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    assert "release gate-kept confirmed: it stays" in confirmed.stdout
    assert serving.host.status(PROJECT)["provisional"] is None
    assert serving.last_events(n) == ["apply.started", "apply.succeeded", "apply.confirmed"]
    serving.pins = pins
    serving.assert_serving()
