"""The program's side of the release flow (`ops.cli release`), under Pulumi's mocks: the traffic owner builds for
the idle color while its own live color keeps its release untouched; the idle color takes a build by id; a
promotion under analysis and the finished runs are exported where the next run and `ops.cli history` read them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.sources import RELEASE_RUN_ENV
from tests.unit.components.program_harness import World
from tests.unit.components.program_stacks import (
    COMMAND,
    IMAGE,
    LB,
    blue_outputs,
    images,
    prod_outputs,
    run_stack,
)

BUILT = "1a2b3c4"  # the release id of the commit under test (program_stacks.COMMIT)


def _all_but_images(world: World) -> dict[str, object]:
    """Every resource's inputs except the images, their signatures and their components (and the stack references,
    which only read)."""
    return {f"{r.type}::{r.name}": r.raw for r in world.registrations
            if r.type not in (IMAGE, "devtools:index:ServiceImages", "devtools:index:ImageSignatures",
                              "pulumi:pulumi:StackReference")
            and not (r.type == "command:local:Command" and r.name.startswith("signatures-"))}


def test_a_build_for_the_idle_color_leaves_the_live_colors_hosts_untouched():
    """The risk: building a commit in prod while green serves users re-ran green's rollout in place (today's
    behaviour of `release: build`). With the live color pinned to the release it runs and buildAlways, the
    images are built and exported, and every other resource (droplets, rollout commands, load balancer) has
    exactly the inputs it has without the build."""
    own = prod_outputs("r1")
    held = run_stack("prod", overrides={"release": "r1", "buildAlways": True}, others={"prod": own})
    pinned = run_stack("prod", overrides={"release": "r1"}, others={"prod": own})
    assert len(held.of_type(IMAGE)) == 9 and pinned.of_type(IMAGE) == []
    signatures = [r for r in held.of_type("command:local:Command") if r.name.startswith("signatures-")]
    assert len(signatures) == 9  # the build is signed for the idle color to run
    assert _all_but_images(held) == _all_but_images(pinned)
    apply = next(c for c in held.of_type(COMMAND) if c.name.startswith("release-") and c.name.endswith("-apply"))
    assert "r1" in apply.inputs["create"] and BUILT not in apply.inputs["create"]
    assert held.exports_plain["release"]["id"] == "r1"
    build = held.exports_plain["build"]
    assert build["id"] == BUILT and set(build["images"]) == set(images())
    assert list(held.exports_plain["builds"]) == [BUILT]
    assert list(held.exports_plain["releases"]) == ["r1"]  # what green ran: a rollback never lands on a build


def test_the_idle_color_takes_a_build_by_id():
    """Blue pinned to a release prod built but green never ran finds it in prod's `builds`."""
    build = {"id": "b2", "images": images("b2", "code-review"), "commit": "abcdef0"}
    prod = prod_outputs("r1") | {"builds": {"b2": build}}
    world = run_stack("blue", overrides={"release": "b2"}, others={"prod": prod})
    assert world.exports_plain["release"]["id"] == "b2"
    assert world.exports_plain["release"]["images"] == build["images"]
    assert world.exports_plain["release"]["commit"] == "abcdef0"


def test_an_unknown_id_names_every_history_it_looked_in():
    with pytest.raises(Exception, match=r"not in the release history of blue or prod or blue builds or prod builds"):
        run_stack("blue", overrides={"release": "zz9"}, others={"prod": prod_outputs("r1")})


PROMOTION = {"color": "blue", "release": "r1", "from": "green", "run": "rel-20261202T140000Z",
             "started": "2026-12-02T14:00:00Z"}


def test_a_promotion_is_exported_and_changes_no_resource():
    """The promotion marker is what a killed run leaves for the next one: it must reach the outputs and must not
    change any resource (a flip with it is the same flip as without)."""
    others = {"blue": blue_outputs()}
    marked = run_stack("prod", overrides={"liveColor": "blue", "promotion": PROMOTION}, others=others)
    plain = run_stack("prod", overrides={"liveColor": "blue"}, others=others)
    assert marked.exports_plain["promotion"] == PROMOTION
    assert plain.exports_plain["promotion"] == {}
    assert {f"{r.type}::{r.name}": r.raw for r in marked.registrations} == \
        {f"{r.type}::{r.name}": r.raw for r in plain.registrations}
    assert marked.one(LB).inputs["dropletIds"] == [555001]


@pytest.mark.parametrize(("promotion", "message"), [
    (PROMOTION | {"color": "green", "from": "blue"}, r"devtools:promotion: color 'green' from 'blue' does not match "
                                                     r"devtools:liveColor 'blue'"),
    ({"color": "blue"}, r"devtools:promotion: lacks release, from, run, started"),
    (PROMOTION | {"release": "-bad"}, r"devtools:promotion\.release: "),
])
def test_a_promotion_that_contradicts_the_traffic_is_refused(promotion, message):
    with pytest.raises(Exception, match=message):
        run_stack("prod", overrides={"liveColor": "blue", "promotion": promotion},
                  others={"blue": blue_outputs()})


def test_build_always_on_a_follower_is_refused():
    with pytest.raises(Exception, match=r"devtools:buildAlways: set with devtools:release: prod"):
        run_stack("blue", overrides={"buildAlways": True}, others={"prod": prod_outputs()})


def test_a_finished_run_joins_the_kept_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`ops.cli release` hands its record to the traffic owner's last update; the update keeps the earlier runs
    (its own previous export) and replaces a record of the same run rather than adding it twice."""
    earlier = [{"run": "rel-1", "outcome": "stable"}, {"run": "rel-2", "outcome": "flipped back"}]
    record = {"run": "rel-2", "outcome": "flipped back", "release": "r1", "steps": []}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(record))
    monkeypatch.setenv(RELEASE_RUN_ENV, str(path))
    own = prod_outputs("r1") | {"releaseRuns": earlier}
    world = run_stack("prod", others={"prod": own})
    assert world.exports_plain["releaseRuns"] == [earlier[0], record]
    monkeypatch.delenv(RELEASE_RUN_ENV)
    assert run_stack("prod", others={"prod": own}).exports_plain["releaseRuns"] == earlier


def test_an_unreadable_run_record_stops_the_update(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "run.json"
    path.write_text("{not json")
    monkeypatch.setenv(RELEASE_RUN_ENV, str(path))
    with pytest.raises(Exception, match=rf"{RELEASE_RUN_ENV}=.*run\.json: cannot read the release run record"):
        run_stack("prod", others={"prod": prod_outputs("r1")})
