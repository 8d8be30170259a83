"""What `ops.cli release` does, as data: from what the two stacks say now, the phases of one release through the
idle color (or in place, in single-color mode), each a config change and an update of one stack. Pure: the dry
run prints exactly this, and every phase has an exact-string test.

The traffic owner (prod, local) builds, owns the live color record and one color; the standby (blue, local-blue)
holds the other color. Through the idle color:

  idle = the standby's color:  build   owner: release=<what its color runs>, buildAlways=true  (its hosts unchanged)
                               apply   standby: release=<the build>                             (validation gate)
  idle = the owner's color:    apply   owner: release=build                                     (build + gate)
  then                         promote owner: liveColor=<idle>, promotion={...}                 (the flip)
                               bake    post-promotion analysis of the live color (no update)
                               stable  owner: promotion removed (+ the run record)
                     or        back    owner: liveColor=<previous>, promotion removed (+ the run record)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from components.config_keys import COLORS

STRATEGIES = ("blueGreen", "inPlace")


class ReleasePlanError(ValueError):
    """The stacks cannot take a release as they are (the message says what to do)."""


@dataclass(frozen=True)
class Update:
    """Set (a string or an object), or remove (None), these config keys on `stack`, then `pulumi up` it."""

    stack: str
    config: tuple[tuple[str, str | Mapping[str, str] | None], ...]
    message: str

    def render(self) -> str:
        changes = ", ".join(f"{k}={_shown(v)}" for k, v in self.config) or "no config change"
        return f"pulumi up --stack {self.stack} ({changes})"


def _shown(value: str | Mapping[str, str] | None) -> str:
    if value is None:
        return "(removed)"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return value


@dataclass(frozen=True)
class Situation:
    """What the stacks say before the run (outputs for facts, the owner's config for the strategy)."""

    owner: str
    standby: str
    owner_color: str
    live: str
    strategy: str
    owner_release: str | None  # the release the owner's color runs (its `release` output)
    standby_release: str | None
    promotion: Mapping[str, str] = field(default_factory=dict)

    @property
    def standby_color(self) -> str:
        return COLORS[1 - COLORS.index(self.owner_color)]

    @property
    def idle(self) -> str:
        return self.standby_color if self.live == self.owner_color else self.owner_color

    @property
    def idle_stack(self) -> str:
        return self.owner if self.idle == self.owner_color else self.standby

    def stack_of(self, color: str) -> str:
        return self.owner if color == self.owner_color else self.standby


def situation(owner: str, owner_config: Mapping[str, str], owner_outputs: Mapping[str, Any],
              standby_outputs: Mapping[str, Any] | None) -> Situation:
    """Read the situation, refusing what the flow cannot start from (each refusal names the key and the fix)."""
    strategy = owner_config.get("releaseStrategy", "blueGreen")
    if strategy not in STRATEGIES:
        raise ReleasePlanError(f"devtools:releaseStrategy of stack {owner} is {strategy!r}: use one of "
                               f"{', '.join(STRATEGIES)}")
    if owner_config.get("traffic") == "none" or ("liveColor" not in owner_outputs and owner_outputs):
        raise ReleasePlanError(f"stack {owner} owns no traffic (devtools:traffic: none): release through the stack "
                               "that owns the load balancer (the one whose prodStack is itself)")
    if owner_config.get("release", "build") == "prod":
        raise ReleasePlanError(f"stack {owner} follows another stack (devtools:release: prod): release through the "
                               "stack that builds and owns traffic")
    standby = owner_config.get("standbyStack", "blue")
    owner_color = owner_config.get("color", "green")
    live = str(owner_outputs.get("liveColor") or owner_config.get("liveColor", "green"))
    promotion = owner_outputs.get("promotion") or {}
    standby_release = _release_id(standby_outputs)
    if strategy == "blueGreen" and standby_outputs is None:
        raise ReleasePlanError(f"devtools:releaseStrategy is blueGreen but the standby stack {standby} does not "
                               f"exist: create it (`python -m ops.cli standby up --stack {standby}`), or set "
                               f"devtools:releaseStrategy inPlace on stack {owner} for a single color")
    if strategy == "blueGreen" and live != owner_color and standby_release is None:
        raise ReleasePlanError(f"traffic is on {live} but stack {standby} runs no release: flip back first")
    return Situation(owner=owner, standby=standby, owner_color=owner_color, live=live, strategy=strategy,
                     owner_release=_release_id(owner_outputs), standby_release=standby_release,
                     promotion=dict(promotion) if isinstance(promotion, Mapping) else {})


def _release_id(outputs: Mapping[str, Any] | None) -> str | None:
    release = (outputs or {}).get("release")
    return str(release["id"]) if isinstance(release, Mapping) and release.get("id") else None


def build_update(s: Situation, run: str) -> Update:
    """The owner builds this commit. Its color takes the build when it is the idle one (or in place); while it
    serves users it keeps the release it runs (pinned) and the build waits for the standby."""
    if s.strategy == "inPlace" or s.idle == s.owner_color or s.owner_release is None:
        return Update(s.owner, (("release", "build"), ("buildAlways", None)),
                      f"{run}: build and apply to {s.owner_color}")
    return Update(s.owner, (("release", s.owner_release), ("buildAlways", "true")),
                  f"{run}: build for {s.idle} ({s.live} keeps {s.owner_release})")


def idle_update(s: Situation, run: str, release: str) -> Update | None:
    """The standby takes the build by id when it is the idle color (None: the build update applied it)."""
    if s.strategy == "inPlace" or s.idle == s.owner_color or s.owner_release is None:
        return None
    return Update(s.standby, (("release", release),), f"{run}: apply {release} to {s.idle}")


def promotion(s: Situation, run: str, release: str, started: str) -> dict[str, str]:
    return {"color": s.idle, "release": release, "from": s.live, "run": run, "started": started}


def promote_update(s: Situation, run: str, release: str, started: str) -> Update:
    return Update(s.owner, (("liveColor", s.idle), ("promotion", promotion(s, run, release, started))),
                  f"{run}: promote {release}: traffic {s.live} -> {s.idle}")


def stable_update(owner: str, run: str, release: str) -> Update:
    return Update(owner, (("promotion", None),), f"{run}: {release} is stable")


def flip_back_update(owner: str, run: str, to: str, why: str) -> Update:
    return Update(owner, (("liveColor", to), ("promotion", None)), f"{run}: flip back to {to}: {why}")


def restore_owner_update(s: Situation, run: str) -> Update:
    """After the owner's own color failed its apply (the host restored what it ran), the owner's config names that
    release again, so its next update finds the host as the stack says."""
    if s.owner_release is None:
        return Update(s.owner, (("buildAlways", None),), f"{run}: record")
    # buildAlways stays: the images of the build that failed stay declared (a removed one would be deleted)
    return Update(s.owner, (("release", s.owner_release), ("buildAlways", "true")),
                  f"{run}: {s.owner_color} back on {s.owner_release}")


def record_update(owner: str, run: str) -> Update:
    """An update of the owner that changes nothing but its outputs: the run's record joins `releaseRuns`."""
    return Update(owner, (), f"{run}: record")


def first_in_place(s: Situation) -> bool:
    """Single-color mode, or a first deploy (the owner has no release yet): the owner's color takes the release
    where it runs (the host agent's gate and restore are its rollback)."""
    return s.strategy == "inPlace" or s.owner_release is None


def render(s: Situation, run: str, analysis_text: str) -> str:
    """The dry run: every phase and the analysis (queries, thresholds, window)."""
    release = "<the build>"
    lines = [f"release {run} on stack {s.owner} ({s.strategy}): traffic on {s.live}"
             + ("" if first_in_place(s) else f", idle color {s.idle} (stack {s.idle_stack})")]
    steps = [build_update(s, run).render()]
    idle = idle_update(s, run, release)
    if idle is not None:
        steps.append(idle.render() + " — pre-promotion analysis: its validation gate")
    else:
        steps[0] += " — pre-promotion analysis: its validation gate"
    if first_in_place(s):
        steps.append("post-deploy analysis of " + s.owner_color + " (below); on failure: the previous release "
                     "pinned again (pulumi up)")
    else:
        steps.append(promote_update(s, run, release, "<now>").render())
        steps.append(f"post-promotion analysis of {s.idle} (below)")
        steps.append(f"passed: {stable_update(s.owner, run, release).render()}; failed: "
                     f"{flip_back_update(s.owner, run, s.live, '').render()}")
    lines += [f"  {i}. {step}" for i, step in enumerate(steps, start=1)]
    return "\n".join(lines) + "\n" + analysis_text
