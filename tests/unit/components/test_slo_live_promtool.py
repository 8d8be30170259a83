"""The SLO rule file under promtool (Debian's prometheus package): `promtool check rules` accepts what
components.slo renders, and `promtool test rules` runs slo_cases/: for every group, series that burn the budget
fast, slowly and not at all, with exactly the alerts that fire and the ratios recorded."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from components.slo import SloSpec, objectives, render_rules

pytestmark = pytest.mark.live  # runs promtool (tests/unit/conftest.py)

PROMTOOL = Path("/usr/bin/promtool")
CASES = Path(__file__).resolve().parent / "slo_cases"


def _promtool(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL.exists(), f"{PROMTOOL} is missing: apt-get install prometheus (scripts/local-env.sh does)"
    return subprocess.run([str(PROMTOOL), *map(str, args)], cwd=cwd, capture_output=True, text=True, check=False,
                          timeout=300)


def _with_rules(tmp_path: Path, spec: SloSpec) -> Path:
    """The cases beside a rule file rendered from `spec` (each case loads `slo-rules.yml` from its own folder)."""
    for case in CASES.glob("*.yml"):
        shutil.copy(case, tmp_path / case.name)
    (tmp_path / "slo-rules.yml").write_text(render_rules(spec))
    return tmp_path


def test_one_case_file_per_group():
    assert sorted(p.stem for p in CASES.glob("*.yml")) == sorted(o.name for o in objectives(SloSpec()))


def test_promtool_accepts_the_rules(tmp_path: Path):
    for spec in (SloSpec(), SloSpec(error_ratio_max=0.001, rollout_success_min=0.95, pull_p95_seconds=0.5,
                                    trace_coverage_min=1.0)):
        rules = _with_rules(tmp_path, spec) / "slo-rules.yml"
        proc = _promtool("check", "rules", rules, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "SUCCESS: 44 rules found" in proc.stdout, proc.stdout


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.glob("*.yml")))
def test_the_alerts_fire_exactly_as_the_cases_say(tmp_path: Path, case: str):
    proc = _promtool("test", "rules", case, cwd=_with_rules(tmp_path, SloSpec()))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == 1, proc.stdout


@pytest.mark.parametrize(("spec", "case", "failing"), [
    (SloSpec(error_ratio_max=0.05), "error-ratio.yml", "fast burn pages and tickets"),
    (SloSpec(rollout_success_min=0.9), "rollout-success.yml", "a failure 40 minutes ago tickets only"),
    (SloSpec(pull_p95_seconds=120.0), "pull-latency.yml", "most pulls slow pages and tickets"),
    (SloSpec(trace_coverage_min=0.5), "trace-coverage.yml", "probes 40 % untraced ticket only"),
])
def test_the_cases_fail_against_other_targets(tmp_path: Path, spec: SloSpec, case: str, failing: str):
    """The cases pin the targets: rendered from another spec, the same series fire other alerts (or none)."""
    proc = _promtool("test", "rules", case, cwd=_with_rules(tmp_path, spec))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED" in proc.stdout + proc.stderr
    assert failing in proc.stdout + proc.stderr, proc.stdout + proc.stderr
