"""Does this host have what the host agent needs? (standard library only; imports nothing from `agent`)

    python -m agent.hostagent --root /opt/devtools doctor [--json]     # from the agent's code directory
    python doctor.py --requirements /opt/devtools/requirements-host.txt  # cloud-init, before the agent arrives

Checks the running python (3.11 or later), every pin of the agent's requirements file (agent/requirements.txt,
next to this file) installed at exactly that version in the running interpreter, the docker engine answering, and
`docker compose` v2 or later. Prints one line per check, then a verdict naming what failed; every failed check
carries the command that fixes it. Exit 0 when all pass, 1 otherwise. `--json` prints one JSON object instead.

This file stands alone on purpose: cloud-init writes it by itself onto a fresh droplet (the agent code only arrives
with the first upload) and runs it once the venv exists, so a droplet's bootstrap ends with this verdict.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the type only: at run time this file needs nothing but the standard library
    from agent.process import Runner

MIN_PYTHON = (3, 11)
REQUIREMENTS = Path(__file__).resolve().with_name("requirements.txt")
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[A-Za-z0-9._,-]+\])?"
                 r"\s*==\s*(?P<version>[A-Za-z0-9.+!_-]+)$")
DOCKER_TIMEOUT = 15.0
FIX_DOCKER = "systemctl enable --now docker"
FIX_DOCKER_MISSING = "apt-get install -y docker.io && systemctl enable --now docker"
FIX_COMPOSE = "apt-get install -y docker-compose-v2"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    """The command that fixes a failed check (empty when it passed)."""


@dataclass(frozen=True)
class Pin:
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


# pure checks ------------------------------------------------------------------------------------------------
def parse_requirements(text: str) -> tuple[list[Pin], list[str]]:
    """The exact pins of a requirements file, and a problem for every line that is not one (comments allowed)."""
    pins: list[Pin] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        if match is None:
            problems.append(f"line {number}: {line!r} is not an exact pin (name==version)")
        else:
            pins.append(Pin(match["name"], match["version"]))
    return pins, problems


def check_python(version: Sequence[int], executable: str, prefix: str) -> Check:
    shown = ".".join(str(part) for part in version[:3])
    want = ".".join(str(part) for part in MIN_PYTHON)
    if tuple(version[:2]) >= MIN_PYTHON:
        return Check("python", True, f"{shown} at {executable} ({want} or later)")
    return Check("python", False, f"{shown} at {executable}; the agent needs {want} or later",
                 f"python{want} -m venv --clear {prefix} (then install the requirements again)")


def check_pin(pin: Pin, installed: str | None, python: str, requirements: Path) -> Check:
    """`pin` against the version installed in the running interpreter (None: not installed)."""
    fix = f"{python} -m pip install -r {requirements}"
    if installed is None:
        return Check(str(pin), False, "not installed", fix)
    if installed != pin.version:
        return Check(str(pin), False, f"{installed} installed, {pin.version} pinned", fix)
    return Check(str(pin), True, "installed")


def check_requirements(text: str | None, installed: Mapping[str, str | None], python: str,
                       requirements: Path) -> list[Check]:
    """One check per pin; the file itself fails a check when it cannot be read or holds a line that is no pin."""
    if text is None:
        return [Check("requirements", False, f"{requirements} cannot be read",
                      f"ship the agent again (its upload carries {requirements.name})")]
    pins, problems = parse_requirements(text)
    checks = [check_pin(pin, installed.get(pin.name), python, requirements) for pin in pins]
    if problems:
        checks.append(Check("requirements", False, f"{requirements}: {'; '.join(problems)}",
                            f"pin every line of {requirements} as name==version"))
    return checks


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def check_docker(answer: subprocess.CompletedProcess[str] | BaseException) -> Check:
    """From `docker info --format {{.ServerVersion}}`: its result, or the error that kept it from running."""
    if isinstance(answer, subprocess.TimeoutExpired):
        return Check("docker", False, f"docker info did not return within {DOCKER_TIMEOUT:.0f}s", FIX_DOCKER)
    if isinstance(answer, BaseException):
        return Check("docker", False, f"cannot run docker: {answer}", FIX_DOCKER_MISSING)
    if answer.returncode != 0:
        return Check("docker", False, f"engine not answering: {_last_line(answer.stderr)}", FIX_DOCKER)
    return Check("docker", True, f"engine {answer.stdout.strip()} answering")


def check_compose(answer: subprocess.CompletedProcess[str] | BaseException) -> Check:
    """From `docker compose version --short` ("2.40.3", sometimes "v2.40.3"): the compose plugin, v2 or later."""
    if isinstance(answer, subprocess.TimeoutExpired):
        return Check("compose", False, f"docker compose version did not return within {DOCKER_TIMEOUT:.0f}s",
                     FIX_COMPOSE)
    if isinstance(answer, BaseException):
        return Check("compose", False, f"cannot run docker: {answer}", FIX_DOCKER_MISSING)
    if answer.returncode != 0:
        return Check("compose", False, f"no compose plugin: {_last_line(answer.stderr)}", FIX_COMPOSE)
    version = answer.stdout.strip().removeprefix("v")
    major = version.split(".", 1)[0]
    if not major.isdigit() or int(major) < 2:
        return Check("compose", False, f"docker compose {version or '(no version)'}; the agent needs v2 or later",
                     FIX_COMPOSE)
    return Check("compose", True, f"docker compose {version}")


def render_text(checks: Sequence[Check]) -> str:
    """One line per check, then the verdict."""
    width = max(len(c.name) for c in checks)
    lines = [f"{'ok  ' if c.ok else 'FAIL'}  {c.name:<{width}}  {c.detail}" + ("" if c.ok else f"; fix: {c.fix}")
             for c in checks]
    failed = [c.name for c in checks if not c.ok]
    if failed:
        lines.append(f"doctor: {len(failed)} of {len(checks)} checks failed: {', '.join(failed)}")
    else:
        lines.append(f"doctor: all {len(checks)} checks passed")
    return "\n".join(lines) + "\n"


def render_json(checks: Sequence[Check]) -> str:
    """{"ok", "failed": [names], "missing": [pins to install], "checks": [...]}: one line of JSON."""
    failed = [c.name for c in checks if not c.ok]
    missing = [c.name for c in checks if not c.ok and PIN.match(c.name)]
    return json.dumps({"ok": not failed, "failed": failed, "missing": missing,
                       "checks": [asdict(c) for c in checks]}, sort_keys=True) + "\n"


# what runs processes or reads the interpreter ----------------------------------------------------------------
def _run(argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None,
         cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The default runner (the shape of agent.process.run_process, which this standalone file cannot import)."""
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False,
                          env=None if env is None else dict(env), cwd=cwd)


def _ask(runner: Runner, argv: list[str]) -> subprocess.CompletedProcess[str] | BaseException:
    try:
        return runner(argv, timeout=DOCKER_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return exc


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def run_checks(requirements: Path | None = None, runner: Runner | None = None,
               installed: Callable[[str], str | None] | None = None) -> list[Check]:
    """Every check, in order: python, each pin, docker, compose (defaults: the real file, processes, venv)."""
    requirements, runner, installed = requirements or REQUIREMENTS, runner or _run, installed or installed_version
    try:
        text: str | None = requirements.read_text()
    except OSError:
        text = None
    names = [pin.name for pin in parse_requirements(text or "")[0]]
    return [
        check_python(sys.version_info[:3], sys.executable, sys.prefix),
        *check_requirements(text, {name: installed(name) for name in names}, sys.executable, requirements),
        check_docker(_ask(runner, ["docker", "info", "--format", "{{.ServerVersion}}"])),
        check_compose(_ask(runner, ["docker", "compose", "version", "--short"])),
    ]


def report(*, as_json: bool, requirements: Path | None = None, runner: Runner | None = None,
           installed: Callable[[str], str | None] | None = None) -> tuple[int, str]:
    """The exit status (0: all checks passed) and what to print."""
    checks = run_checks(requirements, runner, installed)
    return (0 if all(c.ok for c in checks) else 1), (render_json if as_json else render_text)(checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="doctor.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requirements", type=Path, default=REQUIREMENTS,
                        help=f"the agent's requirements file (default: {REQUIREMENTS})")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    args = parser.parse_args(argv)
    code, text = report(as_json=args.json, requirements=args.requirements)
    sys.stdout.write(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
