"""The example application for real: ops.build builds and pushes it into the registry, docker compose runs the
pinned images from compose/docker-compose.yml on 127.0.0.1:83xx, and every service answers as the file's
labels promise. Then deliberately broken images break the way their variant says. (MCP: test_example_mcp.py.)

Needs dockerd and the registry at REGISTRY_ADDR (see tests/e2e/conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.containers import PROJECT_LABEL, SERVICE_LABEL
from agent.release import render_release_env
from agent.validate.catalog import HEALTH, parse_health_label
from standin import localenv
from tests import compose_services
from tests.e2e.conftest import build_release, dev_config

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "exapp-test"
PORT_PREFIX = "83"
COMPOSE_FILE = ROOT / "compose" / "docker-compose.yml"
SERVICES = sorted(compose_services.SERVICES)
BROKEN = {"orchestrator": "unhealthy", "feature-dev": "slow", "code-review": "crash"}


def env_file(pins: dict[str, Any], path: Path) -> Path:
    path.write_text(render_release_env(pins["release"], pins["images"], {}))
    return path


def compose(release_env: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_IMAGE") and k != "RELEASE_ID"}
    env.update(HOST_PORT_PREFIX=PORT_PREFIX, SECRETS_ENV_FILE="/dev/null", COMPOSE_PROFILES="")
    argv = ["docker", "compose", "-p", PROJECT, "-f", str(COMPOSE_FILE), "--env-file", str(release_env), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)


def state(service: str) -> dict[str, Any]:
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={PROJECT_LABEL}={PROJECT}",
                          "--filter", f"label={SERVICE_LABEL}={service}"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert len(ids) == 1, f"expected one {service} container, found {ids}"
    out = subprocess.run(["docker", "inspect", "--format", "{{json .}}", ids[0]], capture_output=True, text=True,
                         check=True).stdout
    data: dict[str, Any] = json.loads(out)
    return data


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        seen = check()
        if seen:
            return seen
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not seen within {timeout:.0f}s")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def labels() -> dict[str, dict[str, str]]:
    config = dev_config()
    return {name: s.get("labels", {}) for name, s in config["services"].items()}


def health_target(labels: dict[str, dict[str, str]], service: str) -> tuple[int, str]:
    """(container port, path) of the service's health label, by the validator's rule."""
    target = parse_health_label(labels[service][HEALTH])
    assert target is not None, (service, labels[service])
    return target


def url(labels: dict[str, dict[str, str]], service: str, path: str) -> str:
    return f"http://127.0.0.1:{PORT_PREFIX}{health_target(labels, service)[0] % 100:02d}{path}"


@pytest.fixture(scope="module")
def release(local_env: localenv.LocalEnv) -> dict[str, Any]:
    started = time.monotonic()
    pins = build_release(local_env, f"exapp-{int(time.time())}")
    print(f"built {len(pins['images'])} images in {time.monotonic() - started:.1f}s")
    return pins


@pytest.fixture(scope="module")
def app(release: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    release_env = env_file(release, tmp_path_factory.mktemp("exapp") / "release.env")
    started = time.monotonic()
    up = compose(release_env, "up", "-d", "--wait", "--wait-timeout", "60")
    try:
        assert up.returncode == 0, f"compose up failed:\n{up.stderr[-3000:]}"
        print(f"all services healthy in {time.monotonic() - started:.1f}s")
        yield release_env
    finally:
        down = compose(release_env, "down", "--timeout", "5")
        assert down.returncode == 0, down.stderr


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5, trust_env=False) as client:
        yield client


def test_pins_name_one_digest_per_service_in_the_registry(release: dict[str, Any],
                                                          local_env: localenv.LocalEnv) -> None:
    assert sorted(release) == ["built_at", "commit", "images", "release"]
    assert sorted(release["images"]) == SERVICES
    for name, ref in release["images"].items():
        assert re.fullmatch(rf"{re.escape(local_env.registry)}/devtools/{name}@sha256:[0-9a-f]{{64}}", ref), ref
    assert len(set(release["images"].values())) == len(SERVICES)


def test_rebuilding_unchanged_source_keeps_every_digest(release: dict[str, Any],
                                                        local_env: localenv.LocalEnv) -> None:
    again = build_release(local_env, f"{release['release']}-again")
    assert again["images"] == release["images"]


def test_changing_one_service_changes_only_its_image(release: dict[str, Any], local_env: localenv.LocalEnv,
                                                     tmp_path: Path) -> None:
    app_root = tmp_path / "app"
    shutil.copytree(ROOT / "examples" / "app", app_root)
    conf = app_root / "services" / "cicd" / "service.conf"
    conf.write_text(conf.read_text().replace("SVC_VERSION=1.0.0", "SVC_VERSION=1.0.1"))
    changed = build_release(local_env, f"{release['release']}-cicd", app_root=app_root)
    differ = sorted(s for s in SERVICES if changed["images"][s] != release["images"][s])
    assert differ == ["cicd"]


def test_every_service_is_healthy(app: Path, labels: dict[str, dict[str, str]], http: httpx.Client) -> None:
    # A service reports the RELEASE_ID its environment carries, "unknown" when the compose file gives none.
    config = json.loads(compose(app, "config", "--format", "json").stdout)["services"]
    release_ids = {s: config[s]["environment"].get("RELEASE_ID", "unknown") for s in SERVICES}
    for service in SERVICES:
        response = http.get(url(labels, service, health_target(labels, service)[1]))
        assert response.status_code == 200, (service, response.text)
        assert response.json() == {"status": "healthy", "service": service, "release": release_ids[service]}
        assert state(service)["State"]["Health"]["Status"] == "healthy"


def test_every_agent_passes_its_e2e_probe(app: Path, labels: dict[str, dict[str, str]],
                                          http: httpx.Client) -> None:
    agents = sorted(s for s, lab in labels.items() if "devtools.check.e2e" in lab)
    assert agents == sorted(s for s, lab in labels.items() if lab.get("devtools.role") == "agent")
    assert agents  # which ones: tests/unit/agent/test_catalog.py
    for agent in agents:
        method, path = labels[agent]["devtools.check.e2e"].split()
        response = http.request(method, url(labels, agent, path), content=b"{}",
                                headers={"Content-Type": "application/json"})
        assert response.status_code == 200, (agent, response.text)
        assert labels[agent]["devtools.check.e2e.expect"] in response.text
        assert response.json()["agent"] == agent


def requests_total(http: httpx.Client, metrics_url: str, code: str) -> int:
    text = http.get(metrics_url).text
    match = re.search(rf'^http_requests_total{{service="orchestrator",code="{code}",status="{code}"}} (\d+)$',
                      text, re.M)
    return int(match.group(1)) if match else 0


def test_metrics_count_every_request_even_concurrent_ones(app: Path, labels: dict[str, dict[str, str]],
                                                          http: httpx.Client) -> None:
    metrics = url(labels, "orchestrator", labels["orchestrator"]["devtools.metrics"])
    before = requests_total(http, metrics, "404")
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda i: http.get(url(labels, "orchestrator", f"/missing/{i}")).status_code,
                              range(16)))
    assert codes == [404] * 16
    assert requests_total(http, metrics, "404") == before + 16
    assert requests_total(http, metrics, "200") > 0
    assert "# TYPE http_requests_total counter" in http.get(metrics).text


def test_stores_keep_records_on_their_volume(app: Path, labels: dict[str, dict[str, str]],
                                             http: httpx.Client) -> None:
    expected = {}
    for service, route in (("state-persistence", "/state"), ("rag-context", "/documents")):
        before = http.get(url(labels, service, route)).json()["records"]
        posted = http.post(url(labels, service, route), content=b'{"task":"t1"}\n')
        assert (posted.status_code, posted.json()) == (201, {"service": service, "records": before + 1})
        expected[service] = before + 1
    old_id = state("state-persistence")["Id"]
    recreated = compose(app, "up", "-d", "--force-recreate", "--wait", "--wait-timeout", "30", "state-persistence")
    assert recreated.returncode == 0, recreated.stderr
    assert state("state-persistence")["Id"] != old_id
    after = http.get(url(labels, "state-persistence", "/state")).json()
    assert after == {"service": "state-persistence", "records": expected["state-persistence"]}


def test_each_request_is_logged(app: Path, labels: dict[str, dict[str, str]], http: httpx.Client) -> None:
    http.get(url(labels, "cicd", "/?logged=yes"))
    logs = compose(app, "logs", "--no-log-prefix", "cicd").stdout
    assert re.search(r"^\S+Z cicd GET / 200 \d+$", logs, re.M), logs[-2000:]


def test_broken_variants_break_as_named(app: Path, release: dict[str, Any], local_env: localenv.LocalEnv,
                                        labels: dict[str, dict[str, str]], http: httpx.Client) -> None:
    broken_args = [a for s, v in BROKEN.items() for a in ("--broken", f"{s}={v}")]
    broken = build_release(local_env, f"{release['release']}-b", "--services", ",".join(BROKEN), *broken_args)
    assert sorted(broken["images"]) == sorted(BROKEN)
    for service in BROKEN:
        assert broken["images"][service] != release["images"][service]
    mixed = env_file({**release, "images": {**release["images"], **broken["images"]}}, app.with_name("broken.env"))
    up = compose(mixed, "up", "-d", *BROKEN)
    assert up.returncode == 0, up.stderr

    health = url(labels, "orchestrator", "/health")
    answered = wait_for("orchestrator answering", lambda: _status(http, health), 20)
    assert answered == 503
    assert http.get(health).json()["status"] == "unhealthy"

    assert http.get(url(labels, "feature-dev", "/health")).status_code == 200
    with pytest.raises(httpx.ReadTimeout):
        http.post(url(labels, "feature-dev", "/e2e"), content=b"{}", timeout=3)

    wait_for("code-review restarting", lambda: state("code-review")["RestartCount"] >= 1, 20)
    logs = compose(mixed, "logs", "--no-log-prefix", "code-review").stdout
    assert "code-review: deliberately broken image (BROKEN=crash): exiting" in logs

    wait_for("orchestrator marked unhealthy",
             lambda: state("orchestrator")["State"]["Health"]["Status"] == "unhealthy", 45)
    assert state("feature-dev")["State"]["Health"]["Status"] in ("starting", "healthy")


def _status(http: httpx.Client, target: str) -> int | None:
    try:
        return http.get(target).status_code
    except httpx.HTTPError:
        return None
