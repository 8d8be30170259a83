"""`ops.cli drift` end to end without an engine: the stack's outputs and config from a stand-in Pulumi, each
host's status from a stand-in SSH, the compose file from a small project directory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ops import cli
from ops import operator_plan as plan
from ops.operator_host import Pulumi

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
CADDY = "caddy:2.8.4-alpine@sha256:" + "c" * 64
PROM = "prom/prometheus:v2.53.1@sha256:" + "9" * 64
COMPOSE = f"""\
services:
  gateway-mcp:
    image: ${{GATEWAY_MCP_IMAGE:?release pin missing}}
    labels: {{devtools.role: gateway, devtools.check.health: "8000/health"}}
  orchestrator:
    image: ${{ORCHESTRATOR_IMAGE:?release pin missing}}
  proxy:
    profiles: [edge]
    image: {CADDY}
  prometheus:
    profiles: [edge, metrics]
    image: {PROM}
"""
OUTPUTS = {"color": "green", "release": {"id": "rel-7", "images": {"gateway-mcp": f"reg/gw@{D1}",
                                                                   "orchestrator": f"reg/orch@{D2}"}},
           "hosts": {"names": ["devtools-prod-green-1"], "addresses": ["203.0.113.7"], "ports": [22],
                     "sshUser": "root", "root": "/opt/devtools"}}


@dataclass(frozen=True)
class StackPulumi(Pulumi):
    """Answers `stack output` and `config get` from memory; nothing else may run."""

    config_values: dict[str, str] = field(default_factory=dict)

    def outputs(self, stack: str) -> dict[str, Any]:
        assert stack == "prod"
        copied: dict[str, Any] = json.loads(json.dumps(OUTPUTS))
        return copied

    def config_value(self, stack: str, key: str) -> str | None:
        assert stack == "prod"
        return self.config_values.get(key)


def container(image: str) -> dict[str, Any]:
    return {"container": "green-x-1", "state": "running", "health": "healthy", "image": image}


def run_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, services: dict[str, Any],
              config: dict[str, str]) -> tuple[int, list[dict[str, Any]]]:
    (tmp_path / "compose").mkdir()
    (tmp_path / "compose" / "docker-compose.yml").write_text(COMPOSE)

    def statuses(_pulumi: Pulumi, _args: Any, outputs: dict[str, Any]
                 ) -> Iterator[tuple[plan.HostAccess, dict[str, Any]]]:
        for host in plan.hosts_of("prod", outputs):
            yield host, {"current": "rel-7", "services": services}

    monkeypatch.setattr(cli, "_statuses", statuses)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    pulumi = StackPulumi(tmp_path, {}, config)
    report = tmp_path / "drift.json"
    args = cli.build_parser().parse_args(["drift", "--stack", "prod", "--cwd", str(tmp_path), "--json", str(report)])
    code = cli.cmd_drift(pulumi, args)
    return code, json.loads(report.read_text())


def finding(service: str, kind: str, intended: str | None, running: str | None) -> dict[str, Any]:
    return {"host": "devtools-prod-green-1", "service": service, "kind": kind, "intended": intended,
            "running": running, "detail": "", "signature": "-"}


def test_the_edge_profile_services_are_intended_with_their_pinned_digests(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Rule: the intended set is the release's pins plus the third-party services of the enabled profiles
    (default `edge`), at the digests the compose file pins. Risk: Caddy and Prometheus read as EXTRA on every
    droplet, so drift is red on every run and a real finding drowns in it."""
    running = {"gateway-mcp": container(f"reg/gw@{D1}"), "orchestrator": container(f"reg/orch@{D2}"),
               "proxy": container(CADDY), "prometheus": container(PROM)}
    code, findings = run_drift(tmp_path, monkeypatch, running, {})
    assert findings == [finding("gateway-mcp", "ok", D1, D1), finding("orchestrator", "ok", D2, D2),
                        finding("prometheus", "ok", "sha256:" + "9" * 64, "sha256:" + "9" * 64),
                        finding("proxy", "ok", "sha256:" + "c" * 64, "sha256:" + "c" * 64)]
    assert code == cli.EXIT_OK
    assert capsys.readouterr().out.endswith("no drift: 4 checks on 1 host(s) match the stack\n")


def test_a_third_party_service_on_another_digest_is_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rule: a pinned third-party service is held to its digest like the release's own. Risk: a proxy swapped by
    hand (or left on an old digest) passes unnoticed."""
    other = "caddy:2.8.4-alpine@sha256:" + "d" * 64
    running = {"gateway-mcp": container(f"reg/gw@{D1}"), "orchestrator": container(f"reg/orch@{D2}"),
               "proxy": container(other), "prometheus": container(PROM)}
    code, findings = run_drift(tmp_path, monkeypatch, running, {})
    assert findings[3] == {**finding("proxy", "differs", "sha256:" + "c" * 64, "sha256:" + "d" * 64),
                           "detail": "container green-x-1"}
    assert code == cli.EXIT_FAILED


def test_only_the_stacks_profiles_are_intended(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rule: the profiles are the stack's devtools:composeProfiles (what the release's COMPOSE_PROFILES says).
    Risk: a service of a profile the stack leaves off is expected everywhere and reported missing."""
    running = {"gateway-mcp": container(f"reg/gw@{D1}"), "orchestrator": container(f"reg/orch@{D2}"),
               "prometheus": container(PROM)}
    code, findings = run_drift(tmp_path, monkeypatch, running, {"composeProfiles": "metrics"})
    assert [(f["service"], f["kind"]) for f in findings] == [
        ("gateway-mcp", "ok"), ("orchestrator", "ok"), ("prometheus", "ok")]
    assert code == cli.EXIT_OK


def test_profiles_set_empty_enable_no_third_party_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rule: `composeProfiles: ""` (the local stacks: the stand-in runs Debian's haproxy and prometheus instead) is
    no profile, not the default. Risk: every local drift run reported Caddy and Prometheus NOT RUNNING."""
    running = {"gateway-mcp": container(f"reg/gw@{D1}"), "orchestrator": container(f"reg/orch@{D2}")}
    code, findings = run_drift(tmp_path, monkeypatch, running, {"composeProfiles": ""})
    assert findings == [finding("gateway-mcp", "ok", D1, D1), finding("orchestrator", "ok", D2, D2)]
    assert code == cli.EXIT_OK
