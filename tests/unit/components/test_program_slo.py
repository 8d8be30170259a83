"""The SLO rules under Pulumi's mocks: each app-tier release bundle carries the stack's rule file as
prometheus/slo-rules.yml (loaded by the edge profile's Prometheus), a changed target is new release content, and
the data tier's release does not move with it."""

from __future__ import annotations

import base64
import functools
import gzip
import io
import tarfile

import yaml

from components.commands import COMPOSE_DIR
from components.slo import SloSpec, render_rules
from tests.unit.components.program_harness import Registration, World
from tests.unit.components.program_stacks import COMMAND, run_stack


@functools.cache
def _prod(**overrides: str) -> World:
    return run_stack("prod", dict(overrides))


def _one(world: World, name: str) -> Registration:
    found = [r for r in world.of_type(COMMAND) if r.name == name]
    assert len(found) == 1, [r.name for r in world.of_type(COMMAND)]
    return found[0]


def _bundle(upload: Registration) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(base64.b64decode(upload.inputs["stdin"])))) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_the_color_bundle_carries_the_stacks_rules():
    files = _bundle(_one(_prod(), "release-devtools-prod-green-1-upload"))
    assert files["bundle/prometheus/slo-rules.yml"].decode() == render_rules(SloSpec())
    custom = _bundle(_one(_prod(sloErrorRatio="0.02", sloPullP95Seconds="30"), "release-devtools-prod-green-1-upload"))
    assert custom["bundle/prometheus/slo-rules.yml"].decode() == render_rules(
        SloSpec(error_ratio_max=0.02, pull_p95_seconds=30.0))
    prometheus = yaml.safe_load(files["bundle/prometheus/prometheus.yml"])
    assert prometheus["rule_files"] == ["slo-rules.yml"]
    edge = yaml.safe_load(files["bundle/docker-compose.yml"])["services"]["prometheus"]
    assert "./prometheus/slo-rules.yml:/etc/prometheus/slo-rules.yml:ro" in edge["volumes"]


def test_a_changed_target_is_a_new_release_content_of_the_colors_only():
    """The apply runs again when its content hash changes: a target change must reach Prometheus with a release,
    while the data tier (no Prometheus; the compose directory's default rules) keeps its release as it is."""
    before, after = _prod(), _prod(sloTraceCoverage="0.95")
    apply = "release-devtools-prod-green-1-apply"
    assert _one(before, apply).inputs["create"] != _one(after, apply).inputs["create"]
    data = [r.name for r in before.of_type(COMMAND) if r.name.startswith("data") and r.name.endswith("-apply")]
    assert data
    for name in data:
        assert _one(before, name).inputs["create"] == _one(after, name).inputs["create"]
        upload = _bundle(_one(after, name.removesuffix("-apply") + "-upload"))
        assert upload["bundle/prometheus/slo-rules.yml"] == (COMPOSE_DIR / "prometheus" / "slo-rules.yml").read_bytes()


def test_the_compose_directorys_rules_are_the_default_targets():
    """compose/prometheus/slo-rules.yml (what ops.ship's and the data tier's bundles carry) is rendered from the
    defaults: `python -m components.slo --output compose/prometheus/slo-rules.yml` rewrites it."""
    assert (COMPOSE_DIR / "prometheus" / "slo-rules.yml").read_text() == render_rules(SloSpec())
