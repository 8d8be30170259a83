"""The data tier's backups on the real stand-in: the data tier's compose file shipped as its own projects, records
written over HTTP, `ops.cli data backup|backups|restore` over real SSH (the stack's outputs from a stand-in `pulumi`
on PATH) and the host agent's commands, each as docs/runbook.md writes it (tests/data_commands.py).

Projects: dataops-src (ports 96xx, the data tier), dataops-restore (97xx, a fresh project), dataops-upgrade (98xx,
a data tier that never ran, filled from dataops-src as from a color's own volumes). They are stopped at the end
(compose down, never -v), then the volumes of these three names are removed: the next run needs them fresh.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.release import release_manifest
from components.tiers import DATA, tier_compose
from ops.ship import ship
from standin import localenv
from tests.data_commands import Names, agent, cli
from tests.e2e.conftest import ROOT, Host, build_release

SRC, FRESH, UPGRADE = "dataops-src", "dataops-restore", "dataops-upgrade"
PREFIX = {SRC: "96", FRESH: "97", UPGRADE: "98"}
VOLUMES = ("state-data", "rag-index")
FAKE_PULUMI = """#!/bin/sh
# the stand-in's `pulumi`: stack local's outputs, its sshPrivateKeyPath, no other config key
case "$1 $2 $3" in
  "stack output --json") cat {outputs} ;;
  "config get devtools:sshPrivateKeyPath") echo {key} ;;
  "config get "*) echo "error: configuration key '$3' not found for stack 'local'" >&2; exit 1 ;;
  *) echo "the stand-in pulumi does not know: $*" >&2; exit 9 ;;
esac
"""


def remove_volumes() -> None:
    """Only the volumes of this module's own project names (their data is this test's)."""
    for project in PREFIX:
        for volume in VOLUMES:
            subprocess.run(["docker", "volume", "rm", f"{project}_{volume}"], capture_output=True, check=False,
                           timeout=60)


@dataclass
class Tier:
    host: Host
    pins: dict[str, Any]
    bin: Path
    backups: dict[str, str]

    def ship(self, project: str) -> None:
        compose = tier_compose((ROOT / "compose" / "docker-compose.yml").read_text(), DATA, network=None)
        manifest = release_manifest(self.pins["release"], self.pins["images"], {"HOST_PORT_PREFIX": PREFIX[project]},
                                    {"commit": "e2e"})
        assert ship(self.host.target, self.host.root, project, manifest, ["--validate-deadline", "60"],
                    compose=compose) == 0

    def cli(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        assert argv[:3] == ["python", "-m", "ops.cli"]
        return subprocess.run([sys.executable, *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}"}, check=False)

    def agent(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return self.host.agent(args[1], *args[2:])

    def manifests(self, project: str) -> list[dict[str, Any]]:
        proc = self.host.agent(project, "backups", "--json")
        assert proc.returncode == 0, proc.stderr
        found: list[dict[str, Any]] = json.loads(proc.stdout)
        return found


KINDS = {"state": "08", "documents": "07"}  # state-persistence's /state, rag-context's /documents


def url(project: str, kind: str) -> str:
    return f"http://127.0.0.1:{PREFIX[project]}{KINDS[kind]}/{kind}"


def post(project: str, kind: str, n: int) -> None:
    for i in range(n):
        answer = httpx.post(url(project, kind), json={"n": i, "at": time.time()}, timeout=10)
        assert answer.status_code == 201, answer.text


def count(project: str, kind: str = "state", deadline: float = 60) -> int:
    """The records the service holds; waits for it to answer (it may have just been started again)."""
    end = time.monotonic() + deadline
    while True:
        try:
            answer = httpx.get(url(project, kind), timeout=5)
            if answer.status_code == 200:
                return int(answer.json()["records"])
        except httpx.HTTPError:
            pass
        assert time.monotonic() < end, f"{project} {kind} did not answer in {deadline}s"
        time.sleep(1)


def lines_in(tar_path: Path, member: str) -> int:
    with tarfile.open(fileobj=io.BytesIO(tar_path.read_bytes())) as tar:
        extracted = tar.extractfile(member)
        assert extracted is not None
        return extracted.read().count(b"\n")


def names(**given: str) -> Names:
    return Names(**{"stack": "local", "project": UPGRADE, "fresh": FRESH, "color": SRC, "backup": "-",
                    "directory": "-", **given})


@pytest.fixture(scope="module")
def tier(host: Host, local_env: localenv.LocalEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tier]:
    remove_volumes()  # an earlier run killed before its end
    pins = build_release(local_env, "dataops-1", "--services", "rag-context,state-persistence")
    bin_dir = tmp_path_factory.mktemp("pulumi-standin")
    host_key = " ".join(local_env.known_hosts.read_text().split()[1:3])
    outputs = {"data": {"hosts": {"names": ["stand-in"], "addresses": [local_env.ssh_host],
                                  "ports": [local_env.ssh_port], "sshUser": local_env.ssh_user,
                                  "sshHostKey": host_key, "root": host.root, "project": SRC}}}
    (bin_dir / "outputs.json").write_text(json.dumps(outputs))
    (bin_dir / "pulumi").write_text(FAKE_PULUMI.format(outputs=bin_dir / "outputs.json", key=local_env.ssh_key))
    (bin_dir / "pulumi").chmod(0o755)
    yield Tier(host, pins, bin_dir, {})
    for project in PREFIX:
        host.agent(project, "stop")  # compose down: never -v
    remove_volumes()


def test_a_backup_restores_into_a_fresh_project_and_never_over_data(tier: Tier) -> None:
    """Rule: `data backup` copies every named volume with the services paused (and running again after), as 0600
    tars whose sha256 the manifest records; `data restore --into` a fresh project brings back every record; a
    project that holds data is refused (exit 2) and keeps its data. Risk: a backup of half-written files, or a
    restore that mixes or overwrites the data a typo pointed it at."""
    tier.ship(SRC)
    post(SRC, "state", 5)
    post(SRC, "documents", 2)
    proc = tier.cli(cli(names())["backup"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("backup ") and f" of project {SRC} (release dataops-1) written to " in last, proc.stdout
    backup_id = tier.backups["first"] = last.split()[1]
    where = Path(tier.host.root) / SRC / "backups" / backup_id
    (manifest,) = tier.manifests(SRC)
    assert (manifest["id"], manifest["label"], manifest["paused"]) == (backup_id, "before-upgrade",
                                                                      ["rag-context", "state-persistence"])
    for volume in manifest["volumes"]:
        data = (where / volume["file"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (volume["size"], volume["sha256"])
        assert (where / volume["file"]).stat().st_mode & 0o777 == 0o600
    assert where.stat().st_mode & 0o777 == 0o700
    assert lines_in(where / "state-data.tar", "./records.jsonl") == 5
    running = tier.host.status(SRC)["services"]
    assert {s: running[s]["state"] for s in running} == {"rag-context": "running", "state-persistence": "running"}

    listed = tier.cli(cli(names())["backups"])
    assert listed.returncode == 0 and f"  {backup_id}  release dataops-1  " in listed.stdout, listed.stdout

    # A fresh project: it never ran, so its volumes do not exist (a project that ran holds its migration's schema
    # marker, and a restore there is refused like any project with data). The restore creates them as compose's
    # own; the project's first release adopts them, its migration running over the restored data.
    restored = tier.cli(cli(names(backup=backup_id))["restore"])
    assert restored.returncode == 0, restored.stdout + restored.stderr
    tier.ship(FRESH)
    assert (count(FRESH), count(FRESH, "documents")) == (5, 2)

    post(FRESH, "state", 1)
    refused = tier.cli(cli(names(backup=backup_id))["restore"])
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr.startswith(f"restore failed: project {FRESH}: {FRESH}_rag-index is not empty "
                                     f"(documents.jsonl); {FRESH}_state-data is not empty "
                                     "(records.jsonl, schema-version). "), \
        refused.stderr
    assert count(FRESH) == 6


def test_replace_keeps_a_backup_of_what_it_replaced(tier: Tier) -> None:
    """Rule: `data restore --replace` over the data tier itself first backs up what is there. Risk: the records
    written since the backup are lost for good by a restore."""
    post(SRC, "state", 3)
    assert count(SRC) == 8
    proc = tier.cli(cli(names(backup=tier.backups["first"]))["replace"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert count(SRC) == 5
    kept = tier.manifests(SRC)[-1]
    assert kept["label"] == f"before-restore-{tier.backups['first']}"
    assert lines_in(Path(tier.host.root) / SRC / "backups" / kept["id"] / "state-data.tar", "./records.jsonl") == 8


def test_a_colors_volumes_fill_a_data_tier_that_never_ran(tier: Tier) -> None:
    """Rule: the upgrade from per-color volumes is a backup of the color and a restore into the data tier's
    project (its volumes created as compose's own); a directory (a volume snapshot mounted) is restored the same
    way. Risk: an upgrade that starts the data tier empty while the color's records sit in its old volume."""
    proc = tier.agent(agent(names())["color-backup"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    backup_id = proc.stdout.strip().splitlines()[-1].split()[1]
    proc = tier.agent(agent(names(backup=backup_id))["color-restore"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    labels = subprocess.run(["docker", "volume", "inspect", "--format", "{{json .Labels}}", f"{UPGRADE}_state-data"],
                            capture_output=True, text=True, check=True).stdout
    assert json.loads(labels) == {"com.docker.compose.project": UPGRADE, "com.docker.compose.volume": "state-data"}
    tier.ship(UPGRADE)
    assert (count(UPGRADE), count(UPGRADE, "documents")) == (5, 2)

    with tempfile.TemporaryDirectory(prefix="dataops-snapshot-", dir="/var/tmp") as mounted:
        Path(mounted, "records.jsonl").write_text('{"from":"snapshot"}\n{"from":"snapshot"}\n')
        proc = tier.agent(agent(names(directory=mounted))["import"])
        assert proc.returncode == 0, proc.stdout + proc.stderr
    imported = proc.stdout.strip().splitlines()[-1].split()[1]
    proc = tier.agent(agent(names(backup=imported))["import-restore"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (count(UPGRADE), count(UPGRADE, "documents")) == (2, 2)
