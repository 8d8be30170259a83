"""The example application for real: ops.build builds and pushes it into the registry, docker compose runs the
pinned images from compose/docker-compose.yml on 127.0.0.1:92xx (83xx is the stand-in's data tier), and every
service answers as the file's labels promise: the gateway forwards /state to the state service, agents are
degraded without it, the state service migrates its data directory. Then deliberately broken images break the
way their variant says. (MCP: test_example_mcp.py.)

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
PORT_PREFIX = "92"
COMPOSE_FILE = ROOT / "compose" / "docker-compose.yml"
SERVICES = sorted(compose_services.SERVICES)
BROKEN = {"orchestrator": "unhealthy", "feature-dev": "slow", "code-review": "crash",
          "state-persistence": "migrate"}


def env_file(pins: dict[str, Any], path: Path, extra: dict[str, str] | None = None) -> Path:
    path.write_text(render_release_env(pins["release"], pins["images"], extra or {}))
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


def test_the_gateway_forwards_state_to_the_state_service(app: Path, labels: dict[str, dict[str, str]],
                                                          http: httpx.Client) -> None:
    """Users' reads and writes of /state go through the gateway to STATE_URL (here the project's own service)."""
    direct = url(labels, "state-persistence", "/state")
    through = url(labels, "gateway-mcp", "/state")
    before = http.get(direct).json()["records"]
    read = http.get(through)
    assert (read.status_code, read.json()) == (200, {"service": "state-persistence", "records": before})
    written = http.post(through, content=b'{"note":"through the gateway"}',
                        headers={"Content-Type": "application/json"})
    assert (written.status_code, written.json()) == (201, {"service": "state-persistence", "records": before + 1})
    assert http.get(direct).json()["records"] == before + 1
    last = compose_exec_out(app, "state-persistence", "tail -n 1 /data/records.jsonl")
    assert last == '{"note":"through the gateway"}'
    empty = http.post(through, content=b"")
    assert (empty.status_code, empty.json()["error"]) == (400, "empty record")
    assert http.get(direct).json()["records"] == before + 1


def test_without_its_state_service_the_gateway_answers_502_and_agents_are_degraded(
        app: Path, release: dict[str, Any], labels: dict[str, dict[str, str]], http: httpx.Client) -> None:
    """STATE_URL pointing nowhere: /state through the gateway is a 502 naming STATE_URL, and each agent's e2e probe
    answers 503 "degraded" (the validator's E2E phase expects "status":"ok", so such a color fails it)."""
    nowhere = "http://127.0.0.1:9"
    cut = env_file(release, app.with_name("no-state.env"), {"STATE_URL": nowhere})
    try:
        up = compose(cut, "up", "-d", "--wait", "--wait-timeout", "30", "gateway-mcp", "orchestrator")
        assert up.returncode == 0, up.stderr
        answer = http.get(url(labels, "gateway-mcp", "/state"))
        assert answer.status_code == 502
        assert answer.json() == {"error": f"state unreachable at STATE_URL={nowhere}: wget: can't connect to remote "
                                          "host (127.0.0.1): Connection refused",
                                 "service": "gateway-mcp", "state_url": nowhere}
        assert http.post(url(labels, "gateway-mcp", "/state"), content=b'{"lost":1}').status_code == 502
        probe = http.post(url(labels, "orchestrator", "/e2e"), content=b"{}")
        assert probe.status_code == 503
        assert probe.json()["status"] == "degraded" and probe.json()["error"] == f"state unreachable at {nowhere}"
        assert labels["orchestrator"]["devtools.check.e2e.expect"] not in probe.text
    finally:
        back = compose(app, "up", "-d", "--wait", "--wait-timeout", "30", "gateway-mcp", "orchestrator")
        assert back.returncode == 0, back.stderr
    assert http.post(url(labels, "orchestrator", "/e2e"), content=b"{}").json()["status"] == "ok"


def test_the_state_service_migrates_its_data_directory(app: Path) -> None:
    """`migrate` (the service's devtools.migrate label) is a one-shot run: the schema version lands in DATA_DIR
    on the service's volume, the running service is not touched, and running it again is harmless."""
    assert dev_config()["services"]["state-persistence"]["labels"]["devtools.migrate"] == "migrate"
    server = state("state-persistence")["Id"]
    for was in ("none", "1.0.0"):
        if was == "none":
            compose_exec_out(app, "state-persistence", "rm -f /data/schema-version")
        run = compose(app, "run", "--rm", "--no-deps", "-T", "state-persistence", "migrate")
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip().splitlines()[-1] == f"state-persistence: migrated /data to schema 1.0.0 (was {was})"
        assert compose_exec_out(app, "state-persistence", "cat /data/schema-version") == "1.0.0"
    assert state("state-persistence")["Id"] == server
    refused = compose(app, "run", "--rm", "--no-deps", "-T", "state-persistence", "migrat")
    assert refused.returncode == 2
    assert "state-persistence: unknown argument 'migrat' (the only one is: migrate)" in refused.stderr


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

    # BROKEN=migrate: the service runs and answers; only its migration fails, writing nothing
    assert compose_exec_out(mixed, "state-persistence", "cat /data/schema-version") == "1.0.0"
    migration = compose(mixed, "run", "--rm", "--no-deps", "-T", "state-persistence", "migrate")
    assert migration.returncode == 1
    assert "state-persistence: deliberately broken image (BROKEN=migrate): the migration fails, nothing " \
           "written" in migration.stderr
    assert compose_exec_out(mixed, "state-persistence", "cat /data/schema-version") == "1.0.0"
    assert http.get(url(labels, "state-persistence", "/state")).status_code == 200

    wait_for("orchestrator marked unhealthy",
             lambda: state("orchestrator")["State"]["Health"]["Status"] == "unhealthy", 45)
    assert state("feature-dev")["State"]["Health"]["Status"] in ("starting", "healthy")
    assert state("state-persistence")["State"]["Health"]["Status"] in ("starting", "healthy")


def compose_exec_out(release_env: Path, service: str, command: str) -> str:
    """A shell command's output in the project's running container of `service` (must succeed)."""
    proc = compose(release_env, "exec", "-T", service, "sh", "-c", command)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _status(http: httpx.Client, target: str) -> int | None:
    try:
        return http.get(target).status_code
    except httpx.HTTPError:
        return None
