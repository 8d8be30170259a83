"""standin.lbctl and standin.promconf: the config renderers, runtime command builders and parsers (exact strings)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from components.commands import local_flip_command
from components.config_keys import COLORS
from standin import lbctl
from standin.localenv import flip_argv

ROOT = Path(__file__).resolve().parents[3]

EXPECTED_CONFIG = """\
# Rendered by `python -m standin.lbctl render`; the live color at render time is blue.
global
    master-worker
    daemon
    pidfile /state/run/haproxy.pid
    stats socket /state/haproxy/admin.sock mode 600 level admin
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
    bind 127.0.0.1:8080
    default_backend gateway

backend gateway
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    http-response set-header X-Served-By %s
    default-server check inter 1s fall 2 rise 2
    server green 127.0.0.1:8100 disabled
    server blue 127.0.0.1:8200
"""

# `show servers state gateway` from haproxy 2.6: green running and checked, blue disabled in the config, then
# woken into drain (admin 12 = CMAINT|FDRAIN) with a passing check.
SERVERS_STATE = (
    "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
    "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
    "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port "
    "srv_check_addr srv_agent_addr srv_agent_port\n"
    "3 gateway 1 green 127.0.0.1 2 0 1 1 21 15 3 3 6 0 0 0 - 8100 - 0 0 - - 0\n"
    "3 gateway 2 blue 127.0.0.1 2 12 1 1 1 15 3 3 6 0 0 0 - 8200 - 0 0 - - 0\n\n"
)

# `show stat` with a subset of its columns (the parser goes by the header).
STAT = (
    "# pxname,svname,qcur,scur,status,check_status,\n"
    "lb,FRONTEND,,0,OPEN,,\n"
    "gateway,green,0,2,UP,L7OK,\n"
    "gateway,blue,0,0,MAINT,,\n"
    "gateway,BACKEND,0,2,UP,,\n"
    "other,green,0,9,DOWN,L4CON,\n\n"
)


def test_render_config_exact() -> None:
    text = lbctl.render_config(
        bind="127.0.0.1:8080",
        servers={"green": "127.0.0.1:8100", "blue": "127.0.0.1:8200"},
        live="blue",
        socket_path=Path("/state/haproxy/admin.sock"),
        pidfile=Path("/state/run/haproxy.pid"),
    )
    assert text == EXPECTED_CONFIG


def test_the_stand_in_flips_between_the_programs_colors() -> None:
    """standin imports nothing outside itself, so lbctl spells the colors the program defines (components.config_keys,
    which ops and the stack config read): haproxy with a color no stack can have would never be flipped to."""
    assert lbctl.COLORS == COLORS


def test_render_config_refuses_unknown_live_color() -> None:
    with pytest.raises(ValueError, match="live color 'red'"):
        lbctl.render_config(
            bind="127.0.0.1:1", servers={"green": "a:1"}, live="red", socket_path=Path("s"), pidfile=Path("p")
        )


def test_server_commands_exact() -> None:
    assert lbctl.server_command("blue", "state", "ready") == "set server gateway/blue state ready"
    assert lbctl.server_command("green", "state", "drain") == "set server gateway/green state drain"
    assert lbctl.server_command("green", "state", "maint") == "set server gateway/green state maint"
    assert lbctl.server_command("blue", "health", "down") == "set server gateway/blue health down"
    assert lbctl.SHOW_SERVERS_STATE == "show servers state gateway"
    assert lbctl.SHOW_STAT == "show stat"
    with pytest.raises(ValueError, match="cannot set state to 'up'"):
        lbctl.server_command("blue", "state", "up")
    with pytest.raises(ValueError, match="cannot set weight"):
        lbctl.server_command("blue", "weight", "0")


def test_parse_servers_state() -> None:
    states = lbctl.parse_servers_state(SERVERS_STATE)
    assert states == {
        "green": lbctl.ServerState("green", "127.0.0.1:8100", op_state=2, admin_state=0, check_result=3),
        "blue": lbctl.ServerState("blue", "127.0.0.1:8200", op_state=2, admin_state=12, check_result=3),
    }
    assert [s.admin for s in states.values()] == ["ready", "drain"]
    assert lbctl.live_colors(states) == ["green"]


@pytest.mark.parametrize(
    ("admin_state", "admin"),
    [(0, "ready"), (1, "maint"), (5, "maint"), (4, "ready"), (8, "drain"), (12, "drain"), (9, "maint")],
)
def test_admin_state_from_flags(admin_state: int, admin: str) -> None:
    assert lbctl.ServerState("x", "a:1", 2, admin_state, 3).admin == admin


@pytest.mark.parametrize(
    ("op_state", "check_result", "up"), [(2, 3, True), (2, 0, False), (2, 2, False), (0, 3, False)]
)
def test_check_up_needs_running_and_passed(op_state: int, check_result: int, up: bool) -> None:
    assert lbctl.ServerState("x", "a:1", op_state, 0, check_result).check_up is up


def test_parse_stat_keeps_one_backends_servers() -> None:
    stat = lbctl.parse_stat(STAT)
    assert sorted(stat) == ["blue", "green"]
    assert stat["green"]["scur"] == "2"
    assert stat["green"]["check_status"] == "L7OK"
    assert stat["blue"]["status"] == "MAINT"
    with pytest.raises(ValueError, match="no CSV header"):
        lbctl.parse_stat("Unknown command\n")


def test_format_status_exact() -> None:
    states = lbctl.parse_servers_state(SERVERS_STATE)
    text = lbctl.format_status(states, lbctl.parse_stat(STAT), "green")
    assert text == (
        "live: green (state file: green)\n"
        "green  127.0.0.1:8100        ready  UP        check=L7OK\n"
        "blue   127.0.0.1:8200        drain  MAINT     check=-\n"
    )


def test_live_color_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "live-color"
    assert lbctl.read_live_color(path) == "green"  # nothing recorded yet
    lbctl.write_live_color(path, "blue")
    assert path.read_text() == "blue\n"
    assert lbctl.read_live_color(path) == "blue"
    assert [p.name for p in tmp_path.iterdir()] == ["live-color"]  # no temporary file left behind
    with pytest.raises(ValueError, match="'red' is not a color"):
        lbctl.write_live_color(path, "red")
    assert path.read_text() == "blue\n"
    path.write_text("purple\n")
    with pytest.raises(ValueError, match="'purple' is not a color"):
        lbctl.read_live_color(path)


def test_runtime_reports_unreachable_socket(tmp_path: Path) -> None:
    with pytest.raises(lbctl.LbError, match=r"haproxy runtime API at .*missing\.sock"):
        lbctl.runtime(tmp_path / "missing.sock", "show stat")


def test_cli_render_uses_the_state_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "live-color").write_text("blue\n")
    args = ["render", "--bind", "127.0.0.1:8080", "--green", "127.0.0.1:8100", "--blue", "127.0.0.1:8200"]
    args += ["--socket", "/state/haproxy/admin.sock", "--pidfile", "/state/run/haproxy.pid"]
    assert lbctl.main([*args, "--state-file", str(tmp_path / "live-color")]) == 0
    assert capsys.readouterr().out == EXPECTED_CONFIG
    assert lbctl.main([*args, "--live", "green", "--output", str(tmp_path / "h.cfg")]) == 0
    assert "    server blue 127.0.0.1:8200 disabled\n" in (tmp_path / "h.cfg").read_text()


@pytest.mark.live
def test_cli_flip_without_haproxy_fails_and_records_nothing(tmp_path: Path) -> None:
    state = tmp_path / "live-color"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "standin.lbctl",
            "flip",
            "blue",
            "--socket",
            str(tmp_path / "none.sock"),
            "--state-file",
            str(state),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("lbctl: haproxy runtime API at ")
    assert not state.exists()


@pytest.mark.live
def test_cli_help_lists_the_commands() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "standin.lbctl", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "{render,status,flip}" in proc.stdout


def test_the_local_flip_is_one_command_for_the_program_and_the_cli():
    """The local stack's traffic resource and `ops.cli flip` run the same argv (standin.localenv.flip_argv)."""
    assert flip_argv(Path("/r"), "blue") == ["bash", "/r/scripts/local-env.sh", "flip", "blue"]
    assert local_flip_command(Path("/r"), "blue") == "bash /r/scripts/local-env.sh flip blue"
