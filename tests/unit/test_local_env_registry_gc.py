"""scripts/local-env.sh registry-gc against a real registry (Debian's docker-registry) on a loopback port of its
own, with its state in a temporary directory: the config the script writes enables deletes by digest, the blobs of
a manifest deleted by digest are freed and those of a kept one stay, the stdout line says how many bytes went, and
the registry takes pushes again afterwards, also when the collection failed."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.live  # real processes (tests/unit/conftest.py)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "local-env.sh"
REGISTRY = Path("/usr/bin/docker-registry")
FREED = re.compile(r"freed (\d+) bytes \((\d+) -> (\d+)\)")
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sandbox:
    def __init__(self, tmp_path: Path) -> None:
        self.state = tmp_path / "state"
        self.addr = f"127.0.0.1:{free_port()}"
        self.config = self.state / "registry" / "config.yml"
        self.pidfile = self.state / "run" / "registry.pid"
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEVTOOLS_STATE": str(self.state),
                    "REGISTRY_ADDR": self.addr}

    def start(self, config: str) -> None:
        """The registry as `local-env.sh up` leaves it: its pid file, its log, `config` as its config."""
        for d in ("registry/data", "run", "logs"):
            (self.state / d).mkdir(parents=True, exist_ok=True)
        self.state.chmod(0o700)
        self.config.write_text(config)
        subprocess.run(["start-stop-daemon", "--start", "--quiet", "--background", "--make-pidfile", "--pidfile",
                        str(self.pidfile), "--output", str(self.state / "logs" / "registry.log"), "--exec",
                        str(REGISTRY), "--", "serve", str(self.config)], check=True, timeout=10,
                       stdin=subprocess.DEVNULL)
        for _ in range(100):
            if self.status("/v2/") == 200:
                return
            subprocess.run(["sleep", "0.1"], check=True)
        pytest.fail(f"the registry on {self.addr} did not answer: {(self.state / 'logs' / 'registry.log').read_text()}")

    def stop(self) -> None:
        subprocess.run(["start-stop-daemon", "--stop", "--quiet", "--retry", "TERM/5/KILL/5", "--pidfile",
                        str(self.pidfile), "--exec", str(REGISTRY)], check=False, timeout=20)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                              check=False, env=self.env)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
        req = urllib.request.Request(f"http://{self.addr}{path}", data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers)
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers)

    def status(self, path: str, method: str = "GET") -> int:
        try:
            return self.request(method, path)[0]
        except OSError:
            return 0

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        code, headers = self.request("POST", f"/v2/{repo}/blobs/uploads/")
        assert code == 202, code
        location = headers["Location"]
        sep = "&" if "?" in location else "?"
        code, _ = self.request("PUT", f"{location.removeprefix(f'http://{self.addr}')}{sep}digest={digest}", data,
                               {"Content-Type": "application/octet-stream"})
        assert code == 201, code
        return digest

    def push_image(self, repo: str, tag: str, layer: bytes) -> tuple[str, str]:
        """A one-layer image; returns its manifest's digest and its layer's."""
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                             "created": tag}).encode()
        config_digest, layer_digest = self.push_blob(repo, config), self.push_blob(repo, layer)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config),
                       "digest": config_digest},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(layer),
                        "digest": layer_digest}]}).encode()
        code, headers = self.request("PUT", f"/v2/{repo}/manifests/{tag}", manifest, {"Content-Type": MANIFEST_TYPE})
        assert code == 201, code
        return headers["Docker-Content-Digest"], layer_digest


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    if not REGISTRY.exists():
        pytest.skip(f"{REGISTRY} is missing: apt-get install docker-registry (scripts/local-env.sh up installs it)")
    box = Sandbox(tmp_path)
    yield box
    box.stop()


# The config `local-env.sh up` wrote before deletes were enabled.
OLD_CONFIG = """version: 0.1
log: {{level: info}}
storage:
  filesystem: {{rootdirectory: {data}}}
  delete: {{enabled: false}}
http: {{addr: {addr}}}
"""


def test_registry_gc_enables_deletes_and_frees_the_blobs_of_a_manifest_deleted_by_digest(sandbox: Sandbox) -> None:
    sandbox.start(OLD_CONFIG.format(data=sandbox.state / "registry" / "data", addr=sandbox.addr))
    kept_manifest, kept_layer = sandbox.push_image("gcscratch/kept", "a", b"kept layer " * 1000)
    # Nothing to collect yet; the registry comes back with the script's config, which enables deletes.
    first = sandbox.run("registry-gc")
    assert first.returncode == 0, first.stderr
    same = FREED.fullmatch(first.stdout.rstrip("\n"))
    assert same and same.group(1) == "0" and same.group(2) == same.group(3), first.stdout
    config = yaml.safe_load(sandbox.config.read_text())
    assert config["storage"]["delete"] == {"enabled": True}
    assert "maintenance" not in config["storage"]
    assert sandbox.config.read_text().startswith(
        "# Written by scripts/local-env.sh: the local registry, loopback only; deletes by digest are enabled for\n"
        "# ops.cli registry-gc; nothing else deletes.\n")
    for line in ("==> registry read-only for garbage collection (pulls served, pushes refused)",
                 "==> garbage-collect exited 0 (log: "):
        assert line in first.stderr, first.stderr

    manifest, layer = sandbox.push_image("gcscratch/one", "x", b"throwaway layer " * 4000)
    assert sandbox.status(f"/v2/gcscratch/one/blobs/{layer}") == 200
    assert sandbox.request("DELETE", f"/v2/gcscratch/one/manifests/{manifest}")[0] == 202
    proc = sandbox.run("registry-gc")
    assert proc.returncode == 0, proc.stderr
    freed = FREED.fullmatch(proc.stdout.rstrip("\n"))
    assert freed and proc.stdout.count("\n") == 1, proc.stdout
    n, before, after = map(int, freed.groups())
    assert n == before - after and n >= len(b"throwaway layer " * 4000), proc.stdout
    assert sandbox.status(f"/v2/gcscratch/one/blobs/{layer}") == 404
    assert sandbox.status(f"/v2/gcscratch/kept/blobs/{kept_layer}") == 200
    assert sandbox.status(f"/v2/gcscratch/kept/manifests/{kept_manifest}", "HEAD") == 200
    assert sandbox.request("POST", "/v2/gcscratch/two/blobs/uploads/")[0] == 202  # takes pushes again
    assert "marking manifest" in (sandbox.state / "registry" / "gc.log").read_text()


def test_a_failed_collection_exits_non_zero_and_the_registry_takes_pushes_again(sandbox: Sandbox) -> None:
    sandbox.start(OLD_CONFIG.format(data=sandbox.state / "registry" / "data", addr=sandbox.addr))
    _, layer = sandbox.push_image("gcscratch/kept", "a", b"kept layer")
    # a manifest revision naming a blob that is no manifest: garbage-collect cannot read it and stops
    link = (sandbox.state / "registry" / "data" / "docker" / "registry" / "v2" / "repositories" / "gcscratch" /
            "kept" / "_manifests" / "revisions" / "sha256" / layer.removeprefix("sha256:") / "link")
    link.parent.mkdir(parents=True)
    link.write_text(layer)
    proc = sandbox.run("registry-gc")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "local-env: error: garbage-collect failed (exit 1, log: " in proc.stderr, proc.stderr
    config = yaml.safe_load(sandbox.config.read_text())
    assert "maintenance" not in config["storage"] and config["storage"]["delete"] == {"enabled": True}
    assert sandbox.status("/v2/") == 200
    assert sandbox.request("POST", "/v2/gcscratch/two/blobs/uploads/")[0] == 202


def test_registry_gc_refuses_when_the_registry_is_not_running(sandbox: Sandbox) -> None:
    proc = sandbox.run("registry-gc")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == (f"local-env: error: the registry is not running (no live {sandbox.state}/run/registry.pid):"
                           " 'scripts/local-env.sh up' first\n")
    assert not sandbox.config.exists()


def test_usage_names_registry_gc(sandbox: Sandbox) -> None:
    proc = sandbox.run("--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: scripts/local-env.sh up|down|status|flip <green|blue>|stop <part>|"
                                  "restart-docker|registry-gc|--help\n")
    assert "  registry-gc  the registry's garbage collection" in proc.stdout
