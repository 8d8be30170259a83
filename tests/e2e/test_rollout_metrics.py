"""The host agent's rollout metrics end to end: a good release and one that fails validation (rolled back), applied
over real SSH on the stand-in, read back from the stand-in's Prometheus, which scrapes node_exporter's textfile
collector (job `node`, $HOST_ROOT/metrics)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from standin import localenv
from tests.e2e.conftest import ROOT, Host
from tests.e2e.releases import Serving, variant

PROJECT, PREFIX = f"metrics-{uuid.uuid4().hex[:6]}", "79"


@pytest.fixture(scope="module")
def textfiles(local_env: localenv.LocalEnv, host: Host) -> Iterator[Path]:
    """The tests' host root writes its .prom file where the stand-in's node_exporter reads them. Earlier tests of
    the session applied releases on that root, so its own metrics directory may exist: it is set aside for the
    module and put back after."""
    shared = local_env.host_root / "metrics"
    link = Path(host.root) / "metrics"
    aside = link.with_name(f"metrics.before-{PROJECT}")
    if link.is_dir() and not link.is_symlink():
        link.rename(aside)
    link.symlink_to(shared, target_is_directory=True)
    try:
        yield shared
    finally:
        (shared / f"{PROJECT}.prom").unlink(missing_ok=True)  # this test's own series: not left for later scrapes
        link.unlink()
        if aside.is_dir():
            aside.rename(link)


def value(env: localenv.LocalEnv, query: str) -> float:
    """The one sample `query` returns on the stand-in's Prometheus (0 when there is none yet)."""
    reply = httpx.get(f"{env.prometheus_url}/api/v1/query", params={"query": query}, timeout=10)
    reply.raise_for_status()
    result = reply.json()["data"]["result"]
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else 0.0


QUERIES = {
    "rollouts": f'devtools_rollouts_total{{job="node",project="{PROJECT}"}}',
    "failed_validate": f'devtools_rollout_failures_total{{job="node",project="{PROJECT}",stage="validate"}}',
    "failed_any": f'sum(devtools_rollout_failures_total{{job="node",project="{PROJECT}"}})',
    "pulls": f'devtools_image_pull_duration_seconds_count{{job="node",project="{PROJECT}"}}',
    "rolled_back": f'devtools_rollout_last_timestamp_seconds{{job="node",project="{PROJECT}",outcome="rolled_back"}}',
}


def test_a_good_and_a_rolled_back_release_are_counted_and_scraped(local_env: localenv.LocalEnv, host: Host,
                                                                   textfiles: Path) -> None:
    before = {name: value(local_env, q) for name, q in QUERIES.items()}
    serving = Serving.started(local_env, host, PROJECT, PREFIX, "metrics-base")
    images = len(set(serving.pins["images"].values()))
    broken = variant(local_env, serving.pins, "metrics-slow", "cicd", "--broken", "cicd=slow")
    proc = serving.ship(broken)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "apply of metrics-slow failed at validate" in proc.stdout
    assert f"previous release {serving.pins['release']} restored and serving" in proc.stdout
    serving.assert_serving()
    text = (textfiles / f"{PROJECT}.prom").read_text()
    assert f'devtools_rollout_failures_total{{project="{PROJECT}",stage="validate"}} 1\n' in text

    # the base apply pulled each of its images, the broken one its own, the restore the base's again
    expected = {"rollouts": before["rollouts"] + 2, "failed_validate": before["failed_validate"] + 1,
                "failed_any": before["failed_any"] + 1, "pulls": before["pulls"] + 3 * images}
    deadline = time.monotonic() + 30  # scrape interval 2 s
    while (got := {name: value(local_env, QUERIES[name]) for name in expected}) != expected:
        assert time.monotonic() < deadline, (got, expected)
        time.sleep(1)
    assert value(local_env, QUERIES["rolled_back"]) > time.time() - 900

    # the stability report over the same Prometheus: the rolled-back release is a failed rollout
    proc = subprocess.run([sys.executable, "-m", "ops.cli", "slo", "--prometheus", local_env.prometheus_url,
                           "--default-targets", "--window", "15m", "--json"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # this project alone misses the 100 % rollout target
    objectives = {o["name"]: o for o in json.loads(proc.stdout)["objectives"]}
    [rollouts] = [s for s in objectives["rollout-success"]["series"] if s["key"] == PROJECT]
    assert (rollouts["good_ratio"], rollouts["verdict"]) == (0.5, "missed"), rollouts
    # increase() extrapolates to the window's end (a share of a scrape interval): counts are close, ratios exact
    assert (rollouts["bad"], rollouts["total"]) == (pytest.approx(1, rel=0.1), pytest.approx(2, rel=0.1)), rollouts
    [pulls] = [s for s in objectives["pull-latency"]["series"] if s["key"] == PROJECT]
    assert (pulls["verdict"], pulls["bad"], pulls["good_ratio"]) == ("met", 0, 1), pulls
    assert pulls["total"] == pytest.approx(3 * images, rel=0.1) and 0 < pulls["p95_seconds"] < 60, pulls
