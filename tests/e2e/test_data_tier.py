"""The data tier on the stand-in: compose project `data` (83xx) keeps the records, the colors (their app tier, 81xx
and 82xx) reach it over the shared docker network, and haproxy (127.0.0.1:8080) sends users to the live color.

* Writes through a color survive flips, a bounded write load during the flips loses nothing and fails nothing, and
  the standby color can be destroyed and recreated: the record count only ever grows.
* A new state-persistence image is released to `data` alone: its migration runs, the data stays, no container of
  either color is recreated; a release whose migration fails, or whose service is unhealthy, is rolled back.
* A color that cannot reach its data fails the validator's E2E phase and its previous release comes back.

The tests share the stand-in's own projects (green, blue, data on its host root, as test_hostagent_over_ssh's flip
does) and run in file order. Release ids are fresh each run: that host root keeps its releases.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.containers import PROJECT_LABEL
from agent.validate.report import read_json
from standin import localenv
from tests.e2e.conftest import ROOT, Host, build_release, compose_exec
from tests.e2e.releases import FAST, variant
from tests.e2e.writeload import LOAD_CAP, WriteLoad

COLORS = ("green", "blue")


@dataclass
class Stack:
    host: Host
    env: localenv.LocalEnv
    pins: dict[str, Any]
    run_id: str
    live_before: str

    def ship(self, pins: dict[str, Any], project: str, *args: str, local_checks: bool = False,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """ops.ship of the project's tier. Without the local checks (no Prometheus phase: a rolled-back unhealthy
        release leaves 5xx in its error rate for a minute) the project's port prefix is given here."""
        tier = "data" if project == "data" else "app"
        settings = dict(env or {})
        if not local_checks:
            prefix = self.env.data_port_prefix if tier == "data" else self.env.port_prefix[project]
            settings.setdefault("HOST_PORT_PREFIX", prefix)
        return self.host.ship(pins, project, *FAST, *args, tier=tier, env=settings, local_checks=local_checks)

    def records(self, base: str | None = None) -> int:
        """The record count as a user reads it: GET /state through haproxy (or a color's own gateway)."""
        answer = httpx.get(f"{base or self.env.lb_url}/state", timeout=10, trust_env=False)
        assert answer.status_code == 200, answer.text
        count: int = answer.json()["records"]
        return count

    def gateway(self, color: str) -> str:
        return f"http://127.0.0.1:{self.env.gateway_port(color)}"


def served_by(env: localenv.LocalEnv) -> str:
    answer = httpx.get(f"{env.lb_url}/health", timeout=5, trust_env=False)
    assert answer.status_code == 200, answer.text
    return answer.headers["x-served-by"]


def flip(color: str) -> None:
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "local-env.sh"), "flip", color], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def write(base: str, record: dict[str, Any]) -> int:
    answer = httpx.post(f"{base}/state", content=json.dumps(record, separators=(",", ":")), timeout=10,
                        trust_env=False,
                        headers={"Content-Type": "application/json"})
    assert answer.status_code == 201, answer.text
    count: int = answer.json()["records"]
    return count


def containers(project: str) -> dict[str, tuple[str, str]]:
    """{container name: (id, StartedAt)} of the project's containers."""
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={PROJECT_LABEL}={project}"], capture_output=True,
                         text=True, check=True).stdout.split()
    if not ids:
        return {}
    out = subprocess.run(["docker", "inspect", "--format", "{{.Name}} {{.Id}} {{.State.StartedAt}}", *ids],
                         capture_output=True, text=True, check=True).stdout
    return {name.lstrip("/"): (cid, started) for name, cid, started in (line.split() for line in out.splitlines())}


def data_file(command: str) -> str:
    proc = compose_exec("data", "state-persistence", command)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def stack(local_env: localenv.LocalEnv) -> Iterator[Stack]:
    """The data tier, then both colors' app tier, each validated (Prometheus phase included); green takes traffic.
    Afterwards traffic goes back to the color that had it."""
    host = Host(local_env, str(local_env.host_root))
    run_id = uuid.uuid4().hex[:8]
    pins = build_release(local_env, f"tiers-{run_id}")
    live_before = served_by(local_env) if _answers(local_env.lb_url) else "green"
    s = Stack(host, local_env, pins, run_id, live_before)
    for project in ("data", *COLORS):
        proc = s.ship(pins, project, local_checks=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "validation passed" in proc.stdout
    if served_by(local_env) != "green":
        flip("green")
    yield s
    if served_by(local_env) != live_before:
        flip(live_before)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=5, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def test_writes_through_either_color_survive_flips_under_load(stack: Stack) -> None:
    """Records written through green are read through blue after a flip, more written through blue are read
    through green after the flip back; a write load during both flips has no failed request and no lost (or
    doubled) write; the count never goes down."""
    env, seen = stack.env, [stack.records()]
    before = seen[0]
    with WriteLoad(env.lb_url) as load:
        for i in range(5):
            write(env.lb_url, {"run": stack.run_id, "through": "green", "i": i})
        seen.append(stack.records())
        flip("blue")
        assert {served_by(env) for _ in range(3)} == {"blue"}
        seen.append(stack.records())
        assert stack.records(stack.gateway("blue")) >= before + 5
        for i in range(5):
            write(env.lb_url, {"run": stack.run_id, "through": "blue", "i": i})
        seen.append(stack.records())
        flip("green")
        assert {served_by(env) for _ in range(3)} == {"green"}
        seen.append(stack.records())
        assert load.running, f"the load ended before the second flip ({load.sent} requests)"
        time.sleep(1.0)
    final = stack.records()
    print(f"write load during the flips: {load.ok} written, {len(load.failed)} failed, count {before} → {final}")
    assert load.failed == [], load.failed[:10]
    assert 0 < load.ok <= LOAD_CAP
    assert final == before + 10 + load.ok, (before, load.ok, final)
    assert stack.records(stack.gateway("blue")) == stack.records(stack.gateway("green")) == final
    seen.append(final)
    assert seen == sorted(seen), seen
    ours = data_file(f"grep -c '\"run\":\"{stack.run_id}\",\"through\"' /data/records.jsonl")
    assert ours == "10"


def test_the_standby_color_destroyed_and_recreated_reads_the_same_records(stack: Stack) -> None:
    env = stack.env
    assert served_by(env) == "green"
    count = stack.records()
    stopped = stack.host.agent("blue", "stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert containers("blue") == {}  # compose down: no container of blue left (its volumes stay)
    assert stack.records() == count  # green serves on, from the same data
    write(env.lb_url, {"run": stack.run_id, "while": "blue is gone"})
    again = stack.ship(stack.pins, "blue", local_checks=True)
    assert again.returncode == 0, again.stdout + again.stderr
    assert stack.records(stack.gateway("blue")) == stack.records() == count + 1


def _new_version(tmp: Path, version: str) -> Path:
    """A copy of the example application whose state-persistence has another schema version (SVC_VERSION)."""
    app = tmp / f"app-{version}"
    shutil.copytree(ROOT / "examples" / "app", app, ignore=shutil.ignore_patterns("vendor"))
    conf = app / "services" / "state-persistence" / "service.conf"
    conf.write_text(conf.read_text().replace("SVC_VERSION=1.0.0", f"SVC_VERSION={version}"))
    return app


def test_a_data_release_migrates_keeps_the_data_and_leaves_the_colors_alone(stack: Stack, tmp_path: Path) -> None:
    """A new state-persistence image (a new schema version, unique to this run, so the schema file proves its
    migration ran now) goes to `data` alone; then one whose migration fails and one that is unhealthy are each
    rolled back: the previous release serves, the records are the same bytes, no color container was recreated,
    one `apply.failed` each."""
    env, audit = stack.env, len(stack.host.audit("data"))
    colors = {color: containers(color) for color in COLORS}
    assert all(colors.values()), colors
    version = f"1.1.{int(time.time())}"
    app = _new_version(tmp_path, version)
    v2 = variant(env, stack.pins, f"tiers-{stack.run_id}-v2", "state-persistence", app_root=app)
    assert v2["images"]["state-persistence"] != stack.pins["images"]["state-persistence"]
    records = data_file("sha256sum /data/records.jsonl")
    count = stack.records()

    applied = stack.ship(v2, "data")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert re.search(rf"state-persistence: state-persistence: migrated /data to schema {re.escape(version)} "
                     r"\(was [^)]+\)", applied.stdout), applied.stdout
    assert data_file("cat /data/schema-version") == version
    assert data_file("sha256sum /data/records.jsonl") == records
    assert stack.records() == count
    assert stack.host.status("data")["services"]["state-persistence"]["image"] == v2["images"]["state-persistence"]
    events = [e for e in stack.host.audit("data")[audit:] if e["event"] == "migrate.succeeded"]
    assert [(e["release"], e["service"], e["image"]) for e in events] == [
        (v2["release"], "state-persistence", v2["images"]["state-persistence"])]
    assert {color: containers(color) for color in COLORS} == colors

    for broken, stage in (("migrate", "migrate"), ("unhealthy", "up")):
        bad = variant(env, v2, f"tiers-{stack.run_id}-{broken}", "state-persistence", "--broken",
                      f"state-persistence={broken}", app_root=app)
        n = len(stack.host.audit("data"))
        failed = stack.ship(bad, "data")
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert f"apply of {bad['release']} failed at {stage}:" in failed.stdout
        assert "previous release " + v2["release"] + " restored and serving" in failed.stdout
        status = stack.host.status("data")
        assert (status["current"], status["pending"]) == (v2["release"], None)
        assert status["services"]["state-persistence"]["image"] == v2["images"]["state-persistence"]
        assert data_file("cat /data/schema-version") == version
        assert data_file("sha256sum /data/records.jsonl") == records
        assert stack.records() == count
        failures = [e for e in stack.host.audit("data")[n:] if e["event"] == "apply.failed"]
        assert [(e["release"], e["stage"]) for e in failures] == [(bad["release"], stage)]
        assert {color: containers(color) for color in COLORS} == colors
    assert write(env.lb_url, {"run": stack.run_id, "after": "data releases"}) == count + 1


def test_a_color_that_cannot_reach_its_data_fails_e2e_and_is_restored(stack: Stack) -> None:
    """The standby color's release with STATE_URL pointing nowhere passes health and MCP but fails the E2E phase
    (every agent answers "degraded"); its previous release is restored and reads the data again."""
    blue = stack.host.status("blue")["current"]
    cut = {**stack.pins, "release": f"tiers-{stack.run_id}-nostate"}
    n = len(stack.host.audit("blue"))
    # no local checks: the Prometheus phase would count the 503s too; the E2E phase alone must fail the color
    proc = stack.ship(cut, "blue", env={"STATE_URL": "http://127.0.0.1:9"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    match = re.search(r"apply of \S+ failed at validate: validation failed \(report (\S+)\)", proc.stdout)
    assert match, proc.stdout
    report = read_json(Path(match.group(1)))
    failed = {c.phase for c in report.checks if not c.passed}
    assert failed == {"e2e"}, [(c.name, c.detail) for c in report.checks if not c.passed]
    agents = sorted(c.service for c in report.checks if c.phase == "e2e")
    assert report.failed_services == agents and len(agents) == 6
    details = [c.detail for c in report.checks if c.phase == "e2e"]  # an excerpt of each agent's answer
    assert all(d.startswith('HTTP 503: {"status":"degraded"') and "state unreachable at http" in d for d in details), \
        details
    assert f"previous release {blue} restored and serving" in proc.stdout
    status = stack.host.status("blue")
    assert (status["current"], status["pending"]) == (blue, None)
    assert [e["event"] for e in stack.host.audit("blue")[n:]] == ["apply.started", "apply.failed",
                                                                  "rollback.succeeded"]
    probe = httpx.post(f"http://127.0.0.1:{stack.env.port_prefix['blue']}01/e2e", content=b"{}", timeout=10,
                       trust_env=False)
    assert probe.json()["status"] == "ok", probe.text
    assert stack.records(stack.gateway("blue")) == stack.records()
