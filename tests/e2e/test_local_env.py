"""scripts/local-env.sh on this machine: up (twice: the second changes nothing), status, and each part real."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.signing import COSIGN
from components.tiers import read_tiers
from standin import localenv
from tests.compose_services import SERVICES

# the first `up` on a fresh machine installs packages and builds cosign (scripts/signing-local.sh)
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3700)]
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "local-env.sh"
ENV = localenv.load()
DAEMONS = ("registry", "sshd", "haproxy", "prometheus", "langfuse", "node-exporter")
SIGNING = (ENV.state / "signing" / "cosign.key", ENV.state / "signing" / "cosign.pub")


def run(*args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    proc = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False)
    return proc, time.monotonic() - t0


def pids() -> dict[str, str]:
    return {d: (ENV.state / "run" / f"{d}.pid").read_text().strip() for d in DAEMONS}


def ssh(*remote: str, known_hosts: Path = ENV.known_hosts) -> subprocess.CompletedProcess[str]:
    argv = ["ssh", "-i", str(ENV.ssh_key), "-o", f"UserKnownHostsFile={known_hosts}"]
    argv += ["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", str(ENV.ssh_port)]
    argv += [f"{ENV.ssh_user}@{ENV.ssh_host}", *remote]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def env_up() -> Iterator[float]:
    """Brings the environment up; stops it afterwards only when it was not up before."""
    was_up = run("status")[0].returncode == 0
    proc, took = run("up", timeout=3600)  # a fresh machine installs packages and builds cosign first
    print(f"\nlocal-env.sh up (first call in this run): {took:.1f}s\n{proc.stdout}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield took
    if not was_up:
        assert run("down")[0].returncode == 0


def test_the_state_directory_is_ours_and_private(env_up: float, tmp_path: Path) -> None:
    """The state (SSH keys, authorized_keys, registry data, logs) lives under world-writable /var/tmp: it must be
    0700, and a directory another user created there first (or a symlink) must be refused, before anything runs."""
    st = ENV.state.stat()
    assert (st.st_mode & 0o777, st.st_uid) == (0o700, os.geteuid())
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, -1)  # nobody
    proc = subprocess.run([str(SCRIPT), "stop", "registry"], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "DEVTOOLS_STATE": str(theirs)})
    assert proc.returncode == 1
    assert f"local-env: error: {theirs} exists but is not a directory owned by " in proc.stderr
    assert list(theirs.iterdir()) == []


def test_second_up_is_fast_and_changes_nothing(env_up: float) -> None:
    before = pids()
    configs = [ENV.state / "haproxy" / "haproxy.cfg", ENV.state / "registry" / "config.yml"]
    configs += [ENV.state / "prometheus" / "prometheus.yml", ENV.state / "prometheus" / "slo-rules.yml",
                ENV.langfuse_keys, ENV.ssh_dir / "sshd_config", ENV.known_hosts, Path(COSIGN), *SIGNING]
    mtimes = {p: p.stat().st_mtime_ns for p in configs}
    proc, took = run("up")
    print(f"\nlocal-env.sh up (warm): {took:.1f}s")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("==> local environment up (state: ")  # no step had anything to do
    assert len(proc.stdout.splitlines()) == 1, proc.stdout
    assert took < 15
    assert pids() == before
    assert {p: p.stat().st_mtime_ns for p in configs} == mtimes


def test_status_reports_every_part_up(env_up: float) -> None:
    proc, _ = run("status")
    assert proc.returncode == 0, proc.stdout
    parts = {line.split()[0]: line.split()[-1] for line in proc.stdout.splitlines()}
    assert set(parts) == {"dockerd", "compose", "network", "registry", "sshd", "haproxy", "prometheus", "langfuse",
                          "node-exporter"}
    assert "down" not in proc.stdout


def test_the_host_runs_the_toolchains_cosign_and_the_key_pair_is_private(env_up: float) -> None:
    """The last step of `up` (scripts/signing-local.sh): the cosign the host agent runs is the one the toolchain
    built from the module proxy (the release cloud-init installs on droplets), and the local key pair is 0600/0644
    in a 0700 directory (the second `up` above leaves both untouched)."""
    path = subprocess.run(["bash", str(ROOT / "scripts" / "pulumi-toolchain.sh"), "path", "cosign"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert path.returncode == 0, path.stderr
    assert Path(COSIGN).read_bytes() == Path(path.stdout.strip()).read_bytes()
    version = subprocess.run([COSIGN, "version"], capture_output=True, text=True, timeout=30, check=False)
    assert "GitVersion:    v3.1.3" in version.stdout.splitlines(), version.stdout + version.stderr
    key, pub = SIGNING
    assert ((key.parent.stat().st_mode & 0o777), (key.stat().st_mode & 0o777), (pub.stat().st_mode & 0o777)) == (
        0o700, 0o600, 0o644)
    assert "ENCRYPTED SIGSTORE PRIVATE KEY" in key.read_text() and "BEGIN PUBLIC KEY" in pub.read_text()


def test_ssh_host_runs_docker_compose_with_strict_host_key_checking(env_up: float, tmp_path: Path) -> None:
    proc = ssh("docker", "compose", "version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Docker Compose version v2.40.3"
    assert ssh("docker", "info", "--format", "{{.ServerVersion}}").returncode == 0
    unknown = tmp_path / "known_hosts"
    unknown.write_text("")
    refused = ssh("true", known_hosts=unknown)  # the same host with no known key: refused, not trusted
    assert refused.returncode == 255
    assert "Host key verification failed" in refused.stderr


def test_host_bootstrap_made_the_host_venv(env_up: float) -> None:
    proc = ssh(f"{ENV.host_root}/venv/bin/python -c 'import httpx; print(httpx.__version__)'")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0.28.1"
    assert (ENV.host_root.stat().st_mode & 0o777) == 0o755


def test_registry_answers_v2(env_up: float) -> None:
    r = httpx.get(f"http://{ENV.registry}/v2/", timeout=5)
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-Api-Version"] == "registry/2.0"


def test_prometheus_is_ready_and_scrapes_both_colors_and_the_data_tier(env_up: float) -> None:
    """The colors' app-tier services, and the data tier's services once (color "data", its own port prefix)."""
    assert httpx.get(ENV.prometheus_url + "/-/ready", timeout=5).status_code == 200
    every = httpx.get(ENV.prometheus_url + "/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
    targets = [t for t in every if t["labels"]["job"] == "devtools"]
    labels = {(t["labels"]["color"], t["labels"]["service"]): t["scrapeUrl"] for t in targets}
    data = read_tiers((ROOT / "compose" / "docker-compose.yml").read_text()).data
    assert sorted(labels) == sorted([(c, s) for c in ("green", "blue") for s in SERVICES if s not in data]
                                    + [("data", s) for s in data])
    assert labels[("data", "state-persistence")] == f"http://127.0.0.1:{ENV.data_port_prefix}08/metrics"
    assert labels[("blue", "gateway-mcp")] == f"http://127.0.0.1:{ENV.port_prefix['blue']}00/metrics"
    assert {t["scrapeInterval"] for t in targets} == {"2s"}
    # and the host agent's rollout metrics, through node_exporter's textfile collector
    [node] = [t for t in every if t["labels"]["job"] == "node"]
    assert (node["scrapeUrl"], node["health"] in ("up", "unknown")) == (f"{ENV.node_exporter_url}/metrics", True)


def test_the_new_daemons_listen_on_loopback_and_the_docker_bridge_only(env_up: float) -> None:
    """node_exporter on loopback alone (the package's own service on *:9100 is not running); the Langfuse stand-in on
    loopback and docker0's private address, which the containers reach it by."""
    listening = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, timeout=30, check=True).stdout
    by_port: dict[int, set[str]] = {}
    for line in listening.splitlines():
        address = line.split()[3]
        host, _, port = address.rpartition(":")
        by_port.setdefault(int(port), set()).add(host)
    assert by_port[ENV.node_exporter_port] == {"127.0.0.1"}
    assert 9100 not in by_port
    bridge = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", "docker0"], capture_output=True, text=True,
                            timeout=30, check=True).stdout.split()[3].split("/")[0]
    assert by_port[ENV.langfuse_port] == {"127.0.0.1", bridge}


def test_the_data_network_exists_and_up_keeps_it(env_up: float) -> None:
    """The colors reach the data tier over it; a second `up` (test_second_up_is_fast_and_changes_nothing) leaves it."""
    inspect = subprocess.run(["docker", "network", "inspect", "--format", "{{.Name}} {{.Driver}}", ENV.data_network],
                             capture_output=True, text=True, timeout=30, check=False)
    assert (inspect.returncode, inspect.stdout.strip()) == (0, f"{ENV.data_network} bridge"), inspect.stderr


def test_haproxy_answers_on_the_lb_port(env_up: float) -> None:
    r = httpx.get(ENV.lb_url + "/health", timeout=5)
    live = (ENV.state / "live-color").read_text().strip() if (ENV.state / "live-color").exists() else "green"
    with socket.socket() as s:
        gateway_up = s.connect_ex(("127.0.0.1", ENV.gateway_port(live))) == 0
    assert r.status_code == (200 if gateway_up else 503)  # 503: haproxy itself, no live gateway behind it
    other = "blue" if live == "green" else "green"
    with socket.socket() as s:
        other_up = s.connect_ex(("127.0.0.1", ENV.gateway_port(other))) == 0
    if not other_up:  # flipping to a color with nothing behind it is refused and changes nothing
        proc, _ = run("flip", other)
        assert proc.returncode == 1
        assert f"refused: {other}'s health check is not UP" in proc.stderr
        assert run("status")[0].stdout.count(f"up (live: {live})") == 1


def test_down_stops_everything_and_deletes_nothing(env_up: float) -> None:
    if (ENV.state / "run" / "dockerd.pid").exists():
        pytest.skip("dockerd was started by local-env.sh: down would stop containers that later tests use")
    kept = [ENV.ssh_key, ENV.known_hosts, ENV.state / "registry" / "data", ENV.state / "prometheus" / "data",
            *SIGNING]
    inodes = {p: os.stat(p).st_ino for p in kept}
    proc, _ = run("down")
    assert proc.returncode == 0, proc.stderr
    status, _ = run("status")
    assert status.returncode == 1
    assert [line.split()[0] for line in status.stdout.splitlines() if line.endswith(" down")] == list(
        ("registry", "sshd", "haproxy", "prometheus", "langfuse", "node-exporter")
    )
    assert {p: os.stat(p).st_ino for p in kept} == inodes
    proc, took = run("up")
    print(f"\nlocal-env.sh up after down: {took:.1f}s")
    assert proc.returncode == 0, proc.stderr
    assert run("status")[0].returncode == 0
