"""`python -m ops.cli` with the real Pulumi CLI: a stack in the file backend whose outputs point at the SSH
stand-in (imported with `pulumi stack import`, so no provider is needed), a release applied there by the host
agent, then `status` and `drift` read the stack through `pulumi stack output`, reach the host over real SSH with
the stack's secret key, and report a container changed by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from standin import localenv
from tests.compose_services import SERVICES
from tests.e2e.conftest import Host, build_release, host, local_env  # noqa: F401  (fixtures)
from tests.engine.conftest import ROOT, Workspace

STACK, PROJECT, PREFIX = "cli-check", "clidrift", "91"


def cli(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ops.cli", *args, "--stack", STACK, "--cwd", str(ws.dir)],
                          cwd=ROOT, env=ws.env, capture_output=True, text=True, timeout=300, check=False)


def import_outputs(ws: Workspace, outputs: dict[str, object]) -> None:
    """Give the stack exactly these outputs: export the fresh stack, add them to its root resource, import."""
    exported = ws.pulumi("stack", "export", stack=STACK)
    assert exported.returncode == 0, exported.stderr
    deployment = json.loads(exported.stdout)
    urn = f"urn:pulumi:{STACK}::devtools::pulumi:pulumi:Stack::devtools-{STACK}"
    deployment["deployment"]["resources"] = [{"urn": urn, "custom": False, "type": "pulumi:pulumi:Stack",
                                              "outputs": outputs}]
    path = ws.dir.parent / "deployment.json"
    path.write_text(json.dumps(deployment))
    imported = ws.pulumi("stack", "import", "--file", str(path), stack=STACK)
    assert imported.returncode == 0, imported.stderr


def test_status_and_drift_through_the_real_cli(workspace: Workspace, local_env: localenv.LocalEnv,  # noqa: F811
                                               host: Host) -> None:  # noqa: F811
    pins = build_release(local_env, "cli-engine")
    shipped = host.ship(pins, PROJECT, env={"HOST_PORT_PREFIX": PREFIX})
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr

    assert workspace.pulumi("stack", "init", stack=STACK).returncode == 0
    key = local_env.ssh_key.read_text()
    secret = workspace.pulumi("config", "set", "--secret", "devtools:sshPrivateKey", stack=STACK, stdin=key)
    assert secret.returncode == 0, secret.stderr
    # The release was shipped without compose profiles, as the local stacks run (composeProfiles ""): drift
    # expects the third-party services of the profiles the stack enables, here none.
    profiles = workspace.pulumi("config", "set", "devtools:composeProfiles", "", stack=STACK)
    assert profiles.returncode == 0, profiles.stderr
    release = {"id": pins["release"], "images": pins["images"], "content": "c", "commit": None}
    import_outputs(workspace, {
        "color": PROJECT, "release": release, "releases": {pins["release"]: release},
        "hosts": {"names": ["stand-in"], "addresses": [local_env.ssh_host], "ports": [local_env.ssh_port],
                  "dropletIds": [], "sshUser": local_env.ssh_user, "sshHostKey": "", "root": host.root},
    })

    status = cli(workspace, "status")
    assert status.returncode == 0, status.stderr
    n = len(SERVICES)
    assert f"host stand-in: current {pins['release']}, previous None, {n}/{n} services running healthy" in status.stdout

    clean = cli(workspace, "drift")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.rstrip().endswith("no drift: 9 checks on 1 host(s) match the stack")

    stopped = subprocess.run(["docker", "stop", "--time", "2", f"{PROJECT}-rag-context-1"], capture_output=True,
                             text=True, check=False)
    assert stopped.returncode == 0, stopped.stderr
    try:
        found = cli(workspace, "drift", "--json", str(workspace.dir.parent / "drift.json"))
        assert found.returncode == 1, found.stdout + found.stderr
        assert "DRIFT: 1 of 9 checks on 1 host(s) differ from the stack" in found.stdout
        rows = json.loads((workspace.dir.parent / "drift.json").read_text())
        assert [(r["service"], r["kind"]) for r in rows if r["kind"] != "ok"] == [("rag-context", "stopped")]
    finally:
        subprocess.run(["docker", "start", f"{PROJECT}-rag-context-1"], capture_output=True, check=False)

    # Without the passphrase the secret key cannot be read: said as such, not mistaken for "no key configured".
    locked = subprocess.run([sys.executable, "-m", "ops.cli", "drift", "--stack", STACK, "--cwd", str(workspace.dir)],
                            cwd=ROOT, env={k: v for k, v in workspace.env.items() if k != "PULUMI_CONFIG_PASSPHRASE"},
                            capture_output=True, text=True, timeout=300, check=False)
    assert locked.returncode == 2, locked.stdout + locked.stderr
    assert locked.stderr.startswith("error: cannot read devtools:"), locked.stderr

    # The key came from the stack as a secret: never printed, and its temporary file is gone.
    secret_line = key.strip().splitlines()[1]
    for proc in (status, clean, found):
        assert secret_line not in proc.stdout + proc.stderr
    assert not [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("devtools-ops-*")]


def test_changing_commands_need_an_answer_or_yes(workspace: Workspace) -> None:
    assert workspace.pulumi("stack", "init", stack=STACK).returncode == 0
    import_outputs(workspace, {"color": "green", "liveColor": "green"})
    proc = cli(workspace, "flip", "blue")  # stdin is not a terminal here
    assert proc.returncode == 2
    assert "set devtools:liveColor = blue on stack cli-check" in proc.stdout
    assert "not a terminal, so nobody can answer the question: pass --yes" in proc.stderr
    config = workspace.pulumi("config", "get", "devtools:liveColor", stack=STACK)
    assert config.stdout.strip() in ("", "green")  # nothing ran
