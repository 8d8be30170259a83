"""The service catalog, read from the real compose file as docker compose resolves it, and its error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.validate.catalog import (
    CatalogError,
    E2e,
    Health,
    Mcp,
    Service,
    compose_config_argv,
    load_catalog,
    parse_health_label,
    resolve_compose,
)
from tests.compose_services import SERVICES
from tests.unit.agent.validate_peers import fake_pins

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = str(ROOT / "compose" / "docker-compose.yml")
AGENTS = ("cicd", "code-review", "documentation", "feature-dev", "infrastructure", "orchestrator")
# Service <i> of the compose file (in file order) listens on 800<i> and publishes <prefix>0<i>.
PORTS = {name: i for i, name in enumerate(SERVICES)}


@pytest.fixture(autouse=True)
def _clean_compose_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment outranks the env file in compose: keep the tests' inputs the only inputs."""
    for key in ("HOST_PORT_PREFIX", "COMPOSE_PROFILES", "COMPOSE_FILE", "COMPOSE_PROJECT_NAME"):
        monkeypatch.delenv(key, raising=False)


def pins(tmp_path: Path, extra: str = "") -> str:
    path = tmp_path / "release.env"
    path.write_text(fake_pins(extra))
    return str(path)


def test_compose_config_argv_is_exact():
    argv = compose_config_argv(["a.yml", "b.yml"], env_file="release.env", project="green", profiles=["edge"])
    assert argv == [
        "docker",
        "compose",
        "--project-name",
        "green",
        "--file",
        "a.yml",
        "--file",
        "b.yml",
        "--env-file",
        "release.env",
        "--profile",
        "edge",
        "config",
        "--format",
        "json",
    ]
    assert compose_config_argv(["a.yml"]) == ["docker", "compose", "--file", "a.yml", "config", "--format", "json"]


@pytest.mark.live
def test_real_compose_file_gives_nine_checked_services(tmp_path: Path):
    catalog = load_catalog(resolve_compose([COMPOSE], env_file=pins(tmp_path)))
    assert catalog.project == "devtools"
    assert catalog.names == tuple(sorted(PORTS))
    assert tuple(s.name for s in catalog.e2e_services) == AGENTS
    assert [s.name for s in catalog.mcp_services] == ["gateway-mcp"]
    assert len(catalog.metrics_services) == len(SERVICES)
    gateway = catalog.service("gateway-mcp")
    assert gateway == Service(
        name="gateway-mcp",
        role="gateway",
        health=Health(container_port=8000, path="/health", host_port=8000, host_ip="127.0.0.1"),
        mcp=Mcp(path="/mcp", min_tools=6),
        e2e=None,
        metrics="/metrics",
    )
    for name in AGENTS:
        agent = catalog.service(name)
        assert agent.role == "agent"
        assert agent.e2e == E2e(method="POST", path="/e2e", expect='"status":"ok"', body="{}")
    assert {s.name: s.health.host_port for s in catalog.services} == {n: 8000 + i for n, i in PORTS.items()}
    assert {s.name: s.health.container_port for s in catalog.services} == {n: 8000 + i for n, i in PORTS.items()}
    assert {s.role for s in catalog.services} == {"gateway", "agent", "support"}


@pytest.mark.live
def test_host_port_prefix_moves_every_published_port(tmp_path: Path):
    catalog = load_catalog(resolve_compose([COMPOSE], env_file=pins(tmp_path, "HOST_PORT_PREFIX=81\n")))
    assert {s.name: s.health.host_port for s in catalog.services} == {n: 8100 + i for n, i in PORTS.items()}
    assert {s.health.container_port for s in catalog.services} == {8000 + i for i in range(len(SERVICES))}


@pytest.mark.live
def test_edge_profile_adds_services_without_checks(tmp_path: Path):
    resolved = resolve_compose([COMPOSE], env_file=pins(tmp_path), project="green", profiles=["edge"])
    assert {"proxy", "prometheus"} <= set(resolved["services"])
    assert resolved["name"] == "green"
    catalog = load_catalog(resolved)
    assert catalog.names == tuple(sorted(PORTS))


@pytest.mark.live
def test_missing_pin_is_reported_by_compose(tmp_path: Path):
    env = tmp_path / "release.env"
    env.write_text("".join(line + "\n" for line in fake_pins().splitlines() if not line.startswith("CICD_")))
    with pytest.raises(CatalogError, match="release pin missing for cicd"):
        resolve_compose([COMPOSE], env_file=str(env))


def svc(labels: dict[str, str], ports: Any = None) -> dict[str, Any]:
    default_ports = [{"target": 8001, "published": "8101", "host_ip": "127.0.0.1"}]
    return {
        "labels": {"devtools.check.health": "8001/health", **labels},
        "ports": default_ports if ports is None else ports,
    }


def only(spec: dict[str, Any]) -> Service:
    return load_catalog({"name": "p", "services": {"orchestrator": spec}}).services[0]


def test_small_service_defaults():
    service = only(
        svc(
            {"devtools.check.e2e": "GET /ping", "devtools.check.e2e.expect": "pong", "devtools.check.mcp": "/mcp"},
            ports=[{"target": 8001, "published": "8101"}],
        )
    )
    assert service.health == Health(container_port=8001, path="/health", host_port=8101, host_ip="")
    assert service.e2e == E2e(method="GET", path="/ping", expect="pong", body="{}")
    assert service.mcp == Mcp(path="/mcp", min_tools=1, protocol="auto")
    assert service.role == ""
    assert service.metrics is None


@pytest.mark.parametrize("protocol", ["auto", "per-request", "handshake"])
def test_mcp_protocol_label(protocol):
    labels = {"devtools.check.mcp": "/rpc", "devtools.check.mcp.protocol": protocol}
    service = only(svc(labels, [{"target": 8001, "published": "8101"}]))
    assert service.mcp == Mcp(path="/rpc", min_tools=1, protocol=protocol)


@pytest.mark.parametrize(("label", "target"), [
    ("8000/health", (8000, "/health")),
    ("80/x/y?z=1", (80, "/x/y?z=1")),
    ("65535/", (65535, "/")),
    ("8007", None),
    (" 80/x ", None),
    ("/health", None),
    ("0/health", None),
    ("99999/health", None),
])
def test_health_label_grammar(label: str, target: tuple[int, str] | None):
    """The one reading of devtools.check.health: the validator, the program's gateway lookup and agent.diagnose
    all call it, so a label one accepts is never one another reads differently."""
    assert parse_health_label(label) == target


def test_service_without_health_label_is_not_checked():
    catalog = load_catalog({"services": {"proxy": {"labels": {"devtools.role": "edge"}}, "orchestrator": svc({})}})
    assert catalog.names == ("orchestrator",)
    assert catalog.project == ""


@pytest.mark.parametrize(
    ("labels", "ports", "message"),
    [
        (
            {"devtools.check.e2e": "GET", "devtools.check.e2e.expect": "x"},
            None,
            'service orchestrator: label devtools.check.e2e "GET" must be "<METHOD> <path>", e.g. "POST /e2e"',
        ),
        (
            {"devtools.check.e2e": "FETCH /e2e", "devtools.check.e2e.expect": "x"},
            None,
            'service orchestrator: label devtools.check.e2e "FETCH /e2e" must be "<METHOD> <path>" with METHOD one '
            "of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS",
        ),
        (
            {"devtools.check.e2e": "POST /e2e"},
            None,
            "service orchestrator: label devtools.check.e2e needs devtools.check.e2e.expect: a substring the "
            "probe's response must contain",
        ),
        (
            {"devtools.check.e2e.expect": "ok"},
            None,
            'service orchestrator: label devtools.check.e2e.expect needs devtools.check.e2e ("<METHOD> <path>")',
        ),
        (
            {"devtools.check.health": "health"},
            None,
            'service orchestrator: label devtools.check.health "health" must be "<container port><path>", '
            'e.g. "8000/health"',
        ),
        (
            {"devtools.check.health": "99999/health"},
            None,
            'service orchestrator: label devtools.check.health "99999/health" must be "<container port><path>", '
            'e.g. "8000/health"',
        ),
        (
            {},
            [{"target": 9000, "published": "9000"}],
            "service orchestrator: label devtools.check.health names container port 8001, which is not published: "
            'add "127.0.0.1:<host port>:8001" to its ports',
        ),
        (
            {},
            [],
            "service orchestrator: label devtools.check.health names container port 8001, which is not published: "
            'add "127.0.0.1:<host port>:8001" to its ports',
        ),
        (
            {},
            [{"target": 8001, "published": "8100-8101"}],
            "service orchestrator: port 8001 is published as '8100-8101': the validator needs one fixed host port",
        ),
        (
            {"devtools.check.mcp": "mcp"},
            None,
            'service orchestrator: label devtools.check.mcp "mcp" must be "<path>", e.g. "/mcp"',
        ),
        (
            {"devtools.check.mcp": "/mcp", "devtools.check.mcp.min-tools": "six"},
            None,
            'service orchestrator: label devtools.check.mcp.min-tools "six" must be a whole number of tools, e.g. "6"',
        ),
        (
            {"devtools.check.mcp.min-tools": "6"},
            None,
            "service orchestrator: label devtools.check.mcp.min-tools needs devtools.check.mcp (the MCP endpoint path)",
        ),
        (
            {"devtools.check.mcp.protocol": "handshake"},
            None,
            "service orchestrator: label devtools.check.mcp.protocol needs devtools.check.mcp (the MCP endpoint path)",
        ),
        (
            {"devtools.check.mcp": "/mcp", "devtools.check.mcp.protocol": "2026-07-28"},
            None,
            'service orchestrator: label devtools.check.mcp.protocol "2026-07-28" must be one of auto, per-request, '
            "handshake",
        ),
        (
            {"devtools.metrics": "metrics"},
            None,
            'service orchestrator: label devtools.metrics "metrics" must be "<path>", e.g. "/metrics"',
        ),
        (
            {"devtools.check.heath": "8001/health"},
            None,
            "service orchestrator: unknown label devtools.check.heath: allowed are devtools.check.health, "
            "devtools.check.mcp, devtools.check.mcp.min-tools, devtools.check.mcp.protocol, devtools.check.e2e, "
            "devtools.check.e2e.expect, devtools.check.e2e.body",
        ),
    ],
)
def test_label_errors_name_service_label_and_what_is_allowed(labels, ports, message):
    with pytest.raises(CatalogError) as caught:
        only(svc(labels, ports))
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


def test_check_label_without_health_is_an_error():
    spec = {"labels": {"devtools.check.e2e": "POST /e2e"}, "ports": []}
    with pytest.raises(CatalogError) as caught:
        load_catalog({"services": {"cicd": spec}})
    assert str(caught.value) == (
        "service cicd: label devtools.check.e2e needs devtools.check.health (every checked service has one)"
    )


@pytest.mark.parametrize("resolved", [{}, {"services": {}}, {"services": []}, {"name": "x"}])
def test_config_without_services_is_an_error(resolved):
    with pytest.raises(CatalogError, match=r"has no services: expected the JSON printed by `docker compose"):
        load_catalog(resolved)


@pytest.mark.live
def test_resolve_compose_reports_a_missing_file(tmp_path: Path):
    with pytest.raises(CatalogError, match=r"docker compose config failed: .*no-such\.yml"):
        resolve_compose([str(tmp_path / "no-such.yml")])
