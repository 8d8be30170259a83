"""components.catalog: the services, pins, builds and gateway the Pulumi program reads from the compose files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent.release import image_env_key
from components.catalog import (
    BuildSpec,
    CatalogError,
    ThirdPartyService,
    enabled_third_party,
    load_service_catalog,
    load_third_party,
)

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "compose"
# The one place the services are spelled out: the test of the compose file. Every other test reads them from
# the compose file (tests/compose_services.py).
SERVICES = ("gateway-mcp", "orchestrator", "feature-dev", "code-review", "infrastructure", "cicd", "documentation",
            "rag-context", "state-persistence")
DATA_SERVICES = ("rag-context", "state-persistence")  # `devtools.tier: data` (tests/unit/components/test_tiers.py)

PROD_OK = """\
services:
  gateway:
    image: ${GATEWAY_IMAGE:?release pin missing}
    labels: {devtools.role: gateway, devtools.check.health: "9000/healthz"}
  worker:
    image: ${WORKER_IMAGE:?release pin missing}
    labels: ["devtools.role=agent", "devtools.check.health=9001/health"]
  edge:
    image: caddy:2@sha256:e97e0e3f8f51be708a9d5fadbbd75e3398c22fc0eecd4b26d48561e3f7daa9eb
"""
DEV_OK = """\
x-build: &build
  context: ${APP_ROOT:-../app}
services:
  gateway:
    build: {<<: *build, dockerfile: docker/Gateway.Dockerfile, args: {B: "2", A: "1"}}
  worker:
    build: ./worker
    environment: {DEBUG: "true"}
"""


def write(tmp_path: Path, prod: str = PROD_OK, dev: str | None = DEV_OK) -> Path:
    (tmp_path / "docker-compose.yml").write_text(prod)
    if dev is not None:
        (tmp_path / "docker-compose.override.yml").write_text(dev)
    return tmp_path


def test_real_compose_files_give_nine_pinned_services_in_file_order() -> None:
    """Every service the release pins is deployed; a service missed here would never get an image."""
    catalog = load_service_catalog(COMPOSE, Path("/srv/app"))
    assert catalog.services == SERVICES
    assert dict(catalog.pin_keys) == {s: image_env_key(s) for s in SERVICES}
    assert catalog.pin_keys["gateway-mcp"] == "GATEWAY_MCP_IMAGE"


def test_real_compose_files_build_every_service_from_the_app_root() -> None:
    """The build contexts follow devtools:appRoot; a context left at examples/app would ship the stand-in app."""
    catalog = load_service_catalog(COMPOSE, Path("/srv/app"))
    assert list(catalog.builds) == list(SERVICES)
    for service in SERVICES:
        assert catalog.builds[service] == BuildSpec(service, Path("/srv/app"), Path("/srv/app/Dockerfile"),
                                                    (("SERVICE", service),))


def test_real_compose_files_name_the_gateway_and_its_health_check() -> None:
    """The load balancer checks the gateway's health path on its port; a wrong one takes every host out."""
    catalog = load_service_catalog(COMPOSE, ROOT / "examples" / "app")
    assert (catalog.gateway, catalog.gateway_health_path, catalog.gateway_port) == ("gateway-mcp", "/health", 8000)
    assert catalog.builds["cicd"].context == ROOT / "examples" / "app"


def test_edge_prometheus_scrapes_every_pinned_service_of_the_app_tier() -> None:
    """compose/prometheus/prometheus.yml names its targets itself (Prometheus reads no compose file): every
    service the release pins in the colors' app tier, where the edge profile runs, at the container port it
    publishes. A service added to the compose file and not there would go unscraped on droplets; the data tier's
    services are in another project (on droplets, another droplet), where no name of theirs resolves."""
    prod = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())["services"]
    app = [s for s in SERVICES if s not in DATA_SERVICES]
    ports = {s: str(prod[s]["ports"][0]).rsplit(":", 1)[1] for s in app}
    config = yaml.safe_load((COMPOSE / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert list(jobs) == ["devtools", "node"]
    assert jobs["node"]["static_configs"] == [{"targets": ["node-exporter:9100"]}]  # the rollout metrics
    (group,) = jobs["devtools"]["static_configs"]
    assert group["targets"] == [f"{s}:{ports[s]}" for s in app]


def test_small_files_merges_list_labels_relative_contexts_and_sorted_args(tmp_path: Path) -> None:
    """Anchors/merges resolve, a relative context is the compose dir's, args are sorted, the digest-pinned
    third-party image is not a release service."""
    catalog = load_service_catalog(write(tmp_path), tmp_path / "app")
    assert catalog.services == ("gateway", "worker")
    assert (catalog.gateway, catalog.gateway_port, catalog.gateway_health_path) == ("gateway", 9000, "/healthz")
    assert catalog.builds["gateway"] == BuildSpec("gateway", tmp_path / "app",
                                                  tmp_path / "app" / "docker" / "Gateway.Dockerfile",
                                                  (("A", "1"), ("B", "2")))
    assert catalog.builds["worker"] == BuildSpec("worker", tmp_path / "worker", tmp_path / "worker" / "Dockerfile",
                                                 ())


def test_relative_app_root_becomes_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Contexts are absolute paths: the build runs from wherever Pulumi runs, not from the compose dir."""
    monkeypatch.chdir(tmp_path)
    catalog = load_service_catalog(write(tmp_path), Path("app"))
    assert catalog.builds["gateway"].context == tmp_path / "app"


@pytest.mark.parametrize(("prod", "dev", "file", "expected"), [
    (PROD_OK, None, "docker-compose.override.yml", "cannot read"),
    ("services: [unclosed", DEV_OK, "docker-compose.yml", "not valid YAML"),
    ("just text\n", DEV_OK, "docker-compose.yml", "no `services:` mapping"),
    (PROD_OK.replace("${WORKER_IMAGE:?", "${WORKER_PIN:?"), DEV_OK, "docker-compose.yml",
     "service 'worker' reads its image from ${WORKER_PIN}; the release writes its pin as WORKER_IMAGE"),
    (PROD_OK.replace("caddy:2@sha256:e97e0e3f8f51be708a9d5fadbbd75e3398c22fc0eecd4b26d48561e3f7daa9eb", "caddy:2"),
     DEV_OK, "docker-compose.yml", "service 'edge' image 'caddy:2' is neither a release pin"),
    (PROD_OK, DEV_OK + "  edge:\n    build: .\n", "docker-compose.override.yml",
     "service 'edge' has a `build:` but no release pin in docker-compose.yml"),
    (PROD_OK.replace("devtools.role: gateway", "devtools.role: agent"), DEV_OK, "docker-compose.yml",
     "exactly one service must be labelled devtools.role: gateway, found 0"),
    (PROD_OK.replace("devtools.role=agent", "devtools.role=gateway"), DEV_OK, "docker-compose.yml",
     "exactly one service must be labelled devtools.role: gateway, found 2 (gateway, worker)"),
    (PROD_OK.replace('"9000/healthz"', "healthz"), DEV_OK, "docker-compose.yml",
     "gateway 'gateway' label devtools.check.health: 'healthz' is not"),
    (PROD_OK.replace('"9000/healthz"', '"99999/healthz"'), DEV_OK, "docker-compose.yml",
     "gateway 'gateway' label devtools.check.health: '99999/healthz' is not"),
    (PROD_OK + "    build: .\n", DEV_OK, "docker-compose.yml",
     "service 'edge' has a `build:`; the prod file carries digest pins only"),
    (PROD_OK, DEV_OK.replace("${APP_ROOT:-../app}", "${SRC:-../app}"), "docker-compose.override.yml",
     "service 'gateway' build context: '${SRC:-../app}' uses a variable; only ${APP_ROOT} is substituted"),
    (PROD_OK, DEV_OK.replace('args: {B: "2", A: "1"}', "args: [B]"), "docker-compose.override.yml",
     "service 'gateway' build args: every entry must be NAME=value"),
])
def test_errors_name_the_file_and_the_problem(tmp_path: Path, prod: str, dev: str | None, file: str,
                                              expected: str) -> None:
    """A broken compose file stops the program before any resource, with the file and the fix in the message;
    a silently skipped service or a wrong pin key would deploy a release that cannot start."""
    with pytest.raises(CatalogError) as caught:
        load_service_catalog(write(tmp_path, prod, dev), tmp_path / "app")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / file}: "), message
    assert expected in message


def test_no_pinned_service_is_an_error(tmp_path: Path) -> None:
    """A prod file without any release pin deploys nothing; say so instead of building an empty release."""
    prod = "services:\n  edge:\n    image: caddy@sha256:" + "a" * 64 + "\n"
    with pytest.raises(CatalogError, match=r"docker-compose\.yml: no service runs from a release pin"):
        load_service_catalog(write(tmp_path, prod), tmp_path / "app")


def test_real_compose_file_pins_the_edge_profile_by_digest() -> None:
    """Rule: the services that run without a release pin are the `edge` profile's Caddy, Prometheus and
    node-exporter, each at one digest. Risk: drift (which holds hosts to these) would expect a tag, or miss a
    service."""
    assert load_third_party(COMPOSE) == {
        "proxy": ThirdPartyService(
            "caddy:2.8.4-alpine@sha256:e97e0e3f8f51be708a9d5fadbbd75e3398c22fc0eecd4b26d48561e3f7daa9eb", ("edge",)),
        "prometheus": ThirdPartyService(
            "prom/prometheus:v2.53.1@sha256:f20d3127bf2876f4a1df76246fca576b41ddf1125ed1c546fbd8b16ea55117e6",
            ("edge",)),
        "node-exporter": ThirdPartyService(
            "prom/node-exporter:v1.8.2@sha256:4032c6d5bfd752342c3e631c2f1de93ba6b86c41db6b167b9a35372c139e7706",
            ("edge",)),
    }


def test_enabled_third_party_follows_composes_profile_rule(tmp_path: Path) -> None:
    """Rule: no profiles = always on; with profiles, on when one of them is in COMPOSE_PROFILES (comma list).
    Risk: drift expecting a service compose never starts, or ignoring one it does."""
    services = {"edge": ThirdPartyService("caddy@sha256:" + "1" * 64, ()),
                "prom": ThirdPartyService("prom@sha256:" + "2" * 64, ("edge", "metrics")),
                "debug": ThirdPartyService("busybox@sha256:" + "3" * 64, ("debug",))}
    assert enabled_third_party(services, "") == {"edge": "caddy@sha256:" + "1" * 64}
    assert enabled_third_party(services, "metrics") == {"edge": "caddy@sha256:" + "1" * 64,
                                                        "prom": "prom@sha256:" + "2" * 64}
    assert list(enabled_third_party(services, "debug, edge")) == ["debug", "edge", "prom"]
    caddy = "caddy:2@sha256:e97e0e3f8f51be708a9d5fadbbd75e3398c22fc0eecd4b26d48561e3f7daa9eb"
    assert load_third_party(write(tmp_path)) == {"edge": ThirdPartyService(caddy, ())}
