"""`ops.cli slo`'s arguments: what the help promises about exit codes and no data, and input refused before
anything is asked."""

from __future__ import annotations

import pytest

from ops.cli import main


def test_the_help_says_when_it_exits_1_and_that_no_data_is_not_a_miss(capsys):
    with pytest.raises(SystemExit):
        main(["slo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Exit codes: 0 no target missed (also when some or all objectives have no data) · 1 a target missed, " \
           "or Prometheus did not answer · 2 cannot start (bad input)" in text
    for flag in ("--window", "--stack", "--prometheus", "--json", "--html", "--default-targets"):
        assert flag in text


def test_a_window_that_is_no_duration_is_refused_before_any_query(capsys):
    code = main(["slo", "--prometheus", "http://127.0.0.1:9", "--default-targets", "--window", "a week"])
    assert code == 2
    assert capsys.readouterr().err == ("error: window 'a week' is not a PromQL duration such as 7d, 24h or 1h30m\n")
