"""`python -m agent.validate` as a process: exit codes 0/1/2, the JSON report and the GitHub step summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.agent.validate_peers import E2E, PeerServer, Route, fake_pins, resolved, service

pytestmark = pytest.mark.live  # real peers or processes (tests/unit/conftest.py)

ROOT = Path(__file__).resolve().parents[3]


def validate_cli(
    *args: str,
    summary: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_STEP_SUMMARY", "NO_COLOR", "HOST_PORT_PREFIX")}
    if summary is not None:
        env["GITHUB_STEP_SUMMARY"] = str(summary)
    env |= extra_env or {}
    return subprocess.run(
        [sys.executable, "-m", "agent.validate", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    agent = {"/health": Route(), "/e2e": Route(body='{"status":"ok"}', content_type="application/json")}
    with PeerServer(agent) as orchestrator, PeerServer({"/health": Route()}) as rag:
        config = resolved(
            {"orchestrator": service(orchestrator.port, E2E), "rag-context": service(rag.port, role="support")}
        )
        path = tmp_path / "resolved.json"
        path.write_text(json.dumps(config))
        yield path, config


def test_passing_run_exits_0_and_writes_report_and_summary(live: tuple[Path, dict[str, Any]], tmp_path: Path):
    config_path, _ = live
    report_path, summary = tmp_path / "out" / "report.json", tmp_path / "summary.md"
    done = validate_cli(
        "--config",
        str(config_path),
        "--json",
        str(report_path),
        "--deadline",
        "5",
        "--label",
        "color=green",
        "--label",
        "release=r7",
        summary=summary,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("validation passed: 3 of 3 checks passed in ")
    assert done.stdout.splitlines()[-1].endswith("s [color=green release=r7]")
    assert "\x1b[" not in done.stdout  # stdout is a pipe, not a TTY
    report = json.loads(report_path.read_text())
    assert report["passed"] is True
    assert report["labels"] == {"color": "green", "release": "r7"}
    assert [c["name"] for p in report["phases"].values() for c in p["checks"]] == [
        "health/orchestrator",
        "health/rag-context",
        "e2e/orchestrator",
    ]
    markdown = summary.read_text()
    assert markdown.startswith("### ✅ Validation passed: 3 of 3 checks passed in ")
    assert "| e2e/orchestrator | ✅ pass | 1 |" in markdown


def test_failing_run_exits_1_and_appends_to_the_summary(live: tuple[Path, dict[str, Any]], tmp_path: Path):
    config_path, config = live
    with PeerServer({}) as gone:
        closed = gone.port
    config["services"]["cicd"] = service(closed, E2E)
    config_path.write_text(json.dumps(config))
    report_path, summary = tmp_path / "report.json", tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    done = validate_cli(
        "--config", str(config_path), "--json", str(report_path), "--deadline", "1", "--timeout", "0.5", summary=summary
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "validation FAILED: 3 of 5 checks passed" in done.stdout
    assert f"cannot connect: Connection refused [GET http://127.0.0.1:{closed}/health]" in done.stdout
    report = json.loads(report_path.read_text())
    assert report["passed"] is False
    assert report["summary"] == {"checks": 5, "passed": 3, "failed": 2}
    assert report["phases"]["health"]["passed"] is False
    markdown = summary.read_text()
    assert markdown.startswith("earlier step\n### ❌ Validation failed: 3 of 5 checks passed in ")


def test_missing_config_exits_2_naming_the_path_and_the_fix(tmp_path: Path):
    missing = tmp_path / "release" / "resolved.json"
    report_path = tmp_path / "report.json"
    done = validate_cli("--config", str(missing), "--json", str(report_path))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        f"agent.validate: error: --config {missing}: no such file; save it with `docker compose --file "
        f"compose/docker-compose.yml --env-file release.env config --format json > {missing}`\n"
    )
    assert not report_path.exists()


def test_bad_labels_and_bad_arguments_exit_2(tmp_path: Path):
    path = tmp_path / "resolved.json"
    path.write_text(json.dumps(resolved({"cicd": service(1, {"devtools.check.e2e": "GET"})})))
    done = validate_cli("--config", str(path))
    assert done.returncode == 2
    assert 'service cicd: label devtools.check.e2e "GET" must be "<METHOD> <path>"' in done.stderr
    assert validate_cli("--deadline", "5").returncode == 2  # neither --config nor --compose
    assert validate_cli("--config", str(path), "--label", "nokey").returncode == 2


def test_compose_input_resolves_the_real_compose_file(tmp_path: Path):
    pins = tmp_path / "release.env"
    pins.write_text(fake_pins("HOST_PORT_PREFIX=19\n"))
    report_path = tmp_path / "report.json"
    done = validate_cli(
        "--compose",
        str(ROOT / "compose" / "docker-compose.yml"),
        "--env-file",
        str(pins),
        "--project-name",
        "green",
        "--host",
        "127.0.0.2",
        "--deadline",
        "0.3",
        "--json",
        str(report_path),
    )
    assert done.returncode == 1, done.stderr
    report = json.loads(report_path.read_text())
    assert report["project"] == "green"
    assert report["summary"]["checks"] == 16
    targets = [c["target"] for c in report["phases"]["health"]["checks"]]
    assert "GET http://127.0.0.2:1905/health" in targets
    assert report["phases"]["mcp"]["checks"][0]["target"] == "POST http://127.0.0.2:1900/mcp tools/list"
    missing = validate_cli("--compose", str(ROOT / "compose" / "docker-compose.yml"), "--env-file", "nope.env")
    assert missing.returncode == 2
    assert "--env-file nope.env: no such file" in missing.stderr
