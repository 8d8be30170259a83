"""`ops.cli standby up|destroy`: the plans as exact text, the refusals while the stack's color serves traffic (the
owner's liveColor output or config, the stand-in's haproxy) and of destroying the owner, through a Pulumi CLI in
memory (stack_fakes.StackPulumi)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops import cli, standby
from ops import standby_plan as sp
from ops.operator_host import Pulumi
from ops.operator_plan import render_plan

from .stack_fakes import StackPulumi

BLUE = {"color": "blue", "traffic": "none", "prodStack": "prod"}


def traffic(**given: object) -> sp.Traffic:
    base: dict[str, object] = {"stack": "blue", "color": "blue", "traffic": "none", "owner": "prod",
                               "live_output": "green", "live_config": "green", "serving": None}
    return sp.Traffic(**(base | given))  # type: ignore[arg-type]


def test_the_plans() -> None:
    assert render_plan("standby up", sp.up_plan("blue", exists=False)) == (
        "standby up\n"
        "  1. create stack blue (it does not exist yet; its config is Pulumi.blue.yaml)\n"
        "      $ pulumi stack init blue --non-interactive\n"
        "  2. pulumi up on stack blue (the engine shows what changes)\n"
        "      $ pulumi up --yes --diff --message 'standby up' --stack blue --non-interactive")
    assert render_plan("standby destroy", sp.destroy_plan("blue")) == (
        "standby destroy\n"
        "  1. pulumi destroy of stack blue: `hostagent stop` on each of its hosts, then its droplets and everything "
        "else it created are deleted\n"
        "      $ pulumi destroy --yes --message 'standby destroy' --stack blue --non-interactive")
    assert [s.argv[1] for s in sp.up_plan("blue", exists=True)] == ["up"]


def test_a_color_serves_traffic_by_the_owners_output_its_config_or_the_local_proxy() -> None:
    """Rule: any of the three naming the stack's color refuses: the output (where traffic is now), the config (where
    the owner's next update sends it), haproxy (the stand-in moved by hand). Risk: destroying the color users are
    on, or one a half-done flip is about to send them to."""
    assert sp.serving_refusal("destroy", traffic()) is None
    assert sp.serving_refusal("destroy", traffic(live_output="blue")) == (
        "standby destroy: stack blue's color blue serves traffic (stack prod's output liveColor is blue): flip "
        "traffic to green first (`python -m ops.cli flip green --stack prod`), then run this again; nothing changed")
    assert sp.serving_refusal("up", traffic(live_config="blue")) == (
        "standby up: stack blue's color blue serves traffic (stack prod's config devtools:liveColor is blue): flip "
        "traffic to green first (`python -m ops.cli flip green --stack prod`), then run this again; nothing changed")
    local = traffic(stack="local-blue", owner="local", serving=("blue",))
    assert sp.serving_refusal("destroy", local) == (
        "standby destroy: stack local-blue's color blue serves traffic (the stand-in's haproxy serves blue): flip "
        "traffic to green first (`python -m ops.cli flip green --stack local`), then run this again; nothing "
        "changed")


def test_the_owner_is_never_destroyed() -> None:
    prod = traffic(stack="prod", color="green", traffic="loadBalancer", owner="prod", live_output="blue",
                   live_config="blue")
    assert sp.owner_refusal(prod) == (
        "standby destroy: stack prod owns the traffic (devtools:traffic loadBalancer) and the data tier: destroying "
        "it would take the load balancer and the data with it. `standby destroy` destroys a follower stack "
        "(devtools:traffic none, such as blue); nothing changed")
    assert sp.owner_refusal(traffic()) is None


def pulumi(tmp_path: Path, live: str, prod_config: str | None = None, blue: bool = True) -> StackPulumi:
    stacks = {"prod": {"color": "green", "liveColor": live}, **({"blue": {"color": "blue"}} if blue else {})}
    settings = {"prod": {"traffic": "loadBalancer", **({"liveColor": prod_config} if prod_config else {})},
                "blue": BLUE}
    (tmp_path / "Pulumi.blue.yaml").write_text("config:\n  devtools:color: blue\n  devtools:traffic: none\n")
    return StackPulumi(tmp_path, {}, stacks=stacks, settings=settings)


def main(monkeypatch: pytest.MonkeyPatch, fake: StackPulumi, *args: str) -> int:
    monkeypatch.setattr(Pulumi, "find", classmethod(lambda cls, cwd, env: fake))
    return cli.main(["standby", *args, "--yes"])


def test_up_and_destroy_run_when_the_standby_is_idle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    fake = pulumi(tmp_path, live="green")
    assert main(monkeypatch, fake, "up", "--stack", "blue") == 0
    assert main(monkeypatch, fake, "destroy", "--stack", "blue") == 0
    assert fake.ran == [
        ("pulumi", "up", "--yes", "--diff", "--message", "standby up", "--stack", "blue", "--non-interactive"),
        ("pulumi", "destroy", "--yes", "--message", "standby destroy", "--stack", "blue", "--non-interactive")]
    assert "standby destroy: stack blue (traffic stays on prod's green)\n" in capsys.readouterr().out


def test_a_standby_not_created_yet_is_created_from_its_stack_file(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fake = pulumi(tmp_path, live="green", blue=False)
    assert main(monkeypatch, fake, "up", "--stack", "blue") == 0
    assert [argv[:3] for argv in fake.ran] == [("pulumi", "stack", "init"), ("pulumi", "up", "--yes")]


@pytest.mark.parametrize(("live", "config"), [("blue", None), ("green", "blue")])
def test_both_refuse_while_the_standby_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str], live: str, config: str | None
                                              ) -> None:
    fake = pulumi(tmp_path, live=live, prod_config=config)
    for action in ("up", "destroy"):
        assert main(monkeypatch, fake, action, "--stack", "blue") == 2
        assert capsys.readouterr().err.startswith(f"error: standby {action}: stack blue's color blue serves traffic")
    assert fake.ran == []


def test_destroy_refuses_the_owner_and_a_local_standby_haproxy_serves(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    fake = pulumi(tmp_path, live="blue")
    assert main(monkeypatch, fake, "destroy", "--stack", "prod") == 2
    assert capsys.readouterr().err.startswith("error: standby destroy: stack prod owns the traffic")
    local = StackPulumi(tmp_path, {}, stacks={"local": {"liveColor": "green"}, "local-blue": {}},
                        settings={"local": {"traffic": "localProxy", "liveColor": "green"},
                                  "local-blue": {**BLUE, "prodStack": "local"}})
    monkeypatch.setattr(standby, "local_serving", lambda p, stack: ["blue"] if stack == "local" else None)
    assert main(monkeypatch, local, "destroy", "--stack", "local-blue") == 2
    assert "(the stand-in's haproxy serves blue)" in capsys.readouterr().err
    assert fake.ran == [] and local.ran == []
