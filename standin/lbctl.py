"""Control of the load-balancer stand-in (haproxy): render its config, show and flip the live color.

Standard library only. The runtime API is haproxy's stats socket (admin level); one command per connection.
A flip never drops a request: the target must pass its health check first, then it takes traffic, then the
old color drains (in-flight requests finish, no new ones) and finally goes to maintenance. The state file
that records the live color is written (atomically) only after haproxy switched.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BACKEND = "gateway"
COLORS = ("green", "blue")  # the program's (components.config); standin imports nothing else
DEFAULT_COLOR = "green"
# srv_admin_state masks (haproxy include/haproxy/server-t.h SRV_ADMF_MAINT, SRV_ADMF_DRAIN). The config's
# `disabled` also sets CMAINT (0x04), which stays after the server is enabled: it is not part of the mask.
_MAINT, _DRAIN = 0x23, 0x18
_RUNNING, _PASSED = 2, 3  # srv_op_state SRV_ST_RUNNING, srv_check_result CHK_RES_PASSED


_CONFIG = """\
# Rendered by `python -m standin.lbctl render`; the live color at render time is {live}.
global
    master-worker
    daemon
    pidfile {pidfile}
    stats socket {socket} mode 600 level admin
    stats timeout 30s

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout queue 5s
    timeout check 2s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response

frontend lb
    bind {bind}
    default_backend {backend}

backend {backend}
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    http-response set-header X-Served-By %s
    default-server check inter 1s fall 2 rise 2
"""


def render_config(*, bind: str, servers: dict[str, str], live: str, socket_path: Path, pidfile: Path) -> str:
    """haproxy.cfg: backend `gateway` has a server per color, only `live` takes traffic; a failed connection
    is retried on another server (redispatch); X-Served-By names the server that answered."""
    if live not in servers:
        raise ValueError(f"live color {live!r} is not one of {sorted(servers)}")
    text = _CONFIG.format(live=live, pidfile=pidfile, socket=socket_path, bind=bind, backend=BACKEND)
    return text + "".join(f"    server {c} {a}{'' if c == live else ' disabled'}\n" for c, a in servers.items())


_SETTINGS = {"state": ("ready", "drain", "maint"), "health": ("up", "stopping", "down")}


def server_command(server: str, setting: str, value: str) -> str:
    """`set server gateway/<server> state ready|drain|maint` or `... health up|stopping|down`."""
    if value not in _SETTINGS.get(setting, ()):
        raise ValueError(f"cannot set {setting} to {value!r}")
    return f"set server {BACKEND}/{server} {setting} {value}"


SHOW_SERVERS_STATE = f"show servers state {BACKEND}"
SHOW_STAT = "show stat"


@dataclass(frozen=True)
class ServerState:
    name: str
    addr: str
    op_state: int
    admin_state: int
    check_result: int

    @property
    def admin(self) -> str:
        if self.admin_state & _MAINT:
            return "maint"
        return "drain" if self.admin_state & _DRAIN else "ready"

    @property
    def check_up(self) -> bool:
        """Running and its latest health check (since it left maintenance) passed."""
        return self.op_state == _RUNNING and self.check_result == _PASSED


def parse_servers_state(text: str) -> dict[str, ServerState]:
    """Parse `show servers state <backend>` (format version 1)."""
    fields: list[str] = []
    out: dict[str, ServerState] = {}
    for line in text.splitlines():
        if line.startswith("# "):
            fields = line[2:].split()
        elif fields and line.strip():
            row = dict(zip(fields, line.split(), strict=False))
            out[row["srv_name"]] = ServerState(
                name=row["srv_name"],
                addr=f"{row['srv_addr']}:{row['srv_port']}",
                op_state=int(row["srv_op_state"]),
                admin_state=int(row["srv_admin_state"]),
                check_result=int(row["srv_check_result"]),
            )
    return out


def parse_stat(text: str, backend: str = BACKEND) -> dict[str, dict[str, str]]:
    """Parse `show stat` CSV into {server: {column: value}} for one backend (no FRONTEND/BACKEND rows)."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise ValueError("show stat: no CSV header")
    header = lines[0][2:].split(",")
    out: dict[str, dict[str, str]] = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == backend and row.get("svname") not in (None, "FRONTEND", "BACKEND"):
            out[row["svname"]] = row
    return out


def live_colors(states: dict[str, ServerState]) -> list[str]:
    return [name for name, s in states.items() if s.admin == "ready"]


def format_status(states: dict[str, ServerState], stat: dict[str, dict[str, str]], recorded: str) -> str:
    live = ",".join(live_colors(states)) or "none"
    lines = [f"live: {live} (state file: {recorded})"]
    for name, s in states.items():
        row = stat.get(name, {})
        check = row.get("check_status") or "-"
        lines.append(f"{name:<6} {s.addr:<21} {s.admin:<6} {row.get('status', '?'):<9} check={check}")
    return "\n".join(lines) + "\n"


def read_live_color(path: Path) -> str:
    """The recorded live color; green when nothing was recorded yet."""
    try:
        color = path.read_text().strip()
    except FileNotFoundError:
        return DEFAULT_COLOR
    if color not in COLORS:
        raise ValueError(f"{path}: {color!r} is not a color ({', '.join(COLORS)})")
    return color


def write_live_color(path: Path, color: str) -> None:
    if color not in COLORS:
        raise ValueError(f"{color!r} is not a color ({', '.join(COLORS)})")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(color + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LbError(Exception):
    """haproxy's runtime API refused a command or could not be reached."""


def runtime(sock: Path, command: str, timeout: float = 5.0) -> str:
    """Send one command to the runtime API and return its whole answer."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(sock))
            s.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        raise LbError(f"haproxy runtime API at {sock}: {exc}") from exc
    return b"".join(chunks).decode()


def _set(sock: Path, server: str, state: str, setting: str = "state") -> None:
    command = server_command(server, setting, state)
    answer = runtime(sock, command).strip()
    if answer:
        raise LbError(f"`{command}` answered: {answer}")


def _states(sock: Path) -> dict[str, ServerState]:
    return parse_servers_state(runtime(sock, SHOW_SERVERS_STATE))


def serving(sock: Path) -> list[str]:
    """The colors haproxy sends traffic to right now (its runtime state, not the state file)."""
    return live_colors(_states(sock))


def _await_fresh_up(sock: Path, target: str, timeout: float) -> bool:
    """Force the (traffic-free) target's health to down so that `rise` fresh checks must pass; wait for them."""
    _set(sock, target, "down", setting="health")
    deadline = time.monotonic() + timeout
    while not _states(sock)[target].check_up:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _await_drained(sock: Path, servers: list[str], grace: float) -> None:
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        stat = parse_stat(runtime(sock, SHOW_STAT))
        if all(stat.get(n, {}).get(k) in (None, "", "0") for n in servers for k in ("scur", "qcur")):
            return
        time.sleep(0.1)


def flip(sock: Path, state_file: Path, target: str, *, check_timeout: float, grace: float) -> str:
    """Make `target` the only color taking traffic. Raises LbError, with traffic unchanged, when refused."""
    states = _states(sock)
    if target not in states:
        raise LbError(f"backend {BACKEND} has no server {target!r} (servers: {', '.join(states)})")
    others = [n for n in states if n != target]
    current = states[target]
    woke = current.admin == "maint"
    if woke:  # checks do not run in maintenance; drain takes no new traffic but is checked
        _set(sock, target, "drain")
    # A server taking traffic has been checked all along; any other must pass fresh checks first.
    healthy = current.check_up if current.admin == "ready" else _await_fresh_up(sock, target, check_timeout)
    if not healthy:
        detail = parse_stat(runtime(sock, SHOW_STAT)).get(target, {}).get("check_status") or "no result"
        if woke:
            _set(sock, target, "maint")
        raise LbError(f"refused: {target}'s health check is not UP (last check: {detail}); traffic unchanged")
    _set(sock, target, "ready")
    leaving = [n for n in others if states[n].admin != "maint"]
    for name in leaving:
        _set(sock, name, "drain")
    _await_drained(sock, leaving, grace)
    for name in leaving:
        _set(sock, name, "maint")
    write_live_color(state_file, target)
    return f"live color is now {target}" + (f"; {', '.join(leaving)} drained to maintenance" if leaving else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m standin.lbctl", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="write haproxy.cfg (to stdout unless --output)")
    r.add_argument("--bind", required=True, help="frontend address, e.g. 127.0.0.1:8080")
    for c in COLORS:
        r.add_argument(f"--{c}", required=True, metavar="HOST:PORT", help=f"the {c} gateway")
    r.add_argument("--live", choices=COLORS, help="live color (default: from --state-file, else green)")
    r.add_argument("--state-file", type=Path, help="file recording the live color")
    r.add_argument("--socket", required=True, type=Path, help="runtime API socket path")
    r.add_argument("--pidfile", required=True, type=Path)
    r.add_argument("--output", type=Path)
    st = sub.add_parser("status", help="show the live color and each server's state and check")
    st.add_argument("--live", action="store_true", help="print only the live color(s)")
    f = sub.add_parser("flip", help="switch traffic to COLOR, refused unless its health check is UP")
    f.add_argument("color", choices=COLORS)
    f.add_argument("--check-timeout", type=float, default=5.0, help="seconds to wait for UP (default 5)")
    f.add_argument("--grace", type=float, default=5.0, help="max seconds to drain the old color (default 5)")
    for s in (st, f):
        s.add_argument("--socket", required=True, type=Path, help="runtime API socket path")
        s.add_argument("--state-file", required=True, type=Path, help="file recording the live color")
    a = p.parse_args(argv)
    try:
        if a.cmd == "render":
            live = a.live or (read_live_color(a.state_file) if a.state_file else DEFAULT_COLOR)
            servers = {c: getattr(a, c) for c in COLORS}
            text = render_config(bind=a.bind, servers=servers, live=live, socket_path=a.socket, pidfile=a.pidfile)
            (a.output.write_text if a.output else sys.stdout.write)(text)
        elif a.cmd == "status" and a.live:
            print(",".join(serving(a.socket)) or "none")
        elif a.cmd == "status":
            stat = parse_stat(runtime(a.socket, SHOW_STAT))
            sys.stdout.write(format_status(_states(a.socket), stat, read_live_color(a.state_file)))
        else:
            print(flip(a.socket, a.state_file, a.color, check_timeout=a.check_timeout, grace=a.grace))
    except (LbError, ValueError) as exc:
        print(f"lbctl: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
