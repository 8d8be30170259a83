"""The operator CLI on the local stack with the real engine: `pulumi up --stack local` and `--stack local-blue`
deploy the example application to the SSH stand-in (images by docker-build through the local BuildKit, rollouts by
the command provider, haproxy as the load balancer); then `ops.cli` flips green → blue → green with traffic
following and nothing else updated, rolls back by pinning the previous release, and finds a container changed by
hand. Leaves traffic on green and the hosts running (nothing is destroyed: destroying would stop the projects)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.secretfile import parse_secrets, render_secrets
from standin import localenv
from tests.compose_services import DATA_SERVICES, SERVICES
from tests.cosign_keys import registry_holds_signature
from tests.e2e.conftest import local_env  # noqa: F401  (fixture)
from tests.engine.conftest import ROOT, Workspace, new_workspace, ready_to_build

APP = ROOT / "examples" / "app"


@dataclass
class Deployed:
    ws: Workspace
    env: localenv.LocalEnv
    first: str

    def cli(self, *args: str, stack: str = "local") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ops.cli", *args, "--stack", stack, "--cwd", str(self.ws.dir)],
                              cwd=ROOT, env=self.ws.env, capture_output=True, text=True, timeout=900, check=False)

    def up(self, stack: str) -> subprocess.CompletedProcess[str]:
        proc = self.ws.pulumi("up", "--yes", stack=stack, timeout=900)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        return proc

    def outputs(self, stack: str = "local") -> dict[str, Any]:
        proc = self.ws.pulumi("stack", "output", "--json", stack=stack)
        assert proc.returncode == 0, proc.stderr
        data: dict[str, Any] = json.loads(proc.stdout)
        return data

    def last_changes(self, stack: str = "local") -> dict[str, int]:
        """What the newest update did, as the engine recorded it (`pulumi stack history`)."""
        proc = self.ws.pulumi("stack", "history", "--json", stack=stack)
        assert proc.returncode == 0, proc.stderr
        changes: dict[str, int] = json.loads(proc.stdout)[0]["resourceChanges"]
        return changes

    def served_by(self) -> str:
        return str(httpx.get(f"{self.env.lb_url}/health", timeout=10).headers.get("x-served-by", ""))


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, local_env: localenv.LocalEnv  # noqa: F811
             ) -> Iterator[Deployed]:
    ready_to_build()
    ws = new_workspace(tmp_path_factory.mktemp("operator"))
    d = Deployed(ws, local_env, f"op1-{uuid.uuid4().hex[:6]}")
    for stack in ("local", "local-blue"):
        assert ws.pulumi("stack", "init", stack=stack).returncode == 0
    for key, value in (("appRoot", str(APP)), ("releaseId", d.first)):
        assert ws.pulumi("config", "set", f"devtools:{key}", value, stack="local").returncode == 0
    d.up("local")
    assert d.outputs()["validation"]["passed"] is True
    d.up("local-blue")
    assert d.outputs("local-blue")["release"]["id"] == d.first
    # metadata=skip in the backend URL: no .attrs sidecar, whose in-place rewrite a stack reading its own outputs
    # during an update could catch empty ("failed to load checkpoint: EOF").
    assert list((ws.dir.parent / "state").rglob("*.attrs")) == []
    assert d.served_by() == "green"
    yield d
    if d.served_by() != "green":  # leave the stand-in as `make up` expects it
        d.cli("flip", "green", "--yes")


def test_two_colors_on_one_host_keep_their_own_uploads(deployed: Deployed) -> None:
    """Green and blue share the stand-in's host and run the same release id (blue follows local). Each color's
    upload must stay its own: the secrets change below re-runs green's apply without a new upload, and it must read
    green's bundle, not the one blue uploaded after it (blue's port prefix and no commit: "release ... already
    exists on this host with different content"). Runs first, right after both stacks were deployed in that order.
    """
    local, blue = deployed.outputs()["release"], deployed.outputs("local-blue")["release"]
    assert local["id"] == blue["id"] == deployed.first
    root = deployed.env.host_root
    bundles = {color: json.loads((root / color / "incoming" / deployed.first / "release.json").read_text())
               for color in ("green", "blue")}
    assert {c: b["env"]["HOST_PORT_PREFIX"] for c, b in bundles.items()} == {"green": "81", "blue": "82"}
    # A followed release keeps the commit it was built from, on the host and in the standby's outputs.
    installed = json.loads((root / "blue" / "releases" / deployed.first / "release.json").read_text())
    assert local["commit"] and installed["source"]["commit"] == blue["commit"] == local["commit"]
    assert bundles["blue"]["source"]["commit"] == local["commit"]


def test_the_local_stack_signs_its_images_and_its_hosts_verify_them(deployed: Deployed) -> None:
    """`pulumi up --stack local` signs the nine images it pushed (the stand-in's key pair), the registry holds each
    signature, and the release each color applied required them: every running container's digest verifies."""
    release = deployed.outputs()["release"]
    assert len(release["images"]) == 9
    assert [s for s, ref in sorted(release["images"].items()) if not registry_holds_signature(ref)] == []
    public = (deployed.env.state / "signing" / "cosign.pub").read_text()
    for color in ("green", "blue"):
        manifest = json.loads((deployed.env.host_root / color / "incoming" / deployed.first / "release.json")
                              .read_text())
        assert manifest["signing"] == {"require": True, "public_keys": [public.strip() + "\n"]}, color
    proc = deployed.cli("status", "--json")
    report = json.loads(proc.stdout)
    checked = {(host, service): svc.get("signature") for host, status in report["hosts"].items()
               for service, svc in status["services"].items()}
    assert checked and all(sig == {"verified": True, "detail": "signed"} for sig in checked.values()), checked


def test_app_secrets_reach_the_containers_and_leave_with_the_config(deployed: Deployed) -> None:
    """A secret set in the stack reaches the containers through the host's 0600 file, never the engine's output;
    removing it from the stack removes it from the file and from the containers. Runs while blue's upload of the
    same release id is the newer one on the host: green's re-run apply must read green's own upload (it failed
    with "release ... already exists on this host with different content" when uploads were per host)."""
    token = f"tok-{uuid.uuid4().hex}"
    key = "devtools:appSecrets.DEMO_TOKEN"
    secrets_file = deployed.env.host_root / "green" / "secrets.env"

    def container_env() -> str:
        proc = subprocess.run(["docker", "exec", "green-orchestrator-1", "env"], capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    # the stack's other app secrets: the Langfuse stand-in's keys (appSecretsPath), in the same file; compared by
    # digest so that a failing assertion prints no key
    others = render_secrets(parse_secrets(deployed.env.langfuse_keys.read_text()))

    def same(text: str) -> bool:
        return hashlib.sha256(secrets_file.read_text().encode()).digest() == hashlib.sha256(text.encode()).digest()
    assert same(others), "the secrets file is not the Langfuse keys alone (values not shown)"
    assert deployed.ws.pulumi("config", "set", "--secret", "--path", key, token, stack="local").returncode == 0
    added = deployed.up("local")
    assert token not in added.stdout + added.stderr
    assert f"DEMO_TOKEN={token}" in container_env().splitlines()
    assert same(f'DEMO_TOKEN="{token}"\n' + others), "DEMO_TOKEN is not in the form compose reads back exactly"

    assert deployed.ws.pulumi("config", "rm", "--path", key, stack="local").returncode == 0
    removed = deployed.up("local")
    assert token not in removed.stdout + removed.stderr
    assert same(others), "DEMO_TOKEN is still in the secrets file"
    assert not any(line.startswith("DEMO_TOKEN=") for line in container_env().splitlines())
    assert deployed.outputs()["validation"]["passed"] is True


def test_flip_green_blue_green_moves_only_traffic(deployed: Deployed) -> None:
    blue = deployed.cli("flip", "blue", "--yes")
    assert blue.returncode == 0, blue.stdout[-3000:] + blue.stderr
    assert blue.stdout.startswith("flip stack local: traffic green -> blue\n  1. set devtools:liveColor = blue")
    assert deployed.served_by() == "blue"
    # One update (the traffic resource), 39 resources the same (10 of them the images' signatures: nine commands and
    # their component; 8 the data tier's: its host component, its rollout and that rollout's commands and gate);
    # `read` is the StackReference to local-blue.
    assert deployed.last_changes() == {"update": 1, "same": 39, "read": 1}
    assert deployed.outputs()["liveColor"] == "blue"

    green = deployed.cli("flip", "green", "--yes")
    assert green.returncode == 0, green.stdout[-3000:] + green.stderr
    assert deployed.served_by() == "green"
    changes = deployed.last_changes()
    assert {k: v for k, v in changes.items() if k not in ("read", "discard")} == {"update": 1, "same": 39}, changes

    again = deployed.cli("flip", "green", "--yes")
    assert (again.returncode, again.stdout) == (0, "traffic on stack local is already on green: nothing to do\n")

    # What a flip the engine refused leaves (its first step, the stack file, done): flipping to where traffic is
    # puts the file back, so the next `pulumi up` does not try the refused flip again.
    assert deployed.ws.pulumi("config", "set", "devtools:liveColor", "blue", stack="local").returncode == 0
    back = deployed.cli("flip", "green", "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "traffic is on green, the stack file says blue (a flip that did not finish)" in back.stdout
    assert deployed.ws.pulumi("config", "get", "devtools:liveColor", stack="local").stdout.strip() == "green"
    assert deployed.last_changes() == changes  # no update ran


def test_a_flip_by_hand_is_reported_and_put_back(deployed: Deployed) -> None:
    """The stack's liveColor is the one record of where traffic goes: haproxy moved behind its back (as `make
    flip` used to do) is reported by `ops.cli status` (exit 1), and `ops.cli flip <recorded color>` moves it back
    with the traffic resource's own command, the config untouched."""
    by_hand = subprocess.run(["bash", str(ROOT / "scripts" / "local-env.sh"), "flip", "blue"], capture_output=True,
                             text=True, timeout=120, check=False)
    assert by_hand.returncode == 0, by_hand.stderr
    assert deployed.served_by() == "blue"
    status = deployed.cli("status")
    assert status.returncode == 1, status.stdout + status.stderr
    assert ("TRAFFIC DIFFERS: stack local says liveColor green, the load balancer serves blue; put it back with "
            "`python -m ops.cli flip green --stack local`") in status.stdout
    back = deployed.cli("flip", "green", "--yes")
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr
    assert "1. move the load balancer back to green, as the stack records" in back.stdout
    assert deployed.served_by() == "green"
    agreed = deployed.cli("status")
    assert agreed.returncode == 0, agreed.stdout + agreed.stderr
    assert "the load balancer serves green, as the stack records" in agreed.stdout
    assert deployed.outputs()["liveColor"] == "green"


def test_rollback_pins_the_previous_release(deployed: Deployed, tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(APP, app, symlinks=True)
    with open(app / "services" / "code-review" / "service.conf", "a", encoding="utf-8") as fh:
        fh.write("# changed by the rollback test\n")
    second = f"op2-{uuid.uuid4().hex[:6]}"
    for key, value in (("appRoot", str(app)), ("releaseId", second)):
        assert deployed.ws.pulumi("config", "set", f"devtools:{key}", value, stack="local").returncode == 0
    deployed.up("local")
    before = deployed.outputs()
    assert before["release"]["id"] == second
    assert list(before["releases"]) == [deployed.first, second]

    back = deployed.cli("rollback", "--yes")
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr
    assert f"set devtools:release = {deployed.first} on stack local" in back.stdout
    after = deployed.outputs()
    assert after["release"]["id"] == deployed.first and after["validation"]["passed"] is True
    status = deployed.cli("status")
    n = len(SERVICES) - len(DATA_SERVICES)  # the colors run the app tier; the data tier is project data
    assert f"host 127.0.0.1:2222: current {deployed.first}, previous {second}, {n}/{n} services running healthy" \
        in status.stdout, status.stdout
    running = json.loads(deployed.cli("status", "--json").stdout)["hosts"]["127.0.0.1:2222"]["services"]
    assert running["code-review"]["image"] == after["release"]["images"]["code-review"]
    assert after["release"]["images"]["code-review"] != before["release"]["images"]["code-review"]


def test_drift_after_a_container_is_changed_by_hand(deployed: Deployed) -> None:
    clean = deployed.cli("drift")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    container = "green-cicd-1"
    assert subprocess.run(["docker", "stop", "--time", "2", container], capture_output=True,
                          check=False).returncode == 0
    try:
        found = deployed.cli("drift")
        assert found.returncode == 1, found.stdout + found.stderr
        # the color's 7 services and the data tier's 2 (its own project, its own release)
        assert "DRIFT: 1 of 9 checks on 1 host(s) differ from the stack" in found.stdout
        assert any(line.split()[:3] == ["127.0.0.1:2222", "state-persistence", "ok"]
                   for line in found.stdout.splitlines()), found.stdout
        assert any(line.split()[1:3] == ["cicd", "STOPPED"] for line in found.stdout.splitlines()[1:]), found.stdout
    finally:
        subprocess.run(["docker", "start", container], capture_output=True, check=False)


def test_the_data_tier_does_not_flip_and_its_backup_restores(deployed: Deployed) -> None:
    """Records written through green are read through blue after a flip and all of them after the flip back: both
    colors reach the one data project (`data`, released once by the local stack); neither color runs a data service
    of its own. Then the runbook's backup and restore: `ops.cli data backup --stack local` copies the data project's
    volumes on the host, `ops.cli data restore --into` a fresh project gives back every record."""
    lb = deployed.env.lb_url

    def records() -> int:
        answer = httpx.get(f"{lb}/state", timeout=10)
        assert answer.status_code == 200, answer.text
        return int(answer.json()["records"])

    def write(n: int) -> None:
        for i in range(n):
            answer = httpx.post(f"{lb}/state", json={"engine": i}, timeout=10)
            assert answer.status_code == 201, answer.text

    data = deployed.outputs()["data"]
    release = data["release"]["id"]
    assert data["validation"]["passed"] is True and release.startswith("data-")
    assert "data" not in deployed.outputs("local-blue")  # blue follows: it reads the data tier, owns none
    for color in ("green", "blue"):
        running = subprocess.run(["docker", "ps", "--format", "{{.Names}}", "--filter",
                                  f"label=com.docker.compose.project={color}"], capture_output=True, text=True,
                                 timeout=60, check=True).stdout.split()
        assert running and not any("state-persistence" in n or "rag-context" in n for n in running), running
    before = records()
    write(3)
    assert deployed.cli("flip", "blue", "--yes").returncode == 0 and deployed.served_by() == "blue"
    assert records() == before + 3
    write(2)
    assert deployed.cli("flip", "green", "--yes").returncode == 0 and deployed.served_by() == "green"
    assert records() == before + 5
    assert deployed.outputs()["data"]["release"] == data["release"]  # two flips released nothing on the data tier
    status = deployed.cli("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"data tier (never flips): release {release}, validation passed\n" \
        f"data host 127.0.0.1:2222: current {release}, previous " in status.stdout, status.stdout
    assert ", 2/2 services running healthy\n" in status.stdout, status.stdout

    backup = deployed.cli("data", "backup")
    assert backup.returncode == 0, backup.stdout + backup.stderr
    manifests = sorted((deployed.env.host_root / "data" / "backups").glob("*/manifest.json"))
    backup_id = json.loads(manifests[-1].read_text())["id"]
    fresh = f"restore-{uuid.uuid4().hex[:6]}"
    restored = deployed.cli("data", "restore", "--backup", backup_id, "--into", fresh, "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    image = deployed.outputs()["release"]["images"]["state-persistence"]
    try:
        count = subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{fresh}_state-data:/v:ro",
                                "--entrypoint", "/bin/sh", image, "-c", "wc -l < /v/records.jsonl"],
                               capture_output=True, text=True, timeout=120, check=True).stdout
        assert int(count) == before + 5
    finally:  # this test's own scratch project: its restored copies only
        subprocess.run(["docker", "volume", "rm", f"{fresh}_state-data", f"{fresh}_rag-index"],
                       capture_output=True, check=False)
