"""Drift for real: `hostagent status` over real SSH (the operator CLI's own code path) against an intended
release, before and after containers are changed by hand on the host; and `collect` of the host's reports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from agent.containers import PROJECT_LABEL, SERVICE_LABEL
from ops import drift
from ops.operator_host import collect_from, host_status
from ops.operator_plan import HostAccess
from ops.ship import SshTarget
from standin import localenv
from tests.compose_services import SERVICES
from tests.e2e.conftest import Host, build_release

PROJECT, PREFIX = "drift", "84"


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, check=False)


def test_drift_against_a_real_host(local_env: localenv.LocalEnv, host: Host, tmp_path: Path) -> None:
    pins = build_release(local_env, "drift-base")
    shipped = host.ship(pins, PROJECT, env={"HOST_PORT_PREFIX": PREFIX})
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    access = HostAccess("stand-in", local_env.ssh_host, local_env.ssh_port, local_env.ssh_user, "", host.root,
                        PROJECT)
    intended = {"id": pins["release"], "images": pins["images"]}

    clean = drift.compare(access.name, intended, host_status(host.target, access))
    assert [f.kind for f in clean] == ["ok"] * 9, drift.render_table(clean)
    assert drift.verdict(clean)[0] is True

    # The stack intends another digest for one service: reported as differing, the rest still ok.
    other = "sha256:" + "0" * 64
    moved = {**intended, "images": {**pins["images"], "cicd": pins["images"]["cicd"].split("@")[0] + "@" + other}}
    findings = drift.compare(access.name, moved, host_status(host.target, access))
    assert [(f.service, f.kind, f.intended, f.running) for f in findings if not f.ok] == [
        ("cicd", "differs", other, pins["images"]["cicd"].split("@")[1])]

    # By hand on the host: one service stopped, one stray container joined to the project.
    stray = "drift-debug-shell-by-hand"
    try:
        assert docker("stop", "--time", "2", f"{PROJECT}-documentation-1").returncode == 0
        run = docker("run", "-d", "--name", stray, "--label", f"{PROJECT_LABEL}={PROJECT}",
                     "--label", f"{SERVICE_LABEL}=debug-shell", "--entrypoint", "sh",
                     pins["images"]["documentation"], "-c", "sleep 600")
        assert run.returncode == 0, run.stderr
        findings = drift.compare(access.name, intended, host_status(host.target, access))
        problems = {f.service: (f.kind, f.detail) for f in findings if not f.ok}
        assert problems == {"documentation": ("stopped", "state exited"), "debug-shell": ("extra", "")}, problems
        table = drift.render_table(findings)
        assert re.search(r"^stand-in +documentation +STOPPED / UNHEALTHY +sha256:", table, re.M), table
        assert re.search(r"^stand-in +debug-shell +EXTRA \(not in the release\) +- +sha256:", table, re.M), table
        assert drift.verdict(findings) == (False, "DRIFT: 2 of 10 checks on 1 host(s) differ from the stack")

        # The runbook's repair: apply the stack's release again (what `pulumi up --replace <host>-apply` runs).
        # It restarts the stopped service; a container started by hand is not compose's and stays for a human.
        again = host.ship(pins, PROJECT, env={"HOST_PORT_PREFIX": PREFIX})
        assert again.returncode == 0, again.stdout + again.stderr
        repaired = drift.compare(access.name, intended, host_status(host.target, access))
        assert {f.service: f.kind for f in repaired if not f.ok} == {"debug-shell": "extra"}, \
            drift.render_table(repaired)
        assert sum(f.ok for f in repaired) == len(SERVICES)
    finally:
        docker("rm", "-f", stray)
        docker("start", f"{PROJECT}-documentation-1")

    # The same SSH path copies the host's validation reports (what CI uploads as artifacts).
    assert collect_from(host.target, access, tmp_path / "collected") is None
    reports = sorted(p.name for p in (tmp_path / "collected" / "reports").glob("*.json"))
    assert reports and all(r.startswith("drift-base-") for r in reports), reports


def test_unreachable_host_is_a_finding_not_a_crash(local_env: localenv.LocalEnv, host: Host) -> None:
    access = HostAccess("gone", "127.0.0.1", 1, local_env.ssh_user, "", host.root, PROJECT)
    target = SshTarget(access.address, access.port, access.user, local_env.ssh_key, local_env.known_hosts)
    status = host_status(target, access)
    findings = drift.compare("gone", {"id": "x", "images": {}}, status)
    assert [f.kind for f in findings] == ["unreadable"]
    assert findings[0].detail.startswith("ssh 127.0.0.1:1: exit 255:"), findings[0].detail
