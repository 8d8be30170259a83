"""agent.diagnose.masking and the pure parts of agent.diagnose: masking rules, command builders, text rendering."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.containers import SERVICE_LABEL
from agent.diagnose import collect as diagnose
from agent.diagnose import masking
from agent.diagnose import report as rendering
from agent.diagnose.report import ContainerReport, Probe, Report, State
from agent.validate import catalog

# --- masking ------------------------------------------------------------------------------------------------


SECRET_NAMES = "API_TOKEN github_token AWS_ACCESS_KEY_ID apikey CLIENT_SECRET DB_PASSWORD MYSQL_PASSWD PGPASS"
SECRET_NAMES += " GOOGLE_CREDENTIALS BASIC_AUTH Authorization PRIVATE_PEM COOKIE_DOMAIN session_store"


@pytest.mark.parametrize("name", SECRET_NAMES.split())
def test_secret_names(name: str) -> None:
    assert masking.is_secret_name(name)


@pytest.mark.parametrize("name", ["LOG_LEVEL", "PORT", "DATABASE_URL", "PATH", "SERVICE_NAME", "RELEASE_ID", "DEBUG"])
def test_plain_names(name: str) -> None:
    assert not masking.is_secret_name(name)


@pytest.mark.parametrize(
    ("entry", "masked"),
    [
        ("API_TOKEN=s3cr3t-value-123", "API_TOKEN=***"),
        ("db_password=x", "db_password=***"),
        ("API_TOKEN=", "API_TOKEN="),
        ("LOG_LEVEL=debug", "LOG_LEVEL=debug"),
        ("DATABASE_URL=postgres://app:hunter2pass@db:5432/x", "DATABASE_URL=postgres://app:***@db:5432/x"),
        ("SECRET_URL=postgres://app:hunter2pass@db:5432/x", "SECRET_URL=***"),
        ("EQUALS_IN_VALUE=a=b=c", "EQUALS_IN_VALUE=a=b=c"),
        ("NO_EQUALS_SIGN", "NO_EQUALS_SIGN"),
    ],
)
def test_mask_env_entry(entry: str, masked: str) -> None:
    assert masking.mask_env_entry(entry) == masked


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgres://app:hunter2pass@db:5432/x", "postgres://app:***@db:5432/x"),
        ("redis://:cachepw@cache:6379/0", "redis://:***@cache:6379/0"),
        ("amqp://u:p@ss:w@rd@mq/vhost", "amqp://u:***@mq/vhost"),
        ("a=https://u:one@h1/x b=https://v:two@h2", "a=https://u:***@h1/x b=https://v:***@h2"),
        ("http://host:8080/path?mail=a@b", "http://host:8080/path?mail=a@b"),
        ("https://user@host/x", "https://user@host/x"),
        ("no url here: a:b@c", "no url here: a:b@c"),
    ],
)
def test_mask_url_credentials(text: str, masked: str) -> None:
    assert masking.mask_url_credentials(text) == masked


def test_url_passwords_are_collected() -> None:
    assert masking.url_passwords("x=redis://:pw1@h y=postgres://a:p@w2@h/db") == ["pw1", "p@w2"]


def test_env_secret_values() -> None:
    env = ["API_TOKEN=tok-1", "EMPTY_KEY=", "DATABASE_URL=postgres://app:hunter2pass@db/x", "LOG_LEVEL=debug"]
    assert masking.env_secret_values(env) == {"tok-1", "hunter2pass"}
    assert masking.mask_env(env) == [
        "API_TOKEN=***",
        "EMPTY_KEY=",
        "DATABASE_URL=postgres://app:***@db/x",
        "LOG_LEVEL=debug",
    ]


def test_args_flag_forms() -> None:
    argv = ["app", "--password=pw-one", "--token", "tok-two", "--verbose", "-v", "--port", "8000"]
    masked, found = masking.scan_args(argv)
    assert masked == ["app", "--password=***", "--token", "***", "--verbose", "-v", "--port", "8000"]
    assert found == {"pw-one", "tok-two"}


def test_args_secret_flag_followed_by_flag_hides_nothing() -> None:
    assert masking.mask_args(["--no-auth", "--port", "80", "--api-key="]) == ["--no-auth", "--port", "80", "--api-key="]


def test_args_inside_shell_string() -> None:
    argv = ["sh", "-c", "API_KEY=k-123 exec app --secret 's 3' --db postgres://u:pw9@h/x --name web"]
    masked, found = masking.scan_args(argv)
    assert masked == ["sh", "-c", "API_KEY=*** exec app --secret *** --db postgres://u:***@h/x --name web"]
    assert found == {"k-123", "s 3", "pw9"}


def test_mask_text_replaces_known_values_and_url_credentials() -> None:
    line = "boot token=s3cr3t-value-123 db=postgres://app:hunter2pass@db/x pin=abc again s3cr3t-value-123"
    assert masking.mask_text(line, {"s3cr3t-value-123", "hunter2pass", "abc"}) == (
        "boot token=*** db=postgres://app:***@db/x pin=abc again ***"
    )


def test_mask_text_longest_value_first() -> None:
    assert masking.mask_text("key=abcdefgh", {"abcd", "abcdefgh"}) == "key=***"
    assert masking.mask_text("k=abcd-xyz", {"abcd"}) == "k=***-xyz"


def test_mask_text_treats_values_literally() -> None:
    assert masking.mask_text("a.b*c and aXbbc", {"a.b*c"}) == "*** and aXbbc"


# --- docker command lines -----------------------------------------------------------------------------------


def test_argv_builders() -> None:
    assert diagnose.stats_argv("c1") == ["docker", "stats", "--no-stream", "--format", "{{json .}}", "c1"]
    assert diagnose.logs_argv("c1", 100) == ["docker", "logs", "--timestamps", "--tail", "100", "c1"]


# --- inspect parsing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "error"),
    [
        ("8000/health", "container is not running"),
        ("80/x/y?z=1", "container is not running"),
        ("8007", "cannot read devtools.check.health='8007': expected <port><path>"),
        (" 80/x ", "cannot read devtools.check.health=' 80/x ': expected <port><path>"),
        ("/health", "cannot read devtools.check.health='/health': expected <port><path>"),
        ("99999/health", "cannot read devtools.check.health='99999/health': expected <port><path>"),
    ],
)
def test_health_label_is_read_by_the_validators_rule(label: str, error: str) -> None:
    """diagnose probes what the validator checked: a label the catalog refuses (agent.validate.catalog) is
    never probed at a guessed address, and one it accepts is (here stopped short at "not running")."""
    assert (catalog.parse_health_label(label) is None) == error.startswith("cannot read")
    inspect = {"Config": {"Labels": {catalog.HEALTH: label}}}
    assert diagnose._health(inspect, False, set()) == Probe(url=None, error=error)
    assert diagnose._health({"Config": {"Labels": {}}}, True, set()).error == "no devtools.check.health label"


def test_published_address_prefers_ipv4_and_maps_wildcards() -> None:
    ports = {
        "8000/tcp": [{"HostIp": "::", "HostPort": "8100"}, {"HostIp": "0.0.0.0", "HostPort": "8100"}],
        "8001/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8101"}],
        "8002/tcp": None,
        "8003/tcp": [{"HostIp": "::", "HostPort": "8103"}],
    }
    inspect = {"NetworkSettings": {"Ports": ports}}
    assert diagnose.published_address(inspect, 8000) == ("127.0.0.1", 8100)
    assert diagnose.published_address(inspect, 8001) == ("127.0.0.1", 8101)
    assert diagnose.published_address(inspect, 8002) is None
    assert diagnose.published_address(inspect, 8003) == ("::1", 8103)
    assert diagnose.published_address({"NetworkSettings": {"Ports": {}}}, 8000) is None
    assert diagnose.health_url("::1", 8103, "/health") == "http://[::1]:8103/health"
    assert diagnose.health_url("127.0.0.1", 8100, "/health") == "http://127.0.0.1:8100/health"


def test_state_from_inspect_masks_health_output() -> None:
    inspect = {
        "RestartCount": 4,
        "State": {
            "Status": "exited", "Running": False, "OOMKilled": True, "ExitCode": 137, "Error": "",
            "StartedAt": "2026-01-01T00:00:00Z", "FinishedAt": "2026-01-01T00:01:00Z",
            "Health": {"Status": "unhealthy", "Log": [
                {"Start": "s1", "End": "e1", "ExitCode": 1, "Output": "connect with tok-secret-9 failed\n"},
            ]},
        },
    }  # fmt: skip
    state = diagnose.state_from_inspect(inspect, {"tok-secret-9"})
    assert state == State(
        status="exited", health="unhealthy", restart_count=4, exit_code=137, oom_killed=True, error="",
        health_log=[{"start": "s1", "end": "e1", "exit_code": 1, "output": "connect with *** failed"}],
        started_at="2026-01-01T00:00:00Z", finished_at="2026-01-01T00:01:00Z",
    )  # fmt: skip


def test_secrets_of_reads_env_and_command() -> None:
    inspects: list[dict[str, Any]] = [
        {"Config": {"Env": ["A_TOKEN=tok-a", "PORT=1"], "Entrypoint": ["app"], "Cmd": ["--password", "pw-b"]}},
        {"Config": {"Env": None, "Entrypoint": None, "Cmd": None}},
    ]
    assert diagnose.secrets_of(inspects) == {"tok-a", "pw-b"}


# --- text rendering -----------------------------------------------------------------------------------------


def _report() -> ContainerReport:
    return ContainerReport(
        service="api", name="p-api-1", id="0123456789ab",
        state=State(
            status="running", health="healthy", restart_count=1, exit_code=0, oom_killed=False, error="",
            health_log=[{"start": "t1", "end": "t2", "exit_code": 0, "output": "ok"}],
            started_at="2026-01-01T00:00:00Z", finished_at="0001-01-01T00:00:00Z",
        ),
        image="reg/api@sha256:aa", image_id="sha256:bb", repo_digests=["reg/api@sha256:aa"],
        env=["API_TOKEN=***", "LOG_LEVEL=debug"], command=["app", "--token", "***", "--name", "a b"],
        health=Probe(url="http://127.0.0.1:8100/health", status=200, body='{"status":"ok"}', elapsed_ms=3),
        stats={"CPUPerc": "0.50%", "MemUsage": "1MiB / 2GiB", "MemPerc": "0.05%", "NetIO": "1kB / 2kB",
               "BlockIO": "0B / 0B", "PIDs": "3"},
        logs=["2026-01-01T00:00:01Z line one", "2026-01-01T00:00:02Z line two"],
    )  # fmt: skip


BODY = """\
state: running, health healthy, restarts 1, exit code 0, oom-killed no
started: 2026-01-01T00:00:00Z, finished: 0001-01-01T00:00:00Z
image: reg/api@sha256:aa (sha256:bb)
repo digests:
  reg/api@sha256:aa
resources: cpu 0.50%, memory 1MiB / 2GiB (0.05%), net 1kB / 2kB, block 0B / 0B, pids 3
health: GET http://127.0.0.1:8100/health -> 200 in 3 ms
  {"status":"ok"}
health-check log:
  t1 exit 0: ok
command: app --token '***' --name 'a b'
env:
  API_TOKEN=***
  LOG_LEVEL=debug
"""


def test_render_container_with_logs() -> None:
    assert rendering.render_container(_report()) == (
        "== api (p-api-1 0123456789ab) ==\n" + BODY + "logs (last 2 lines):\n"
        "  2026-01-01T00:00:01Z line one\n  2026-01-01T00:00:02Z line two\n"
    )


def test_render_container_for_bundle_refers_to_log_file() -> None:
    assert rendering.render_container(_report(), "api.log") == (
        "== api (p-api-1 0123456789ab) ==\n" + BODY + "logs: 2 lines in api.log\n"
    )


def test_render_stopped_container() -> None:
    c = _report()
    c.state = State("exited", None, [], 3, 1, True, "boom", "s", "f")
    c.stats, c.stats_error = None, "container is exited"
    c.health = Probe(url=None, error="container is not running")
    c.repo_digests, c.logs, c.logs_error = [], [], "Error: No such container: p-api-1"
    rendered = rendering.render_container(c)
    assert "state: exited, restarts 3, exit code 1, oom-killed yes, error boom\n" in rendered
    assert "repo digests: (none)\n" in rendered
    assert "resources: unavailable: container is exited\n" in rendered
    assert "health: not probed: container is not running\n" in rendered
    assert "health-check log: (none)\n" in rendered
    assert rendered.endswith("logs: unavailable: Error: No such container: p-api-1\n")


def test_render_check_entries() -> None:
    assert rendering.render_check({"start": "t1", "exit_code": 0, "output": ""}) == ["t1 exit 0"]
    assert rendering.render_check({"start": "t2", "exit_code": 1, "output": "wget: error\ndetail"}) == [
        "t2 exit 1: wget: error",
        "  detail",
    ]


def test_render_probe_failure() -> None:
    failed = Probe(url="http://127.0.0.1:1/health", elapsed_ms=0, error="URLError: refused")
    assert rendering.render_probe(failed) == [
        "health: GET http://127.0.0.1:1/health failed after 0 ms: URLError: refused"
    ]


def test_render_report_lists_errors_first() -> None:
    report = Report("p", ["api", "ghost"], "2026-01-01T00:00:00Z", ["api"], [_report()], ["no container of ghost"])
    assert rendering.render_report(report).startswith(
        "diagnostics of project p at 2026-01-01T00:00:00Z\nerror: no container of ghost\n\n== api "
    )


# --- the /health probe against a real HTTP server ------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code, body = {"/health": (200, b'{"status":"ok"}'), "/big": (200, b"x" * 5000)}.get(
            self.path, (503, b"draining")
        )
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.live
def test_probe_health_ok_error_and_truncation(server: int) -> None:
    ok = diagnose.probe_health(f"http://127.0.0.1:{server}/health")
    assert (ok.status, ok.body, ok.error) == (200, '{"status":"ok"}', None)
    assert ok.elapsed_ms is not None and ok.elapsed_ms >= 0
    bad = diagnose.probe_health(f"http://127.0.0.1:{server}/other")
    assert (bad.status, bad.body, bad.error) == (503, "draining", None)
    big = diagnose.probe_health(f"http://127.0.0.1:{server}/big")
    assert big.body == "x" * 2048


@pytest.mark.live
def test_probe_health_records_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: the connection is refused
        probe = diagnose.probe_health(f"http://127.0.0.1:{port}/health", timeout=2)
    assert probe.status is None
    assert probe.error is not None and "refused" in probe.error.lower()


# --- never raising without docker ---------------------------------------------------------------------------


@pytest.mark.live
def test_write_bundle_without_docker_records_the_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    bundle = diagnose.write_bundle("devtools", tmp_path / "out", ["gateway-mcp"], 10)
    assert bundle == tmp_path / "out"
    summary = json.loads((bundle / "summary.json").read_text())
    assert summary["containers"] == []
    assert summary["requested"] == ["gateway-mcp"]
    assert len(summary["errors"]) == 1 and summary["errors"][0].startswith("docker ps failed: docker ps:")
    assert sorted(p.name for p in bundle.iterdir()) == ["summary.json"]


def test_cli_rejects_bad_arguments(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    with pytest.raises(SystemExit) as no_project:
        diagnose.main(["all"])
    assert no_project.value.code == 2
    assert "--project is required" in capsys.readouterr().err
    with pytest.raises(SystemExit) as negative:
        diagnose.main(["all", "--project", "p", "--lines", "-1"])
    assert negative.value.code == 2
    assert "--lines must be 0 or more" in capsys.readouterr().err


def test_every_key_of_the_secrets_file_is_a_secret_name_in_the_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """QDRANT_URL, a webhook or a DSN look harmless by name: masking by name alone left their values in clear in
    the bundle's environment and logs. The project's secrets file says which ones are secret."""
    pem = "-----BEGIN KEY-----\nAAAAc2VjcmV0LWxpbmU=\n-----END KEY-----"
    env = ["QDRANT_URL=http://qdrant:6333/?api_key=k-7f3a9c", f"SIGNING_PEM={pem}", "LOG_LEVEL=info"]
    inspect = {"Id": "c" * 64, "Name": "/p-api-1", "Image": "sha256:1",
               "Config": {"Env": env, "Labels": {SERVICE_LABEL: "api"}, "Image": "x", "Entrypoint": [], "Cmd": []},
               "State": {"Status": "exited", "Running": False}}
    monkeypatch.setattr(diagnose, "inspect_project", lambda project: ([inspect], []))

    def docker(argv: list[str], merge_stderr: bool = False) -> tuple[int, str, str]:
        if argv[1] == "logs":
            return 0, "QDRANT_URL=http://qdrant:6333/?api_key=k-7f3a9c\nAAAAc2VjcmV0LWxpbmU=\n", ""
        return 0, "[]", ""

    monkeypatch.setattr(diagnose, "run_docker", docker)
    secrets = {"QDRANT_URL": "http://qdrant:6333/?api_key=k-7f3a9c", "SIGNING_PEM": pem}
    container = diagnose.collect("p", None, 10, secrets).containers[0]
    assert container.env == ["QDRANT_URL=***", "SIGNING_PEM=***", "LOG_LEVEL=info"]
    assert container.logs == ["QDRANT_URL=***", "***"]
    assert diagnose.collect("p", None, 10).containers[0].env[0] == "QDRANT_URL=http://qdrant:6333/?api_key=k-7f3a9c"
