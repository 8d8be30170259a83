"""Pure parts of the rollout: reading compose ps, finding unhealthy services, status and history rendering."""

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent import compose_output
from agent import status as hoststatus
from agent.compose_output import compose_error, parse_ps, tail, unhealthy_services
from agent.containers import SERVICE_LABEL
from agent.release import image_env_key
from agent.status import render_history, running_services
from agent.store import Store
from tests.compose_services import SERVICES

DIGEST = "sha256:" + "b" * 64


def test_parse_ps_reads_lines_and_arrays():
    lines = '{"Service":"a","State":"running","Health":"healthy"}\n{"Service":"b","State":"exited","Health":""}\n'
    assert [r["Service"] for r in parse_ps(lines)] == ["a", "b"]
    assert [r["Service"] for r in parse_ps('[{"Service":"c"}]')] == ["c"]
    assert parse_ps("  \n") == []


def test_unhealthy_services():
    rows = [
        {"Service": "ok", "State": "running", "Health": "healthy"},
        {"Service": "nohc", "State": "running", "Health": ""},
        {"Service": "sick", "State": "running", "Health": "unhealthy"},
        {"Service": "loop", "State": "restarting", "Health": "starting"},
        {"Service": "dead", "State": "exited", "Health": ""},
    ]
    assert unhealthy_services(rows) == ["dead", "loop", "sick"]


def test_tail_keeps_last_lines():
    assert tail("1\n2\n3\n4\n", 2) == "3\n4"


def test_running_services_reports_digest_and_release():
    inspected: list[dict[str, Any]] = [{
        "Name": "/green-cicd-1", "Image": "sha256:" + "c" * 64, "RestartCount": 2,
        "Config": {"Image": "127.0.0.1:5000/devtools/cicd@" + DIGEST, "Env": ["A=1"],
                   "Labels": {SERVICE_LABEL: "cicd"}},
        "State": {"Status": "running", "Health": {"Status": "healthy"}},
    }, {"Name": "/other", "Config": {"Labels": {}}, "State": {}}]
    assert running_services(inspected) == {"cicd": {
        "container": "green-cicd-1", "state": "running", "health": "healthy", "restarts": 2,
        "image": "127.0.0.1:5000/devtools/cicd@" + DIGEST, "digest": DIGEST, "image_id": "sha256:" + "c" * 64,
    }}


def test_render_history():
    entries = [
        {"ts": "2026-01-01T00:00:00Z", "event": "apply.succeeded", "release": "r2", "previous": "r1"},
        {"ts": "2026-01-01T00:01:00Z", "event": "apply.failed", "release": "r3", "reason": "up: boom",
         "stage": "up"},
    ]
    assert render_history(entries, ["r1", "r2", "r3"], "r2", "r1") == (
        "releases kept (oldest first):\n"
        "  r1 (previous)\n"
        "  r2 (current)\n"
        "  r3\n"
        "events:\n"
        "  2026-01-01T00:00:00Z  apply.succeeded          r2                   previous r1\n"
        "  2026-01-01T00:01:00Z  apply.failed             r3                   up: boom at up"
    )
    assert render_history([], [], None, None) == "releases kept (oldest first):\n  none\nevents:\n  none"


def test_compose_file_reads_every_pin_from_the_release_env():
    """The prod compose file must take each service's image only from the pin the release writes."""
    text = (Path(__file__).resolve().parents[3] / "compose" / "docker-compose.yml").read_text()
    services = list(yaml.safe_load(text)["services"])
    built = [s for s in services if s not in ("proxy", "prometheus", "node-exporter")]
    assert built == list(SERVICES)
    for service in built:
        assert f"image: ${{{image_env_key(service)}:?release pin missing for {service}}}" in text
    assert all("build" not in spec for spec in yaml.safe_load(text)["services"].values())


def test_compose_error_drops_progress_lines():
    stderr = (
        " Container faults-cicd-1  Healthy\n"
        " Container faults-gateway-mcp-1  Waiting\n"
        " Network faults_default  Creating\n"
        "container faults-feature-dev-1 is unhealthy\n"
    )
    assert compose_error(stderr) == "container faults-feature-dev-1 is unhealthy"
    assert compose_error(" Container x-1  Healthy\n") == "Container x-1  Healthy"


@pytest.mark.parametrize(("reason", "settling"), [
    # both seen while dockerd restarted in the middle of an apply (tests/e2e/test_faults.py)
    ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?", True),
    ("Error response from daemon: task 0716f31918ab5188dd69127fe1c4497b772b0021d425588567ccb17b802269a2: "
     "already exists", True),
    # seen restoring the previous release right after that restart (a fresh-clone CI run)
    ("Error response from daemon: failed to start shim: mkdir /var/run/docker/containerd/daemon/io.containerd."
     "runtime.v2.task/moby/053cefaf77aac6c6388fed7acdd9adce0dda8054bdf7e6532bdf590fd794c2ec: file exists: unknown",
     True),
    ("Error response from daemon: mkdir /srv/data: file exists", False),
    ("dependency failed to start: container green-cicd-1 is unhealthy", False),
    ("Error response from daemon: manifest for 127.0.0.1:5000/devtools/cicd@sha256:00 not found", False),
    ("Error response from daemon: Conflict. The container name \"/x\" is already in use", False),
])
def test_engine_settling_names_only_a_down_or_restarting_engine(reason, settling):
    assert compose_output.engine_settling(reason) is settling


def test_history_shows_what_the_gate_the_pool_a_recovery_and_an_upload_did(tmp_path, monkeypatch):
    """An operator reads `hostagent history` to learn why a host runs what it runs: a failed gate, an unconfirmed
    pool release, a reconciled dead worker, a refused upload, a created network or a migration belong there (a
    secrets update does not)."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    store = Store(tmp_path, "green")
    store.ensure()
    for event in ("gate.failed", "apply.unconfirmed", "apply.worker_lost", "recover.succeeded", "upload.lock_timeout",
                  "secrets.updated", "network.created", "migrate.failed", "rollback.succeeded"):
        store.audit(event, release="r2")
    shown = [e["event"] for e in json.loads(hoststatus.history(store, 20, True))["events"]]
    assert shown == ["gate.failed", "apply.unconfirmed", "apply.worker_lost", "recover.succeeded",
                     "upload.lock_timeout", "network.created", "migrate.failed", "rollback.succeeded"]
