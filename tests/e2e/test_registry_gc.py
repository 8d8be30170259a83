"""Registry retention end to end on the stand-in (registry 2.8 with deletes enabled, dockerd, sshd, the real pulumi
CLI on a file backend): five releases pushed into repositories of their own; two kept by the owner stack's history,
one by a standby's release, one by a host's `previous`. `ops.cli registry-gc` refuses while a release holds the
stack's lock and while a stack's history cannot be read (nothing deleted, the stack named); then it deletes exactly
the manifests no one can ask for, the registry's garbage collection frees their blobs, and every kept release still
pulls and applies.

The stacks' outputs are imported as state (`pulumi stack import`): what `pulumi up` would have recorded, read back by
the CLI as ops.cli reads any stack. The tests share the stacks and the host project and run in file order.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from bench.workspace import Workspace, file_backend, toolchain_env
from ops.registry_v2 import RegistryV2
from standin import localenv
from tests.e2e.conftest import ROOT, Host, build_release
from tests.e2e.releases import FAST, changed_app, drop_local_images

PROJECT, PREFIX = "gcgc", "73"
PULUMI_PROJECT = "devtools"


class Stacks:
    """A Pulumi project directory and file backend of the test's own, with stacks whose outputs are imported."""

    def __init__(self, directory: Path, env: localenv.LocalEnv, prefix: str) -> None:
        (directory / "state").mkdir(parents=True)
        (directory / "Pulumi.yaml").write_text(f"name: {PULUMI_PROJECT}\nruntime: python\n")
        self.ws = Workspace(directory, {**toolchain_env(), "PULUMI_BACKEND_URL": file_backend(directory / "state"),
                                        "PULUMI_CONFIG_PASSPHRASE": "gc-e2e", "PULUMI_SKIP_UPDATE_CHECK": "true"})
        self.dir, self.env, self.local, self.prefix = directory, self.ws.env, env, prefix

    def put(self, stack: str, outputs: dict[str, Any]) -> None:
        """The stack (created once) with exactly `outputs` as its root resource's outputs."""
        if not (self.dir / f"Pulumi.{stack}.yaml").exists():
            assert self.ws.pulumi("stack", "init", stack=stack).returncode == 0
            (self.dir / f"Pulumi.{stack}.yaml").write_text(f"config:\n  devtools:repoPrefix: {self.prefix}\n")
        deployment = {"version": 3, "deployment": {"manifest": {"time": "2026-12-03T00:00:00Z", "magic": "",
                                                                "version": ""},
                                                   "resources": [{"urn": f"urn:pulumi:{stack}::{PULUMI_PROJECT}::"
                                                                         f"pulumi:pulumi:Stack::{PULUMI_PROJECT}-{stack}",
                                                                  "custom": False, "type": "pulumi:pulumi:Stack",
                                                                  "outputs": outputs}]}}
        path = self.dir / f"{stack}.deployment.json"
        path.write_text(json.dumps(deployment))
        imported = self.ws.pulumi("stack", "import", "--file", str(path), stack=stack)
        assert imported.returncode == 0, imported.stderr

    def gc(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ops.cli", "registry-gc", "--stack", "gcprod", "--cwd",
                               str(self.dir), "--ssh-key", str(self.local.ssh_key), "--keep-recent", "0", *args],
                              cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=900, check=False)


def record(pins: dict[str, Any]) -> dict[str, Any]:
    return {"id": pins["release"], "images": pins["images"], "commit": None}


@pytest.fixture(scope="module")
def world(local_env: localenv.LocalEnv, host: Host, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Five releases in repositories of this run (`gc<hex>/<service>`); each has a documentation image of its own
    (changed source), the other services' images are r1's. The host runs r2, then r5 (its previous is r2)."""
    tmp = tmp_path_factory.mktemp("registry-gc")
    prefix = f"gc{uuid.uuid4().hex[:8]}"
    releases: dict[str, dict[str, Any]] = {}
    for n in range(1, 6):
        rid = f"{prefix}-r{n}"
        app = changed_app(tmp, "documentation", rid)
        if n == 1:
            releases["r1"] = build_release(local_env, rid, "--repo-prefix", prefix, app_root=app)
        else:
            doc = build_release(local_env, rid, "--repo-prefix", prefix, "--services", "documentation", app_root=app)
            images = {**releases["r1"]["images"], "documentation": doc["images"]["documentation"]}
            releases[f"r{n}"] = {**releases["r1"], "release": rid, "images": images}
    for name in ("r2", "r5"):
        shipped = host.ship(releases[name], PROJECT, *FAST, env={"HOST_PORT_PREFIX": PREFIX})
        assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    status = host.status(PROJECT)
    assert (status["current"], status["previous"]) == (releases["r5"]["release"], releases["r2"]["release"])

    stacks = Stacks(tmp / "project", local_env, prefix)
    hosts = {"names": ["stand-in"], "addresses": [local_env.ssh_host], "ports": [local_env.ssh_port],
             "sshUser": local_env.ssh_user, "sshHostKey": "", "root": host.root}
    stacks.put("gcprod", {"color": PROJECT, "registry": {"address": local_env.registry}, "hosts": hosts,
                          "release": record(releases["r5"]),
                          "releases": {releases[n]["release"]: record(releases[n]) for n in ("r4", "r5")}})
    stacks.put("gcblue", {"color": "blue", "release": record(releases["r3"])})
    return {"releases": releases, "stacks": stacks, "prefix": prefix, "registry": RegistryV2(local_env.registry)}


def doc_of(world: dict[str, Any], name: str) -> tuple[str, str]:
    repo, digest = world["releases"][name]["images"]["documentation"].split("@")
    return repo.split("/", 1)[1], digest


def inventory(world: dict[str, Any]) -> set[tuple[str, str]]:
    registry: RegistryV2 = world["registry"]
    return {(m.repo, m.digest) for m in registry.manifests(registry.repositories(world["prefix"]))}


def test_refused_while_a_release_holds_the_stacks_lock(world: dict[str, Any]) -> None:
    """Rule: never while a deploy runs (its new images are recorded only when it ends). Risk: deleting them."""
    before = inventory(world)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom ops.deploy_lock import release_lock\n"
                               "with release_lock('gcprod', 'release rel-7'):\n    print('held', flush=True)\n"
                               "    time.sleep(120)\n"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        proc = world["stacks"].gc("--yes")
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "another run on stack gcprod holds its lock (run release rel-7, pid" in proc.stderr
    assert "delete" not in proc.stdout
    assert inventory(world) == before


def test_refused_when_a_stacks_history_cannot_be_read(world: dict[str, Any]) -> None:
    before = inventory(world)
    world["stacks"].put("gcbroken", {"color": "green", "releases": ["r1", "r2"]})
    proc = world["stacks"].gc("--yes")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert ("error: stack gcbroken's output releases is not a map of release id → release; refusing to delete "
            "anything") in proc.stderr
    assert inventory(world) == before
    world["stacks"].put("gcbroken", {"color": "green"})  # repaired: a stack that records no release yet


def test_untagged_manifests_are_never_collected_from_a_registry_that_cannot_tell_an_index_child(
        world: dict[str, Any]) -> None:
    before = inventory(world)
    proc = world["stacks"].gc("--yes", "--include-untagged")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "error: --include-untagged is for DigitalOcean's registry; 127.0.0.1:5000 collects only blobs" in proc.stderr
    assert inventory(world) == before


def test_the_dry_run_names_what_stays_and_what_goes_and_deletes_nothing(world: dict[str, Any]) -> None:
    before = inventory(world)
    proc = world["stacks"].gc("--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = {n: p["release"] for n, p in world["releases"].items()}
    assert f"  {r['r2']}  host stand-in:{PROJECT} previous\n" in proc.stdout
    assert f"  {r['r3']}  stack gcblue release\n" in proc.stdout
    assert f"  {r['r4']}  stack gcprod history\n" in proc.stdout
    assert "delete 1 of 13 manifests" in proc.stdout
    repo, digest = doc_of(world, "r1")
    assert f"  {repo}@{digest[:19]}  {r['r1']}\n" in proc.stdout
    assert proc.stdout.rstrip().endswith("dry run: nothing deleted")
    assert inventory(world) == before


def test_registry_gc_deletes_exactly_what_no_one_can_ask_for_and_frees_its_blobs(world: dict[str, Any],
                                                                                 local_env: localenv.LocalEnv) -> None:
    registry: RegistryV2 = world["registry"]
    repo, gone = doc_of(world, "r1")
    docs = {m.digest: {b.digest for b in m.blobs} for m in registry.manifests([repo])}
    unique = docs[gone] - set().union(*(docs[doc_of(world, n)[1]] for n in ("r2", "r3", "r4", "r5")))
    assert unique and all(registry.exists(repo, blob, "blobs") for blob in unique)  # its config, its changed layer
    before = inventory(world)
    data = local_env.state / "registry" / "data"
    size_before = _du(data)

    proc = world["stacks"].gc("--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (repo, gone) not in inventory(world)
    assert inventory(world) == before - {(repo, gone)}  # exactly r1's own image: the rest is asked for
    assert not registry.exists(repo, gone)
    assert not any(registry.exists(repo, blob, "blobs") for blob in unique)
    for name in ("r2", "r3", "r4", "r5"):
        assert registry.exists(*doc_of(world, name)), name
    assert "done: 1 manifests deleted; the registry's data directory shrank by " in proc.stdout
    assert _du(data) < size_before


def test_a_rollback_to_each_kept_release_still_pulls_and_applies(world: dict[str, Any], host: Host) -> None:
    for name in ("r3", "r4", "r2"):
        pins = world["releases"][name]
        drop_local_images(pins, ["documentation"])
        shipped = host.ship(pins, PROJECT, *FAST, env={"HOST_PORT_PREFIX": PREFIX})
        out = shipped.stdout + shipped.stderr
        assert shipped.returncode == 0, out
        assert "pulled images of" in out, out
        assert host.status(PROJECT)["current"] == pins["release"]


def _du(path: Path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])
