"""`ops.cli slo` against a real Prometheus (Debian's, on a free loopback port) holding a week of the targets'
metrics, backfilled with `promtool tsdb create-blocks-from openmetrics` (tests/unit/ops/slo_week.py): the verdict of
every series, the job summary, and the HTML page rendered by headless Chromium (Debian's `chromium`) into a
screenshot that is checked for its size and for drawn timelines. The page and the screenshot are kept under
reports/slo/."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.cli import main
from tests.prometheus_process import Prometheus, started

from . import png_pixels
from .slo_week import backfill

pytestmark = pytest.mark.live  # a Prometheus process, promtool and Chromium (tests/unit/conftest.py)

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "reports" / "slo"
CHROMIUM = "chromium"
SIZE = (1200, 1800)
TARGET_RED = (0xD6, 0x27, 0x28)
FIRST_SERIES = (0x1F, 0x77, 0xB4)

EXPECTED = {  # objective -> {series: verdict} (slo_week's docstring says why)
    "error-ratio": {"api": "missed", "gateway-mcp": "met"},
    "rollout-success": {"blue": "met", "green": "missed"},
    "pull-latency": {"blue": "missed", "green": "met"},
    "trace-coverage": {"research": "met", "support": "missed"},
}


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    home = tmp_path_factory.mktemp("slo-prometheus")
    backfill(home / "data", int(time.time()) - 60, home)
    with started(home, []) as prom:
        prom.wait_for("max_over_time(devtools_rollouts_total[1h])", lambda r: len(r) == 2, 30)
        yield prom


def test_the_report_of_a_backfilled_week(week, capsys, monkeypatch, tmp_path):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code = main(["slo", "--prometheus", week.url, "--default-targets", "--window", "7d", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["verdict"] == "missed"
    assert {o["name"]: {s["key"]: s["verdict"] for s in o["series"]} for o in doc["objectives"]} == EXPECTED
    ratios = {(o["name"], s["key"]): s["good_ratio"] for o in doc["objectives"] for s in o["series"]}
    assert ratios == pytest.approx({("error-ratio", "api"): 0.98, ("error-ratio", "gateway-mcp"): 0.9975,
                                    ("rollout-success", "blue"): 1.0, ("rollout-success", "green"): 27 / 28,
                                    ("pull-latency", "blue"): 0.5, ("pull-latency", "green"): 1.0,
                                    ("trace-coverage", "research"): 1.0, ("trace-coverage", "support"): 135 / 168},
                                   abs=0.01)
    p95 = {s["key"]: s["p95_seconds"] for s in doc["objectives"][2]["series"]}
    assert 60 < p95["blue"] <= 120 and 20 < p95["green"] <= 30
    assert summary.read_text().startswith("### Stability targets over 7d\n\nstability targets over 7d: MISSED "
                                          "error-ratio, rollout-success, pull-latency, trace-coverage (")


def test_the_page_renders_in_headless_chromium(week, capsys, tmp_path):
    if shutil.which(CHROMIUM) is None:
        pytest.fail("chromium is missing: apt-get install chromium (scripts/local-env.sh installs it)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page, png = ARTIFACTS / "slo-report.html", ARTIFACTS / "slo-report.png"
    png.unlink(missing_ok=True)
    assert main(["slo", "--prometheus", week.url, "--default-targets", "--html", str(page)]) == 1
    assert "stability targets over 7d: MISSED" in capsys.readouterr().out
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chromium'}"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
                         check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    svgs = re.findall(r'<svg id="timeline-([a-z-]+)".*?</svg>', dom.stdout, re.S)
    assert svgs == ["error-ratio", "pull-latency", "rollout-success", "trace-coverage"]
    for body in re.findall(r'<svg id="timeline-.*?</svg>', dom.stdout, re.S):
        assert re.search(r'<path class="data" stroke="#[0-9a-f]{6}" d="M[\d.]+,[\d.]+ ', body), body[:300]
        assert 'class="target"' in body
    shot = subprocess.run([*flags, f"--screenshot={png}", f"--window-size={SIZE[0]},{SIZE[1]}", page.as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    assert shot.returncode == 0 and png.is_file(), shot.stderr[-2000:]
    width, height, rows = png_pixels.read(png)
    assert (width, height) == SIZE
    counts = png_pixels.colours(rows, len(rows[0]) // width)
    assert len(counts) > 100  # text, table shading and lines, not a blank page
    assert counts.get(TARGET_RED, 0) > 1000  # the four dashed target lines
    assert counts.get(FIRST_SERIES, 0) > 500  # the first series of the timelines


def test_a_prometheus_that_does_not_answer_is_no_report_and_exit_1(capsys):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert main(["slo", "--prometheus", f"http://127.0.0.1:{port}", "--default-targets"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no report: query ") and "no answer from Prometheus: ConnectError" in err, err
