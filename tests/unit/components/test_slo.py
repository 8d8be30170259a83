"""components.slo: the objectives' PromQL, exact, and the rule file: deterministic, and a target's change touches
only its own objective's lines."""

from __future__ import annotations

import difflib
import re

import pytest
import yaml

from agent import metrics as agent_metrics
from components.slo import BURNS, PULL_BUCKETS, WINDOWS, Objective, SloSpec, objectives, render_rules


def _by_name(spec: SloSpec | None = None) -> dict[str, Objective]:
    return {o.name: o for o in objectives(spec or SloSpec())}


def test_the_objectives_of_the_contract():
    assert [(o.name, o.by, o.target, o.budget) for o in objectives(SloSpec())] == [
        ("error-ratio", "service", 0.99, 0.01), ("rollout-success", "project", 1.0, 0.0),
        ("pull-latency", "project", 0.95, 0.05), ("trace-coverage", "agent", 0.9, 0.1)]
    assert WINDOWS == ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
    assert [(a.name, a.severity, [(b.factor, b.long, b.short) for b in a.burns]) for a in BURNS] == [
        ("SLOErrorBudgetBurnFast", "page", [(14.4, "1h", "5m"), (6, "6h", "30m")]),
        ("SLOErrorBudgetBurnSlow", "ticket", [(3, "1d", "2h"), (1, "3d", "6h")])]


def test_the_promql_of_each_objective_exact():
    o = _by_name()
    assert o["error-ratio"].bad("1h", 'color="blue"') == (
        'sum by (service) (rate(http_requests_total{code=~"5..",color="blue"}[1h]))')
    assert o["error-ratio"].total("5m") == "sum by (service) (rate(http_requests_total[5m]))"
    assert o["rollout-success"].bad("1d") == "sum by (project) (increase(devtools_rollout_failures_total[1d]))"
    assert o["rollout-success"].total("1d", 'project="green"') == (
        'sum by (project) (increase(devtools_rollouts_total{project="green"}[1d]))')
    assert o["pull-latency"].bad("6h") == (
        "sum by (project) (increase(devtools_image_pull_duration_seconds_count[6h])) - "
        'sum by (project) (increase(devtools_image_pull_duration_seconds_bucket{le=~"60|60.0"}[6h]))')
    assert _by_name(SloSpec(pull_p95_seconds=2.5))["pull-latency"].bad("5m").endswith('{le="2.5"}[5m]))')
    assert o["trace-coverage"].bad("3d") == (
        "sum by (agent) (increase(devtools_trace_probes_total[3d])) - "
        "sum by (agent) (increase(devtools_trace_probes_traced_total[3d]))")
    assert o["rollout-success"].error_ratio("2h") == (
        "(sum by (project) (increase(devtools_rollout_failures_total[2h])) or "
        "0 * sum by (project) (increase(devtools_rollouts_total[2h]))) / "
        "sum by (project) (increase(devtools_rollouts_total[2h]))")


def test_a_pull_threshold_must_be_a_bucket_bound():
    with pytest.raises(ValueError, match=r"pull threshold 45 is not a bucket bound of the pull histogram: one of "
                                         r"0\.5, 1, 2\.5, 5, 10, 20, 30, 60, 120, 300"):
        objectives(SloSpec(pull_p95_seconds=45.0))


def test_the_rule_file_has_one_group_per_objective_with_every_rule():
    doc = yaml.safe_load(render_rules(SloSpec()))
    assert [g["name"] for g in doc["groups"]] == ["slo-error-ratio", "slo-rollout-success", "slo-pull-latency",
                                                  "slo-trace-coverage"]
    for group, o in zip(doc["groups"], objectives(SloSpec()), strict=True):
        records = [(r["record"], r["labels"]) for r in group["rules"] if "record" in r]
        assert records == [(f"slo:sli_error:ratio_rate{w}", {"slo": o.name}) for w in WINDOWS] + [
            ("slo:objective:ratio", {"slo": o.name}), ("slo:error_budget:ratio", {"slo": o.name})]
        assert group["rules"][0]["expr"] == o.error_ratio("5m")
        alerts = [r for r in group["rules"] if "alert" in r]
        assert [(a["alert"], a["labels"]) for a in alerts] == [
            ("SLOErrorBudgetBurnFast", {"severity": "page", "slo": o.name}),
            ("SLOErrorBudgetBurnSlow", {"severity": "ticket", "slo": o.name})]
        assert all("for" not in a for a in alerts)
    fast = doc["groups"][0]["rules"][-2]["expr"]
    assert fast == (
        '(slo:sli_error:ratio_rate1h{slo="error-ratio"} > (14.4 * 0.01) and '
        'slo:sli_error:ratio_rate5m{slo="error-ratio"} > (14.4 * 0.01))\n'
        'or (slo:sli_error:ratio_rate6h{slo="error-ratio"} > (6 * 0.01) and '
        'slo:sli_error:ratio_rate30m{slo="error-ratio"} > (6 * 0.01))')
    assert doc["groups"][1]["rules"][8]["expr"] == "vector(0)"  # rollout success: budget 0


def test_identical_specs_render_identical_bytes():
    assert render_rules(SloSpec()) == render_rules(SloSpec(0.01, 1.0, 60.0, 0.9, "7d"))
    assert render_rules(SloSpec()).encode() == render_rules(SloSpec()).encode()
    assert render_rules(SloSpec(window="30d")) == render_rules(SloSpec())  # the report's window is no rule


def _group_of_each_line(text: str) -> list[str]:
    groups, current = [], ""
    for line in text.splitlines():
        m = re.match(r"  - name: (slo-[a-z-]+)$", line)
        current = m[1] if m else current
        groups.append(current)
    return groups


@pytest.mark.parametrize(("change", "group"), [
    ({"error_ratio_max": 0.02}, "slo-error-ratio"),
    ({"rollout_success_min": 0.99}, "slo-rollout-success"),
    ({"pull_p95_seconds": 30.0}, "slo-pull-latency"),
    ({"trace_coverage_min": 0.95}, "slo-trace-coverage"),
])
def test_a_changed_target_changes_only_its_objectives_lines(change, group):
    before = render_rules(SloSpec())
    after = render_rules(SloSpec(**change))
    where = _group_of_each_line(before)
    changed: set[str] = set()
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines(), autojunk=False)
    for tag, i1, i2, _j1, _j2 in matcher.get_opcodes():
        if tag != "equal":
            changed |= {where[i] for i in range(i1, max(i2, i1 + 1))}
    assert changed == {group}
    assert len(before.splitlines()) == len(after.splitlines())


def test_the_pull_threshold_buckets_are_the_ones_the_hosts_write() -> None:
    """sloPullP95Seconds must be a bound the host agent's pull histogram has (agent.metrics writes it)."""
    assert agent_metrics.BUCKETS == PULL_BUCKETS
