"""The host agent's doctor: what a host lacks for the agent (python 3.11+, the venv's exact pins, docker, compose v2),
each failure with the command that fixes it. Pure checks get exact strings; processes go through a fake runner."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from agent import doctor, hostagent
from agent.doctor import (
    Check,
    Pin,
    check_compose,
    check_docker,
    check_pin,
    check_python,
    check_requirements,
    parse_requirements,
    render_json,
    render_text,
)

REQS = Path("/opt/devtools/code/agent/requirements.txt")
PY = "/opt/devtools/venv/bin/python"
FIX_PIP = f"{PY} -m pip install -r {REQS}"


def done(code: int, stdout: str = "", stderr: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(["docker"], code, stdout, stderr)


def test_requirements_are_exact_pins_and_anything_else_is_named():
    """Only `name==version` says what the venv must hold; a loose line would let any version pass unnoticed."""
    text = "# the venv\nhttpx==0.28.1  # validator\n\nanyio[trio] == 4.6.0\nidna>=3\nrich\n"
    assert parse_requirements(text) == (
        [Pin("httpx", "0.28.1"), Pin("anyio", "4.6.0")],
        ["line 5: 'idna>=3' is not an exact pin (name==version)", "line 6: 'rich' is not an exact pin (name==version)"],
    )


def test_python_must_be_3_11_or_later():
    """The agent uses 3.11 features; an older venv python fails with the command that recreates the venv."""
    assert check_python((3, 11, 2), PY, "/opt/devtools/venv") == Check("python", True,
                                                                       f"3.11.2 at {PY} (3.11 or later)")
    assert check_python((3, 10, 12), PY, "/opt/devtools/venv") == Check(
        "python", False, f"3.10.12 at {PY}; the agent needs 3.11 or later",
        "python3.11 -m venv --clear /opt/devtools/venv (then install the requirements again)")


def test_a_pin_passes_only_at_exactly_its_version():
    """A missing or different version fails (the validator was tested against the pin), fixed by pip -r."""
    pin = Pin("httpx", "0.28.1")
    assert check_pin(pin, "0.28.1", PY, REQS) == Check("httpx==0.28.1", True, "installed")
    assert check_pin(pin, None, PY, REQS) == Check("httpx==0.28.1", False, "not installed", FIX_PIP)
    assert check_pin(pin, "0.27.2", PY, REQS) == Check("httpx==0.28.1", False, "0.27.2 installed, 0.28.1 pinned",
                                                       FIX_PIP)


def test_an_unreadable_or_loose_requirements_file_fails_its_own_check():
    """Without the file there is nothing to compare: that is a failure, not an empty pass."""
    assert check_requirements(None, {}, PY, REQS) == [
        Check("requirements", False, f"{REQS} cannot be read", "ship the agent again (its upload carries "
                                                               "requirements.txt)")]
    assert check_requirements("httpx==0.28.1\nrich\n", {"httpx": "0.28.1"}, PY, REQS) == [
        Check("httpx==0.28.1", True, "installed"),
        Check("requirements", False, f"{REQS}: line 2: 'rich' is not an exact pin (name==version)",
              f"pin every line of {REQS} as name==version")]


@pytest.mark.parametrize(("answer", "expected"), [
    (done(0, "27.5.1\n"), Check("docker", True, "engine 27.5.1 answering")),
    (done(1, stderr="Client: ...\nCannot connect to the Docker daemon at unix:///var/run/docker.sock.\n"),
     Check("docker", False, "engine not answering: Cannot connect to the Docker daemon at "
                            "unix:///var/run/docker.sock.", "systemctl enable --now docker")),
    (subprocess.TimeoutExpired(["docker"], 15), Check("docker", False, "docker info did not return within 15s",
                                                      "systemctl enable --now docker")),
    (FileNotFoundError(2, "No such file or directory", "docker"),
     Check("docker", False, "cannot run docker: [Errno 2] No such file or directory: 'docker'",
           "apt-get install -y docker.io && systemctl enable --now docker")),
], ids=["answers", "not-answering", "timeout", "missing"])
def test_docker_must_answer(answer: subprocess.CompletedProcess[str] | BaseException, expected: Check):
    """Every rollout step talks to the engine: a host whose engine is down or absent cannot take a release."""
    assert check_docker(answer) == expected


@pytest.mark.parametrize(("answer", "expected"), [
    (done(0, "2.40.3\n"), Check("compose", True, "docker compose 2.40.3")),
    (done(0, "v2.29.1\n"), Check("compose", True, "docker compose 2.29.1")),
    (done(0, "1.29.2\n"), Check("compose", False, "docker compose 1.29.2; the agent needs v2 or later",
                                "apt-get install -y docker-compose-v2")),
    (done(1, stderr="docker: 'compose' is not a docker command.\n"),
     Check("compose", False, "no compose plugin: docker: 'compose' is not a docker command.",
           "apt-get install -y docker-compose-v2")),
    (subprocess.TimeoutExpired(["docker"], 15), Check("compose", False, "docker compose version did not return "
                                                      "within 15s", "apt-get install -y docker-compose-v2")),
], ids=["v2", "v-prefixed", "v1", "no-plugin", "timeout"])
def test_compose_must_be_the_v2_plugin(answer: subprocess.CompletedProcess[str] | BaseException, expected: Check):
    """The agent runs `docker compose up --wait` and `ps --format json`: v1 or no plugin cannot run a release."""
    assert check_compose(answer) == expected


CHECKS = [Check("python", True, "3.11.2 at /v/bin/python (3.11 or later)"),
          Check("httpx==0.28.1", False, "not installed", "/v/bin/python -m pip install -r /r.txt"),
          Check("docker", True, "engine 27.5.1 answering"),
          Check("compose", False, "no compose plugin: nope", "apt-get install -y docker-compose-v2")]


def test_text_is_one_line_per_check_then_the_verdict():
    """An operator reads what failed and the command that fixes it on the failing line itself."""
    assert render_text(CHECKS) == (
        "ok    python         3.11.2 at /v/bin/python (3.11 or later)\n"
        "FAIL  httpx==0.28.1  not installed; fix: /v/bin/python -m pip install -r /r.txt\n"
        "ok    docker         engine 27.5.1 answering\n"
        "FAIL  compose        no compose plugin: nope; fix: apt-get install -y docker-compose-v2\n"
        "doctor: 2 of 4 checks failed: httpx==0.28.1, compose\n")
    assert render_text(CHECKS[:1]).endswith("\ndoctor: all 1 checks passed\n")


def test_json_names_the_failed_checks_and_the_pins_to_install():
    """scripts/local-env.sh installs `missing` into the host venv; `failed` is everything else to act on."""
    doc = json.loads(render_json(CHECKS))
    assert (doc["ok"], doc["failed"], doc["missing"]) == (False, ["httpx==0.28.1", "compose"], ["httpx==0.28.1"])
    assert doc["checks"][1] == {"name": "httpx==0.28.1", "ok": False, "detail": "not installed",
                                "fix": "/v/bin/python -m pip install -r /r.txt"}
    assert render_json(CHECKS).count("\n") == 1


class FakeDocker:
    """Answers `docker info` and `docker compose version` from a table; records what was asked."""

    def __init__(self, answers: Mapping[str, subprocess.CompletedProcess[str] | BaseException]) -> None:
        self.answers, self.asked = answers, list[list[str]]()

    def __call__(self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        self.asked.append(list(argv))
        answer = self.answers[argv[1]]
        if isinstance(answer, BaseException):
            raise answer
        return answer


def test_report_runs_every_check_through_the_runner(tmp_path: Path):
    """Exit 1 when anything fails, 0 only when all pass; docker is asked through the injected runner only."""
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("httpx==0.28.1\n")
    runner = FakeDocker({"info": done(0, "27.5.1\n"), "compose": done(0, "2.40.3\n")})
    code, text = doctor.report(as_json=False, requirements=reqs, runner=runner, installed=lambda name: "0.28.1")
    assert code == 0 and text.endswith("doctor: all 4 checks passed\n")
    assert runner.asked == [["docker", "info", "--format", "{{.ServerVersion}}"],
                            ["docker", "compose", "version", "--short"]]
    runner = FakeDocker({"info": OSError(13, "Permission denied"), "compose": OSError(13, "Permission denied")})
    code, text = doctor.report(as_json=True, requirements=reqs, runner=runner, installed=lambda name: None)
    assert code == 1
    assert json.loads(text)["failed"] == ["httpx==0.28.1", "docker", "compose"]


def test_hostagent_doctor_needs_no_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]):
    """`doctor` runs before any project exists on a host (cloud-init, the stand-in's bootstrap)."""
    monkeypatch.setattr(hostagent, "run_process", FakeDocker({"info": done(1, stderr="Cannot connect"),
                                                              "compose": done(0, "2.40.3\n")}))
    monkeypatch.setattr(doctor, "installed_version", lambda name: "0.28.1")
    assert hostagent.main(["--root", str(tmp_path), "doctor", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["failed"] == ["docker"]
    assert list(tmp_path.iterdir()) == []  # it changes nothing on the host


@pytest.mark.parametrize("command", [["status"], ["history"], ["stop"], ["apply", "--bundle", "b"]])
def test_every_other_command_still_needs_a_project(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   command: list[str]):
    """Project state lives under <root>/<project>: without one the command must refuse clearly, not guess."""
    with pytest.raises(SystemExit) as caught:
        hostagent.main(["--root", str(tmp_path), *command])
    assert caught.value.code == 2
    assert f"error: the {command[0]} command needs --project (the compose project, e.g. green)" in \
        capsys.readouterr().err


def test_doctor_imports_only_the_standard_library_at_run_time():
    """cloud-init writes doctor.py alone onto a droplet before the agent arrives: an import of the agent package
    (outside `if TYPE_CHECKING:`) would make the droplet's bootstrap fail."""
    tree = ast.parse(Path(doctor.__file__).read_text())
    guarded = {id(inner) for node in ast.walk(tree)
               if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING" for inner in ast.walk(node)}
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and id(node) not in guarded:
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and id(node) not in guarded:
            roots.add(node.module.split(".")[0])
    assert "json" in roots and "agent" not in roots
    assert roots - set(sys.stdlib_module_names) - {"__future__"} == set()


@pytest.mark.live
def test_doctor_runs_as_a_lone_script(tmp_path: Path):
    """As cloud-init runs it: the file by itself, isolated from this checkout, docker absent from PATH."""
    (tmp_path / "doctor.py").write_bytes(Path(doctor.__file__).read_bytes())
    (tmp_path / "reqs.txt").write_text("no-such-distribution-here==1.0\n")
    (tmp_path / "bin").mkdir()
    proc = subprocess.run([sys.executable, "-I", str(tmp_path / "doctor.py"), "--requirements",
                           str(tmp_path / "reqs.txt"), "--json"], capture_output=True, text=True, timeout=60,
                          check=False, cwd=tmp_path, env={**os.environ, "PATH": str(tmp_path / "bin")})
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["failed"], doc["missing"]) == (["no-such-distribution-here==1.0", "docker", "compose"],
                                               ["no-such-distribution-here==1.0"])
