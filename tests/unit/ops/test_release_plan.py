"""The release flow's phases as data (ops/release_plan.py) and its record (ops/release_record.py): exact strings,
and the refusals that stop a release before anything changes."""

from __future__ import annotations

import pytest

from ops import operator_plan as plan
from ops import release_plan as rp
from ops.deploy_lock import release_lock
from ops.operator_host import CliError
from ops.release_record import Record, history_table, run_id

OWNER = {"color": "green", "standbyStack": "local-blue", "traffic": "localProxy", "release": "build"}
RUN = "rel-20261202T140000Z"


def _outputs(release: str | None, live: str = "green", **extra: object) -> dict[str, object]:
    out: dict[str, object] = {"liveColor": live, **extra}
    if release:
        out["release"] = {"id": release, "content": "c"}
    return out


def test_green_live_builds_in_the_owner_and_applies_to_the_standby():
    """While green serves users the owner keeps green on the release it runs (pinned) and only builds; the
    standby takes the build by id: green's hosts are never touched."""
    s = rp.situation("local", OWNER, _outputs("r1"), _outputs("r0"))
    assert (s.live, s.idle, s.idle_stack) == ("green", "blue", "local-blue")
    assert rp.build_update(s, RUN) == rp.Update("local", (("release", "r1"), ("buildAlways", "true")),
                                                f"{RUN}: build for blue (green keeps r1)")
    assert rp.idle_update(s, RUN, "r2") == rp.Update("local-blue", (("release", "r2"),), f"{RUN}: apply r2 to blue")
    promote = rp.promote_update(s, RUN, "r2", "2026-12-02T14:03:00Z")
    assert promote.render() == ("pulumi up --stack local (liveColor=blue, promotion={color: blue, release: r2, "
                                "from: green, run: rel-20261202T140000Z, started: 2026-12-02T14:03:00Z})")
    assert rp.flip_back_update("local", RUN, "green", "why").render() == \
        "pulumi up --stack local (liveColor=green, promotion=(removed))"
    assert rp.stable_update("local", RUN, "r2").render() == "pulumi up --stack local (promotion=(removed))"


def test_blue_live_builds_and_applies_to_the_owners_own_color():
    s = rp.situation("local", OWNER, _outputs("r1", live="blue"), _outputs("r2"))
    assert (s.idle, s.idle_stack) == ("green", "local")
    assert rp.build_update(s, RUN).config == (("release", "build"), ("buildAlways", None))
    assert rp.idle_update(s, RUN, "r3") is None
    assert rp.restore_owner_update(s, RUN).config == (("release", "r1"), ("buildAlways", "true"))


def test_in_place_and_first_deploy_skip_the_promotion():
    single = rp.situation("local", OWNER | {"releaseStrategy": "inPlace"}, _outputs("r1"), None)
    assert rp.first_in_place(single) and rp.idle_update(single, RUN, "r2") is None
    first = rp.situation("local", OWNER, _outputs(None), _outputs(None))
    assert rp.first_in_place(first)


@pytest.mark.parametrize(("config", "outputs", "standby", "message"), [
    (OWNER | {"releaseStrategy": "canary"}, _outputs("r1"), {}, "devtools:releaseStrategy of stack local is "
     "'canary': use one of blueGreen, inPlace"),
    (OWNER, _outputs("r1"), None, "the standby stack local-blue does not exist: create it (`python -m ops.cli "
     "standby up --stack local-blue`), or set devtools:releaseStrategy inPlace on stack local"),
    (OWNER | {"release": "prod"}, _outputs("r1"), {}, "stack local follows another stack"),
    (OWNER, _outputs("r1", live="blue"), {}, "traffic is on blue but stack local-blue runs no release"),
])
def test_a_situation_the_flow_cannot_start_from_is_refused(config, outputs, standby, message):
    with pytest.raises(rp.ReleasePlanError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rp.situation("local", config, outputs, standby)


def test_the_dry_run_names_every_phase():
    s = rp.situation("local", OWNER, _outputs("r1"), _outputs("r0"))
    assert rp.render(s, RUN, "ANALYSIS") == (
        "release rel-20261202T140000Z on stack local (blueGreen): traffic on green, idle color blue (stack "
        "local-blue)\n"
        "  1. pulumi up --stack local (release=r1, buildAlways=true)\n"
        "  2. pulumi up --stack local-blue (release=<the build>) — pre-promotion analysis: its validation gate\n"
        "  3. pulumi up --stack local (liveColor=blue, promotion={color: blue, release: <the build>, from: green, "
        "run: rel-20261202T140000Z, started: <now>})\n"
        "  4. post-promotion analysis of blue (below)\n"
        "  5. passed: pulumi up --stack local (promotion=(removed)); failed: pulumi up --stack local "
        "(liveColor=green, promotion=(removed))\n"
        "ANALYSIS")


def test_a_pending_promotion_is_reported_with_what_finishes_it():
    promotion = {"color": "blue", "release": "r2", "from": "green", "run": RUN, "started": "2026-12-02T14:03:00Z"}
    assert plan.pending_promotion("local", promotion) == (
        "PROMOTION PENDING: run rel-20261202T140000Z moved traffic to blue (r2) at 2026-12-02T14:03:00Z and did "
        "not finish its bake window; `python -m ops.cli release --stack local` analyses it again, then marks it "
        "stable or flips back to green")
    assert plan.pending_promotion("local", {}) is None


def test_the_tunnel_forwards_only_loopback_and_runs_no_command():
    ssh = ["ssh", "-p", "22", "-i", "/k", "-o", "BatchMode=yes", "root@10.0.0.5", ":"]
    assert plan.tunnel_argv(ssh, 41000, 8090) == [
        "ssh", "-p", "22", "-i", "/k", "-o", "BatchMode=yes", "-N", "-o", "ExitOnForwardFailure=yes",
        "-L", "127.0.0.1:41000:127.0.0.1:8090", "root@10.0.0.5"]


def test_the_record_times_steps_and_the_history_is_a_table():
    ticks = iter([100.0, 112.5, 200.0, 203.0])
    record = Record(run=run_id(1796220000.0), stack="local", strategy="blueGreen", started=1796220000.0,
                    release="r2", from_color="green", to_color="blue")
    with record.step("build", clock=lambda: next(ticks)):
        pass
    with pytest.raises(RuntimeError), record.step("promote", clock=lambda: next(ticks)):
        raise RuntimeError("refused")
    record.finish("flipped back", "post-promotion analysis failed", at=1796220100.0)
    data = record.to_json()
    assert data["run"] == "rel-20261202T140000Z" and data["seconds"] == 100.0
    assert [(s["step"], s["outcome"], s["seconds"]) for s in data["steps"]] == [("build", "passed", 12.5),
                                                                               ("promote", "failed", 3.0)]
    assert data["steps"][1]["error"] == "refused"
    assert history_table([data]).splitlines() == [
        "RUN                   RELEASE  TRAFFIC        OUTCOME       SECONDS  MEASURED  FAILED  REASON",
        "rel-20261202T140000Z  r2       green -> blue  flipped back  100.0    0         0       post-promotion "
        "analysis failed"]
    with pytest.raises(ValueError, match="unknown outcome"):
        record.finish("done")


def test_status_names_the_last_run():
    run = {"run": RUN, "release": "r2", "outcome": "flipped back", "from": "green", "to": "blue",
           "reason": "post-promotion analysis failed"}
    assert plan.last_run_line(run, "prod") == (
        "last release run rel-20261202T140000Z: r2 flipped back, traffic green -> blue (post-promotion analysis "
        "failed); `python -m ops.cli history --stack prod` for every run")


def test_two_releases_of_one_stack_never_run_at_once(tmp_path):
    """The second run is refused naming the first (its run and pid); another stack's release is not held up, and
    the lock is free again when the first ends (a SIGKILLed run's lock goes with its process)."""
    with release_lock("prod", "rel-1", tmp_path):
        with pytest.raises(CliError, match=r"another run on stack prod holds its lock \(run rel-1, pid \d+, since "), \
                release_lock("prod", "rel-2", tmp_path):
            pass
        with release_lock("staging", "rel-3", tmp_path):
            pass
    with release_lock("prod", "rel-4", tmp_path):
        pass
