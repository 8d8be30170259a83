"""standin.promconf: the local stand-in's Prometheus config, exact, and the services it reads from the compose
file (the same the program deploys)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from components.tiers import read_tiers
from standin import promconf
from tests.compose_services import SERVICES

DATA = ("rag-context", "state-persistence")
APP = tuple(s for s in SERVICES if s not in DATA)

ROOT = Path(__file__).resolve().parents[3]


EXPECTED_PROMETHEUS_HEAD = """\
# Rendered by `python -m standin.promconf`: the colors' app tier and the data tier, on loopback.
global:
  scrape_interval: 2s
  scrape_timeout: 2s
  evaluation_interval: 2s
rule_files: [slo-rules.yml]  # the local stack's SLO rules (python -m components.slo), beside this file
scrape_configs:
  - job_name: devtools
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:8100"]
        labels: {color: green, service: gateway-mcp}
      - targets: ["127.0.0.1:8101"]
        labels: {color: green, service: orchestrator}
"""


EXPECTED_TAIL = """\
      - targets: ["127.0.0.1:8206"]
        labels: {color: blue, service: documentation}
      - targets: ["127.0.0.1:8307"]
        labels: {color: data, service: rag-context}
      - targets: ["127.0.0.1:8308"]
        labels: {color: data, service: state-persistence}
"""


def test_prometheus_config_exact() -> None:
    """The colors scrape their app tier only; the data tier is scraped once, at its own prefix, as color "data"."""
    text = promconf.render({"green": "81", "blue": "82"}, SERVICES, data=DATA, data_prefix="83")
    assert text.startswith(EXPECTED_PROMETHEUS_HEAD)
    assert text.endswith(EXPECTED_TAIL)
    assert text.count("- targets:") == 2 * len(APP) + len(DATA) == 16
    without_data = promconf.render({"green": "81", "blue": "82"}, SERVICES, data=DATA)  # no --data-prefix
    data_groups = EXPECTED_TAIL[EXPECTED_TAIL.index('      - targets: ["127.0.0.1:8307"]'):]
    assert without_data == text.removesuffix(data_groups)
    with_node = promconf.render({"green": "81", "blue": "82"}, SERVICES, data=DATA, data_prefix="83", node_port=9391)
    assert with_node == text + ("  - job_name: node\n"
                                "    static_configs:\n"
                                '      - targets: ["127.0.0.1:9391"]\n')
    with pytest.raises(ValueError, match="two digits"):
        promconf.render({"green": "8"}, SERVICES)
    with pytest.raises(ValueError, match="port prefix of data must be two digits, not '830'"):
        promconf.render({"green": "81"}, SERVICES, data=DATA, data_prefix="830")


def test_prometheus_config_is_yaml_with_a_target_per_color_and_service() -> None:
    doc = yaml.safe_load(promconf.render({"green": "81", "blue": "82"}, SERVICES, data=DATA, data_prefix="83"))
    groups = doc["scrape_configs"][0]["static_configs"]
    seen = {(g["labels"]["color"], g["labels"]["service"]): g["targets"] for g in groups}
    assert seen[("data", "rag-context")] == ["127.0.0.1:8307"]
    assert seen[("green", "gateway-mcp")] == ["127.0.0.1:8100"]
    assert ("blue", "rag-context") not in seen
    assert sorted(seen) == sorted([(c, s) for c in ("green", "blue") for s in APP] + [("data", s) for s in DATA])


BIND = r"(?:127\.0\.0\.1|\$\{DATA_BIND:-127\.0\.0\.1\}):"  # loopback; the data services' DATA_BIND defaults to it


def test_prometheus_services_match_the_compose_ports() -> None:
    """promconf scrapes service <i> at <prefix><i:02d>: true only while the compose file publishes them so."""
    compose = yaml.safe_load((ROOT / "compose" / "docker-compose.yml").read_text())
    published = {}
    for name, svc in compose["services"].items():
        if "profiles" in svc:
            continue
        (port,) = svc["ports"]
        match = re.fullmatch(BIND + r"\$\{HOST_PORT_PREFIX:-80\}(\d\d):\d+", port)
        assert match, port
        published[name] = match.group(1)
    services = promconf.compose_services(promconf.COMPOSE_FILE.read_text())
    assert published == {name: f"{i:02d}" for i, name in enumerate(services)}
    assert all(
        svc["labels"]["devtools.metrics"] == "/metrics"
        for name, svc in compose["services"].items()
        if name in published
    )


def test_promconf_reads_the_services_the_program_deploys() -> None:
    """The stand-in's stdlib reader and the program's YAML reader (components.catalog) agree on the real
    compose file: a service added there is scraped locally without editing a list here."""
    assert promconf.compose_services(promconf.COMPOSE_FILE.read_text()) == SERVICES


def test_promconf_reads_the_tiers_the_program_deploys() -> None:
    """The stdlib reader and components.tiers agree on which services are the data tier."""
    text = promconf.COMPOSE_FILE.read_text()
    assert promconf.data_tier(text) == read_tiers(text).data == DATA


COMPOSE_LAYOUT = """\
# a comment
name: x
x-service: &service
  image: ${NOT_A_SERVICE:?}
services:
  web:
    <<: *service
    image: ${WEB_IMAGE:?release pin missing}
  # worker: commented out
  worker:
    environment: {A: "1"}
    image: ${WORKER_IMAGE:?missing}
  edge:
    profiles: [edge]
    image: caddy:2@sha256:abc
  tagged:
    image: ${TAGGED_IMAGE:-x:latest}
  store:
    image: ${STORE_IMAGE:?missing}
    labels:
      devtools.role: support
      devtools.tier: data
  # cache: devtools.tier: data in a comment
  cache:
    image: ${CACHE_IMAGE:?missing}
    labels: {devtools.tier: "data", devtools.role: support}
  queue:
    image: ${QUEUE_IMAGE:?missing}
    labels:
      # devtools.tier: data
      devtools.tier: app
      devtools.note: "devtools.tier: database"
volumes:
  data:
    image: ${DATA_IMAGE:?}
"""


def test_compose_services_takes_pinned_services_in_file_order() -> None:
    assert promconf.compose_services(COMPOSE_LAYOUT) == ("web", "worker", "store", "cache", "queue")
    assert promconf.compose_services("services: {}\n") == ()


def test_data_tier_takes_the_services_labelled_data_in_file_order() -> None:
    assert promconf.data_tier(COMPOSE_LAYOUT) == ("store", "cache")
    assert promconf.data_tier("services: {}\n") == ()


def test_promconf_main_refuses_a_compose_file_without_pinned_services(tmp_path: Path, capsys) -> None:
    compose = tmp_path / "docker-compose.yml"
    compose.write_text("services:\n  edge:\n    image: caddy:2@sha256:abc\n")
    assert promconf.main(["--green-prefix", "81", "--blue-prefix", "82", "--compose", str(compose)]) == 1
    assert capsys.readouterr().err == f"promconf: {compose} names no service run from a release pin\n"
    out = tmp_path / "prometheus.yml"
    assert promconf.main(["--green-prefix", "81", "--blue-prefix", "82", "--data-prefix", "83", "--output",
                          str(out)]) == 0
    assert out.read_text() == promconf.render({"green": "81", "blue": "82"}, SERVICES, data=DATA, data_prefix="83")
