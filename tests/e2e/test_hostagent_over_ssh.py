"""Releases over real SSH: apply + validate, a one-service change, history/rollback, and a green/blue flip."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import httpx

from agent.containers import PROJECT_LABEL, SERVICE_LABEL
from components.tiers import read_tiers
from standin import localenv
from tests.compose_services import SERVICES
from tests.e2e.conftest import ROOT, Host, build_release
from tests.e2e.releases import Serving, changed_app, variant


def container_ids(project: str) -> dict[str, str]:
    out = subprocess.run(
        ["docker", "ps", "--filter", f"label={PROJECT_LABEL}={project}", "--format",
         '{{.Label "' + SERVICE_LABEL + '"}} {{.ID}}'],
        capture_output=True, text=True, check=True,
    ).stdout
    return dict(line.split() for line in out.splitlines())


def test_apply_change_one_service_history_and_rollback(local_env: localenv.LocalEnv, host: Host,
                                                       tmp_path: Path) -> None:
    """A release validates; the next one changes one service and recreates exactly that container."""
    base = build_release(local_env, "rel-base")
    s = Serving(host, "release", "86", base)
    first = host.ship(base, "release", env={"HOST_PORT_PREFIX": "86"})
    assert first.returncode == 0, first.stdout + first.stderr
    assert "validation passed" in first.stdout
    s.write_marker()
    s.assert_serving()
    report = json.loads(next((Path(host.root) / "release" / "reports").glob("rel-base-*.json")).read_text())
    assert report["passed"] is True
    before = container_ids("release")
    assert len(before) == len(SERVICES)

    changed = variant(local_env, base, "rel-two", "code-review", app_root=changed_app(tmp_path, "code-review", "two"))
    assert changed["images"]["code-review"] != base["images"]["code-review"]
    second = host.ship(changed, "release", env={"HOST_PORT_PREFIX": "86"})
    assert second.returncode == 0, second.stdout + second.stderr
    after = container_ids("release")
    recreated = sorted(svc for svc in after if after[svc] != before.get(svc))
    assert recreated == ["code-review"]
    s.pins = changed
    s.assert_serving()

    history = host.agent("release", "history")
    assert "rel-base (previous)" in history.stdout and "rel-two (current)" in history.stdout

    back = host.agent("release", "rollback")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "rollback of rel-base succeeded" in back.stdout
    s.pins = base
    s.assert_serving()
    assert sorted(svc for svc, cid in container_ids("release").items() if cid != after[svc]) == ["code-review"]


def served_by(env: localenv.LocalEnv) -> str:
    r = httpx.get(env.lb_url + "/health", timeout=5)
    assert r.status_code == 200, r.text
    return r.headers["x-served-by"]


def flip(color: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(ROOT / "scripts/local-env.sh"), "flip", color], capture_output=True,
                          text=True, timeout=120, check=False)


def test_flip_between_green_and_blue_through_the_proxy(local_env: localenv.LocalEnv) -> None:
    """The data tier and both colors (their app tier) get a validated release (with the Prometheus phase); traffic
    follows each flip."""
    lb_host = Host(local_env, str(local_env.host_root))
    # the colors' host root persists across runs, and release ids are immutable there: a fresh id each run
    pins = build_release(local_env, f"flip-{uuid.uuid4().hex[:8]}")
    data = read_tiers((ROOT / "compose" / "docker-compose.yml").read_text()).data
    for project, tier, targets in (("data", "data", len(data)), ("green", "app", len(SERVICES) - len(data)),
                                   ("blue", "app", len(SERVICES) - len(data))):
        proc = lb_host.ship(pins, project, local_checks=True, tier=tier)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # the Prometheus phase ran against the real prometheus scraping this project's services (its tier's)
        assert re.search(rf"prometheus/up\s+pass\s+\d+\s+\S+\s+{targets} targets up", proc.stdout), proc.stdout
        assert re.search(r"prometheus/error-rate\s+pass", proc.stdout), proc.stdout
    start = served_by(local_env)
    other = "blue" if start == "green" else "green"
    for color in (other, start):
        proc = flip(color)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert {served_by(local_env) for _ in range(5)} == {color}
        assert (local_env.state / "live-color").read_text().strip() == color
