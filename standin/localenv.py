"""The local stand-in's addresses, read from scripts/local.env (the same file the shell script sources).

Values may be overridden by environment variables of the same name, exactly as the shell script allows.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL_ENV_FILE = ROOT / "scripts" / "local.env"
_LINE = re.compile(r"^([A-Z_][A-Z0-9_]*)=\$\{\1:-(.*)\}$")


def parse_local_env(text: str, environ: dict[str, str]) -> dict[str, str]:
    """Parse `KEY=${KEY:-default}` lines; the environment wins over the default."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"{LOCAL_ENV_FILE}: cannot read line {line!r}: expected KEY=${{KEY:-default}}")
        key, default = match.groups()
        values[key] = environ.get(key, default)
    return values


@dataclass(frozen=True)
class LocalEnv:
    state: Path
    registry: str
    ssh_host: str
    ssh_port: int
    ssh_user: str
    lb_port: int
    prometheus_port: int
    langfuse_port: int
    port_prefix: dict[str, str]
    host_root: Path
    data_port_prefix: str
    """The data tier's HOST_PORT_PREFIX (compose project `data`, beside the colors on the one engine)."""
    data_network: str
    """The docker network the colors and the data tier share (scripts/local-env.sh up creates it)."""
    node_exporter_port: int = 9391
    """node_exporter's textfile collector on loopback: the host agent's rollout metrics (<host_root>/metrics)."""

    @property
    def ssh_dir(self) -> Path:
        return self.state / "ssh"

    @property
    def ssh_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def lb_socket(self) -> Path:
        """haproxy's runtime API (scripts/local-env.sh: $DEVTOOLS_STATE/haproxy/admin.sock)."""
        return self.state / "haproxy" / "admin.sock"

    @property
    def lb_url(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def langfuse_url(self) -> str:
        """The Langfuse stand-in as the host sees it (the containers: LANGFUSE_HOST in its key file)."""
        return f"http://127.0.0.1:{self.langfuse_port}"

    @property
    def langfuse_keys(self) -> Path:
        """The stand-in's 0600 key file (LANGFUSE_HOST, LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY): the local stacks'
        appSecretsPath."""
        return self.state / "langfuse" / "keys.env"

    @property
    def node_exporter_url(self) -> str:
        return f"http://127.0.0.1:{self.node_exporter_port}"

    def gateway_port(self, color: str) -> int:
        return int(f"{self.port_prefix[color]}00")


def load(environ: dict[str, str] | None = None) -> LocalEnv:
    env = dict(os.environ if environ is None else environ)
    v = parse_local_env(LOCAL_ENV_FILE.read_text(), env)
    return LocalEnv(
        state=Path(v["DEVTOOLS_STATE"]),
        registry=v["REGISTRY_ADDR"],
        ssh_host=v["SSH_HOST"],
        ssh_port=int(v["SSH_PORT"]),
        ssh_user=v["SSH_USER"],
        lb_port=int(v["LB_PORT"]),
        prometheus_port=int(v["PROMETHEUS_PORT"]),
        langfuse_port=int(v["LANGFUSE_PORT"]),
        port_prefix={"green": v["GREEN_PORT_PREFIX"], "blue": v["BLUE_PORT_PREFIX"]},
        host_root=Path(v["HOST_ROOT"]),
        data_port_prefix=v["DATA_PORT_PREFIX"],
        data_network=v["DATA_NETWORK"],
        node_exporter_port=int(v["NODE_EXPORTER_PORT"]),
    )


def flip_argv(root: Path, color: str) -> list[str]:
    """What moves the stand-in's haproxy to `color` (refused unless the color's health check is UP): the local
    stack's traffic resource runs it, and `ops.cli flip` when haproxy disagrees with the stack's liveColor."""
    return ["bash", str(root / "scripts" / "local-env.sh"), "flip", color]
