"""agent.diagnose against real containers on the local dockerd.

A FROM-scratch busybox image serves /health with httpd and prints its environment and arguments to its log.
Two containers carry compose labels of a throw-away project: `api` (running, healthy, published on
127.0.0.1, secrets in env and command line) and `worker` (exited with code 3).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.containers import PROJECT_LABEL, SERVICE_LABEL
from agent.diagnose import collect as diagnose

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SECRETS = ("s3cr3t-value-123", "hunter2pass", "argtoken-4242", "argpass-4343", "worker-secret-77")
DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY www /www
"""
API_SCRIPT = 'env; echo "args: $*"; echo "stderr line" >&2; exec httpd -f -v -p 8080 -h /www'


def docker(*args: str) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def state_of(name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(docker("container", "inspect", name))[0]
    return {"RestartCount": found["RestartCount"], **found["State"]}


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    context = tmp_path_factory.mktemp("diag-image")
    shutil.copy("/usr/bin/busybox", context / "busybox")
    (context / "www").mkdir()
    (context / "www" / "health").write_text('{"status":"ok"}\n')
    (context / "Dockerfile").write_text(DOCKERFILE)
    tag = f"diag-test-busybox:{uuid.uuid4().hex[:8]}"
    build = subprocess.run(
        ["docker", "build", "-q", "-t", tag, str(context)],
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    yield tag
    subprocess.run(["docker", "image", "rm", tag], capture_output=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def project(image: str) -> Iterator[str]:
    name = f"diag-test-{uuid.uuid4().hex[:8]}"
    containers = [f"{name}-api-1", f"{name}-worker-1"]

    def labels(service: str) -> list[str]:
        return ["--label", f"{PROJECT_LABEL}={name}", "--label", f"{SERVICE_LABEL}={service}"]

    try:
        docker(
            "run", "-d", "--name", containers[0], *labels("api"),
            "--label", "devtools.check.health=8080/health", "--label", "devtools.role=agent",
            "-p", "127.0.0.1::8080",
            "-e", "API_TOKEN=s3cr3t-value-123", "-e", "DATABASE_URL=postgres://app:hunter2pass@db:5432/x",
            "-e", "LOG_LEVEL=debug",
            "--health-cmd", "wget -q -O /dev/null http://127.0.0.1:8080/health", "--health-interval", "1s",
            image, "sh", "-c", API_SCRIPT, "api", "--token", "argtoken-4242", "--password=argpass-4343",
        )  # fmt: skip
        docker(
            "run", "-d", "--name", containers[1], *labels("worker"), "-e", "WORKER_SECRET=worker-secret-77",
            image, "sh", "-c", "echo worker done; echo worker-secret-77 leaked; exit 3",
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            api, worker = state_of(containers[0]), state_of(containers[1])
            if api.get("Health", {}).get("Status") == "healthy" and worker["Status"] == "exited":
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"containers did not settle: api {api}, worker {worker}")
        yield name
    finally:
        subprocess.run(["docker", "rm", "-f", *containers], capture_output=True, timeout=120, check=False)


# A dead proxy for every scheme: the /health probe must go straight to the published port.
PROXIED_ENV = os.environ | {
    "http_proxy": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "no_proxy": "",
    "NO_PROXY": "",
}


def run_diagnose(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.diagnose", *args],
        cwd=ROOT,
        env=PROXIED_ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} in {where}"


def test_the_raw_logs_hold_the_secrets(project: str) -> None:
    """Precondition of the masking tests: without masking, the secrets would be in the bundle."""
    raw = docker("logs", f"{project}-api-1") + docker("logs", f"{project}-worker-1")
    for secret in SECRETS:
        assert secret in raw


def test_bundle_and_json(project: str, tmp_path: Path) -> None:
    before = {c: state_of(f"{project}-{c}-1") for c in ("api", "worker")}
    out = tmp_path / "bundle"
    proc = run_diagnose("all", "--project", project, "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert_no_secret(proc.stdout, "stdout")
    document = json.loads(proc.stdout)
    assert document["bundle"] == str(out)
    assert document["known_services"] == ["api", "worker"]
    api, worker = document["containers"]

    assert (api["service"], api["name"]) == ("api", f"{project}-api-1")
    assert api["state"]["status"] == "running"
    assert api["state"]["health"] == "healthy"
    assert api["state"]["restart_count"] == 0
    assert api["state"]["health_log"] and api["state"]["health_log"][-1]["exit_code"] == 0
    assert api["image_id"].startswith("sha256:") and api["image"].startswith("diag-test-busybox:")
    assert api["repo_digests"] == []  # built locally, never pushed
    assert api["health"]["status"] == 200
    assert api["health"]["url"].startswith("http://127.0.0.1:") and api["health"]["url"].endswith("/health")
    assert api["health"]["body"] == '{"status":"ok"}\n'
    assert isinstance(api["health"]["elapsed_ms"], int)
    assert set(api["stats"]) >= {"CPUPerc", "MemUsage", "PIDs"}
    assert "LOG_LEVEL=debug" in api["env"]
    assert "API_TOKEN=***" in api["env"]
    assert "DATABASE_URL=postgres://app:***@db:5432/x" in api["env"]
    assert api["command"] == ["sh", "-c", API_SCRIPT, "api", "--token", "***", "--password=***"]
    log_text = "\n".join(api["logs"])
    assert "LOG_LEVEL=debug" in log_text
    assert "API_TOKEN=***" in log_text
    assert "args: --token *** --password=***" in log_text
    assert "stderr line" in log_text  # stderr is collected with stdout
    assert "response:200" in log_text  # httpd -v logs each health-check request to stderr

    assert worker["state"]["status"] == "exited"
    assert worker["state"]["exit_code"] == 3
    assert worker["stats"] is None and worker["stats_error"] == "container is exited"
    assert worker["health"] == {
        "url": None, "status": None, "body": "", "elapsed_ms": None, "error": "no devtools.check.health label",
    }  # fmt: skip
    assert [line.split(" ", 1)[1] for line in worker["logs"]] == ["worker done", "*** leaked"]

    assert sorted(p.name for p in out.iterdir()) == ["api.log", "api.txt", "summary.json", "worker.log", "worker.txt"]
    for path in out.iterdir():
        assert_no_secret(path.read_text(), str(path))
    assert json.loads((out / "summary.json").read_text())["containers"] == document["containers"]
    assert "args: --token *** --password=***" in (out / "api.log").read_text()
    api_txt = (out / "api.txt").read_text()
    assert api_txt.startswith(f"== api ({project}-api-1 ")
    assert f"logs: {len(api['logs'])} lines in api.log\n" in api_txt
    assert "  LOG_LEVEL=debug\n" in api_txt
    assert "exit code 3" in (out / "worker.txt").read_text()

    after = {c: state_of(f"{project}-{c}-1") for c in ("api", "worker")}
    for c in ("api", "worker"):
        for key in ("Status", "Pid", "StartedAt", "FinishedAt", "RestartCount", "ExitCode"):
            assert after[c][key] == before[c][key], (c, key)


def test_text_report_of_one_service(project: str) -> None:
    proc = run_diagnose("api", "--project", project, "--lines", "3")
    assert proc.returncode == 0, proc.stderr
    assert_no_secret(proc.stdout, "stdout")
    assert proc.stdout.startswith(f"diagnostics of project {project} at ")
    assert f"== api ({project}-api-1 " in proc.stdout
    assert "worker" not in proc.stdout
    assert "state: running, health healthy, restarts 0, exit code 0, oom-killed no\n" in proc.stdout
    assert "-> 200 in " in proc.stdout
    assert "  LOG_LEVEL=debug\n" in proc.stdout
    assert "logs (last 3 lines):\n" in proc.stdout


def test_unknown_service_exits_2(project: str) -> None:
    proc = run_diagnose("ghost", "--project", project)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert (
        proc.stderr
        == f"diagnose: no container of service 'ghost' in project '{project}'; known services: api, worker\n"
    )
    empty = run_diagnose("all", "--project", f"{project}-none")
    assert empty.returncode == 2
    assert "no containers in project" in empty.stderr


def test_write_bundle_records_a_missing_service(project: str, tmp_path: Path) -> None:
    bundle = diagnose.write_bundle(project, tmp_path / "rollback", ["worker", "ghost"], lines=1)
    assert bundle == tmp_path / "rollback"
    summary = json.loads((bundle / "summary.json").read_text())
    assert summary["errors"] == [f"no container of service 'ghost' in project '{project}'"]
    assert [c["service"] for c in summary["containers"]] == ["worker"]
    assert (bundle / "worker.log").read_text().split(" ", 1)[1] == "*** leaked\n"
    assert not (bundle / "ghost.txt").exists()
