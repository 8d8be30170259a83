"""Secrets reach the containers through stdin and a 0600 file, and nowhere else: not argv, logs, the audit
log, the resolved config, the validation report, `status`, or a debug bundle."""

from __future__ import annotations

import stat
import subprocess
import uuid
from pathlib import Path

from standin import localenv
from tests.e2e.conftest import Host, build_release, compose_exec


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
