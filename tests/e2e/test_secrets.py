"""Secrets reach the containers through stdin and a 0600 file, byte for byte, and nowhere else: not argv, logs,
the audit log, the resolved config, the validation report, `status`, or a debug bundle, not even when a failing
service prints them."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent.containers import PROJECT_LABEL, SERVICE_LABEL
from agent.secretfile import render_secrets
from standin import localenv
from tests.e2e.conftest import Host, build_release, compose_exec
from tests.e2e.releases import variant


def test_secrets_stay_secret(local_env: localenv.LocalEnv, host: Host, tmp_path: Path) -> None:
    token = f"tok-{uuid.uuid4().hex}"
    password = f"pw-{uuid.uuid4().hex}"
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"LANGFUSE_SECRET_KEY={token}\nQDRANT_API_KEY={password}\n")
    pins = build_release(local_env, "secrets-base")

    seen_argv: list[str] = []
    watcher = subprocess.Popen(["sh", "-c", "for i in $(seq 400); do ps -eo args; sleep 0.1; done"],
                               stdout=subprocess.PIPE, text=True)
    proc = host.ship(pins, "secrets", env={"HOST_PORT_PREFIX": "89"}, secrets_file=secrets)
    watcher.kill()
    seen_argv.append(watcher.communicate()[0])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 secrets written" in proc.stdout

    # the containers do get them
    assert compose_exec("secrets", "orchestrator", "echo $LANGFUSE_SECRET_KEY").stdout.strip() == token
    secrets_path = Path(host.root) / "secrets" / "secrets.env"
    assert stat.S_IMODE(secrets_path.stat().st_mode) == 0o600

    # and nothing else does
    status = host.agent("secrets", "status").stdout
    history = host.agent("secrets", "history", "--json").stdout
    diag = host.ssh(f"cd {host.root}/code && {host.root}/venv/bin/python -m agent.diagnose all --project secrets")
    assert diag.returncode == 0, diag.stderr
    assert "LANGFUSE_SECRET_KEY=***" in diag.stdout
    texts = {"ship output": proc.stdout + proc.stderr, "status": status, "history": history,
             "diagnose": diag.stdout, "process list during the rollout": "".join(seen_argv)}
    for path in (Path(host.root) / "secrets").rglob("*"):
        if path.is_file() and path != secrets_path:
            texts[str(path)] = path.read_text(errors="replace")
    assert any(name.endswith("resolved.json") for name in texts)
    assert any(name.endswith("audit.jsonl") for name in texts)
    for where, text in texts.items():
        assert token not in text and password not in text, f"a secret leaked into {where}"


PROJECT, PREFIX = "secretvals", "87"
PEM = ("-----BEGIN PRIVATE KEY-----\n"
       + "".join(base64.b64encode(os.urandom(48)).decode() + "\n" for _ in range(3))
       + "-----END PRIVATE KEY-----\n")
ROUND_TRIP = {"HASH": "p#ss", "DOLLAR": "pa$word", "DOLLARS": "pa$$word", "SINGLE": "it's", "DOUBLE": 'say "hi"',
              "BACKSLASH": "back\\slash\\", "SIGNING_KEY_PEM": PEM}
TAG = uuid.uuid4().hex[:10]
# harmless-looking names whose values are secrets: only the secrets file says so
BY_VALUE = {"QDRANT_URL": f"http://qdrant.internal:6333/?api_key=qd{TAG}",
            "ALERT_WEBHOOK": f"https://hooks.example.com/services/T01/B02/wh{TAG}",
            "DATABASE_DSN": f"postgres://app:dsn{TAG}@db:5432/app"}


def printenv(project: str, service: str, key: str) -> bytes:
    """The variable's bytes inside the running container (the images' busybox has no printenv applet: the shell's
    printf prints it without adding or changing a byte)."""
    cid = subprocess.run(["docker", "ps", "-q", "--filter", f"label={PROJECT_LABEL}={project}",
                          "--filter", f"label={SERVICE_LABEL}={service}"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert len(cid) == 1, cid
    return subprocess.run(["docker", "exec", cid[0], "sh", "-c", f'printf %s "${key}"'], capture_output=True,
                          check=True, timeout=30).stdout


@pytest.fixture(scope="module")
def valued(local_env: localenv.LocalEnv, host: Host, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The base release on its own project, with the hard values and the by-value secrets in its secrets file."""
    secrets = tmp_path_factory.mktemp("secretvals") / "secrets.env"
    secrets.write_text(render_secrets({**ROUND_TRIP, **BY_VALUE}))
    pins = build_release(local_env, "secrets-base")
    proc = host.ship(pins, PROJECT, env={"HOST_PORT_PREFIX": PREFIX}, secrets_file=secrets)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return pins


def test_secret_values_arrive_byte_for_byte_through_compose(valued: dict[str, Any]) -> None:
    """Compose's env_file parser cut `p#ss`-like values, interpolated `$`, ate quotes and turned a PEM key's lines
    into variables of every container. Each value must equal, byte for byte, what `printenv` sees in a container."""
    for key, value in {**ROUND_TRIP, **BY_VALUE}.items():
        assert printenv(PROJECT, "orchestrator", key) == value.encode(), key
    assert printenv(PROJECT, "orchestrator", "PATH").startswith(b"/")
    env = subprocess.run(["docker", "inspect", "--format", "{{json .Config.Env}}",
                          f"{PROJECT}-orchestrator-1"], capture_output=True, text=True, check=True).stdout
    names = sorted(e.split("=", 1)[0] for e in json.loads(env))
    assert not [n for n in names if n.startswith(("MC", "-----"))], names  # no PEM line became a variable


def test_a_failing_service_that_prints_its_secrets_leaks_none(valued: dict[str, Any], local_env: localenv.LocalEnv,
                                                               host: Host) -> None:
    """The leak variant prints its whole environment and crash-loops: the restore message quotes its last log
    lines, and that message reaches the Pulumi log and CI. No secret value may appear in the apply's output, the job
    log, the result, the audit log or the debug bundle; the names do (QDRANT_URL=***), so the operator can tell."""
    pins = variant(local_env, valued, "secretvals-leak", "cicd", "--broken", "cicd=leak")
    proc = host.ship(pins, PROJECT, "--validate-deadline", "20", "--wait-timeout", "40",
                     env={"HOST_PORT_PREFIX": PREFIX})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "apply of secretvals-leak failed at up" in proc.stdout
    assert "QDRANT_URL=***" in proc.stdout
    base = Path(host.root) / PROJECT
    texts = {"apply output": proc.stdout + proc.stderr, "audit": (base / "audit.jsonl").read_text()}
    texts |= {str(p): p.read_text(errors="replace") for p in (base / "jobs").iterdir() if p.is_file()}
    bundles = [p for p in (base / "diagnostics").rglob("*") if p.is_file()]
    texts |= {str(p): p.read_text(errors="replace") for p in bundles}
    assert any(p.name == "cicd.txt" and "QDRANT_URL=***" in texts[str(p)] for p in bundles)
    hidden = [*BY_VALUE.values(), *(line for line in PEM.splitlines() if len(line) > 40)]
    for where, text in texts.items():
        for value in hidden:
            assert value not in text, f"a secret value leaked into {where}"
    assert host.status(PROJECT)["current"] == valued["release"]
