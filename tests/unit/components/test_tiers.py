"""components.tiers: which services form the data tier, each tier's compose file, the colors' data addresses."""

from __future__ import annotations

import pytest
import yaml

from components.catalog import CatalogError
from components.tiers import APP, DATA, HEADER, published_port, read_tiers, tier_compose
from components.tiers import data_env as colors_env
from tests.unit.components.program_harness import ROOT

COMPOSE = (ROOT / "compose" / "docker-compose.yml").read_text()
DATA_SERVICES = ("rag-context", "state-persistence")


def test_the_compose_file_marks_the_two_services_that_keep_data():
    tiers = read_tiers(COMPOSE)
    assert tiers.data == DATA_SERVICES
    assert tiers.app == ("gateway-mcp", "orchestrator", "feature-dev", "code-review", "infrastructure", "cicd",
                         "documentation", "proxy", "prometheus", "node-exporter")
    assert [(d.url_env, d.container_port, d.published, d.migrate) for d in tiers.data_services] == [
        ("RAG_URL", 8007, "${HOST_PORT_PREFIX:-80}07", None),
        ("STATE_URL", 8008, "${HOST_PORT_PREFIX:-80}08", "migrate")]
    assert tiers.of("state-persistence") == DATA and tiers.of("cicd") == APP


def test_colors_reach_the_data_tier_by_name_on_a_shared_engine_and_by_address_on_droplets():
    tiers = read_tiers(COMPOSE)
    assert colors_env(tiers, address=None, host_port_prefix="83") == {
        "RAG_URL": "http://rag-context:8007", "STATE_URL": "http://state-persistence:8008"}
    assert colors_env(tiers, address="10.110.0.7", host_port_prefix="80") == {
        "RAG_URL": "http://10.110.0.7:8007", "STATE_URL": "http://10.110.0.7:8008"}
    assert published_port("${HOST_PORT_PREFIX:-80}08", "83") == 8308
    assert published_port("9000", "83") == 9000


def test_each_tier_file_holds_its_services_and_the_volumes_they_use():
    data = yaml.safe_load(tier_compose(COMPOSE, DATA, network=None))
    app = yaml.safe_load(tier_compose(COMPOSE, APP, network=None))
    assert tuple(data["services"]) == DATA_SERVICES
    assert set(app["services"]).isdisjoint(DATA_SERVICES) and "gateway-mcp" in app["services"]
    assert data["volumes"] == {"rag-index": {}, "state-data": {}}
    assert app["volumes"] == {"caddy-data": {}, "prometheus-data": {}}
    assert "networks" not in data and "networks" not in app
    assert all("networks" not in spec for spec in [*data["services"].values(), *app["services"].values()])
    assert data["name"] == app["name"] == "devtools"
    original = yaml.safe_load(COMPOSE)["services"]
    assert data["services"]["state-persistence"] == original["state-persistence"]  # nothing else changes


def test_on_a_shared_engine_both_tiers_join_one_external_network():
    for tier in (APP, DATA):
        text = tier_compose(COMPOSE, tier, network="devtools-data").decode()
        assert text.startswith(HEADER.format(tier=tier))
        assert "&id" not in text and "*id" not in text  # written out in full, no YAML aliases
        doc = yaml.safe_load(text)
        assert doc["networks"] == {"data": {"name": "devtools-data", "external": True}}
        assert {tuple(s["networks"]) for s in doc["services"].values()} == {("default", "data")}


def test_the_same_input_writes_the_same_bytes():
    assert tier_compose(COMPOSE, DATA, network="n") == tier_compose(COMPOSE, DATA, network="n")


def _with_labels(service: str, labels: dict[str, str], ports: list[str] | None = None) -> str:
    doc = yaml.safe_load(COMPOSE)
    doc["services"][service]["labels"] = labels
    if ports is not None:
        doc["services"][service]["ports"] = ports
    return yaml.safe_dump(doc)


@pytest.mark.parametrize(("service", "labels", "ports", "message"), [
    ("cicd", {"devtools.tier": "state"}, None,
     "service 'cicd' label devtools.tier: 'state' is not one of app, data"),
    ("cicd", {"devtools.migrate": "migrate"}, None,
     "service 'cicd' has devtools.migrate but is not devtools.tier: data (only the data tier has it)"),
    ("state-persistence", {"devtools.tier": "data", "devtools.check.health": "8008/health"}, None,
     "data service 'state-persistence' needs devtools.data.url-env: <ENV KEY> (the variable the colors read its "
     "address from, such as STATE_URL); got ''"),
    ("state-persistence", {"devtools.tier": "data", "devtools.data.url-env": "STATE_URL"}, None,
     "data service 'state-persistence' needs devtools.check.health: \"<container port>/<path>\" (its port is its "
     "address)"),
    ("state-persistence", {"devtools.tier": "data", "devtools.data.url-env": "STATE_URL",
                           "devtools.check.health": "8008/health"}, [],
     "data service 'state-persistence' must publish its port 8008 once (\"${DATA_BIND:-127.0.0.1}:<host port>:8008\"); "
     "found 0"),
])
def test_a_bad_tier_label_is_refused_naming_the_service_and_the_fix(service, labels, ports, message):
    with pytest.raises(CatalogError) as caught:
        read_tiers(_with_labels(service, labels, ports))
    assert str(caught.value) == f"docker-compose.yml: {message}"


def test_a_host_port_with_another_variable_is_refused():
    with pytest.raises(CatalogError, match=r"host port '\$\{OTHER\}08' is not a number once HOST_PORT_PREFIX=80"):
        published_port("${OTHER}08", "80")
