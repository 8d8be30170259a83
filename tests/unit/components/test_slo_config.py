"""The SLO keys: read into StackConfig.slo with the table's checks, and the same reading from a stack file by
`python -m components.slo` (what the local stand-in's Prometheus loads)."""

from __future__ import annotations

from pathlib import Path

import pytest

from components import slo_cli
from components.config import ConfigError, load_config
from components.slo import SloSpec, render_rules
from tests.unit.components.stack_configs import PROD, PROD_SECRETS, ROOT, make_config, make_local_config, with_overrides


def test_the_slo_keys_read_into_the_spec():
    """Unset keys take the contract's defaults; set ones arrive typed (numbers from the text Pulumi stores)."""
    assert make_config().slo == SloSpec(error_ratio_max=0.01, rollout_success_min=1.0, pull_p95_seconds=60.0,
                                        trace_coverage_min=0.9, window="7d")
    cfg = make_local_config(sloErrorRatio="0.05", sloRolloutSuccess="0.95", sloPullP95Seconds="2.5",
                            sloTraceCoverage="1", sloWindow="30d")
    assert cfg.slo == SloSpec(0.05, 0.95, 2.5, 1.0, "30d")


def test_a_pull_threshold_between_buckets_is_one_problem_naming_the_bounds():
    """The histogram counts pulls only up to its bounds: a threshold between two would be measured at the next
    bound up without anyone noticing. Refused once, with every bound, not also as out of range."""
    with pytest.raises(ConfigError) as err:
        load_config(with_overrides(PROD, {"sloPullP95Seconds": "7.5"}), PROD_SECRETS, stack="prod",
                    project="devtools", commit="c", root=ROOT)
    assert [p for p in err.value.problems if "slo" in p] == [
        "devtools:sloPullP95Seconds: 7.5 is not allowed: one of the pull histogram's bucket bounds: "
        "0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300"]


def test_the_cli_renders_a_stack_files_targets(tmp_path: Path, capsys):
    """The stand-in renders the local stack's rules from its stack file; keys it leaves unset take the defaults."""
    stack = tmp_path / "Pulumi.x.yaml"
    stack.write_text('config:\n  devtools:color: green\n  devtools:sloErrorRatio: "0.05"\n'
                     "  devtools:sloPullP95Seconds: 10\n")
    assert slo_cli.main(["--stack-file", str(stack)]) == 0
    assert capsys.readouterr().out == render_rules(SloSpec(error_ratio_max=0.05, pull_p95_seconds=10.0))
    out = tmp_path / "rules.yml"
    assert slo_cli.main(["--output", str(out)]) == 0
    assert out.read_text() == render_rules(SloSpec())
    assert slo_cli.main(["--stack-file", str(ROOT / "Pulumi.local.yaml")]) == 0
    assert capsys.readouterr().out == render_rules(SloSpec())


def test_the_cli_refuses_a_bad_target_naming_the_key(tmp_path: Path, capsys):
    stack = tmp_path / "Pulumi.x.yaml"
    stack.write_text("config:\n  devtools:sloPullP95Seconds: 45\n  devtools:sloWindow: week\n")
    assert slo_cli.main(["--stack-file", str(stack)]) == 2
    assert capsys.readouterr() == ("", (
        "slo: invalid stack config:\n"
        "  devtools:sloPullP95Seconds: 45.0 is not allowed: one of the pull histogram's bucket bounds: "
        "0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300\n"
        '  devtools:sloWindow: "week" is not allowed: a Prometheus duration longer than 0 such as 7d, 30d or 1w\n'))
    assert slo_cli.main(["--stack-file", str(tmp_path / "missing.yaml")]) == 2
    assert capsys.readouterr().err.startswith(f"slo: cannot read {tmp_path / 'missing.yaml'}: ")
