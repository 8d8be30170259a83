"""`ops.cli standby up|destroy` as data (pure): where the stack's traffic is decided, whether the stack's color
serves it now, and the pulumi argv of each step. Every refusal and plan has an exact-string test.

A stack owns its traffic when devtools:traffic is not `none` (prod: the load balancer; local: the stand-in's
haproxy), and with it the data tier; a follower (blue, local-blue: traffic `none`) reads liveColor from the stack it
follows (devtools:prodStack). A color serves traffic when the owner's liveColor output or config names it (the
config is what the owner's next update enacts) or, locally, when haproxy serves it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from components.config_keys import COLORS, NAMESPACE
from ops.operator_plan import PlanError, Step, pulumi, up


@dataclass(frozen=True)
class Traffic:
    stack: str
    color: str
    traffic: str  # the stack's devtools:traffic
    owner: str  # the stack that decides where traffic goes (itself, or its prodStack)
    live_output: str | None  # the owner's liveColor output (None: not deployed yet)
    live_config: str  # the owner's devtools:liveColor (its default when unset)
    serving: tuple[str, ...] | None  # what the stand-in's haproxy serves (a local owner), else None

    @property
    def owns_traffic(self) -> bool:
        return self.traffic != "none"


def serving_refusal(action: str, t: Traffic) -> str | None:
    """Why `standby <action>` must not run now (the stack's color serves traffic), or None."""
    seen = []
    if t.live_output == t.color:
        seen.append(f"stack {t.owner}'s output liveColor is {t.color}")
    if t.live_config == t.color:
        seen.append(f"stack {t.owner}'s config {NAMESPACE}:liveColor is {t.color}")
    if t.serving is not None and t.color in t.serving:
        seen.append(f"the stand-in's haproxy serves {', '.join(t.serving)}")
    if not seen:
        return None
    other = COLORS[1 - COLORS.index(t.color)] if t.color in COLORS else "the other color"
    return (f"standby {action}: stack {t.stack}'s color {t.color} serves traffic ({'; '.join(seen)}): flip traffic to "
            f"{other} first (`python -m ops.cli flip {other} --stack {t.owner}`), then run this again; nothing "
            "changed")


def owner_refusal(t: Traffic) -> str | None:
    """`standby destroy` destroys followers only: the owner holds the load balancer and the data tier."""
    if not t.owns_traffic:
        return None
    return (f"standby destroy: stack {t.stack} owns the traffic ({NAMESPACE}:traffic {t.traffic}) and the data "
            f"tier: destroying it would take the load balancer and the data with it. `standby destroy` destroys a "
            f"follower stack ({NAMESPACE}:traffic none, such as blue); nothing changed")


def stack_list() -> tuple[str, ...]:
    return ("pulumi", "stack", "ls", "--json", "--non-interactive")


def init_step(stack: str) -> Step:
    return Step(f"create stack {stack} (it does not exist yet; its config is Pulumi.{stack}.yaml)",
                ("pulumi", "stack", "init", stack, "--non-interactive"))


def up_plan(stack: str, exists: bool) -> list[Step]:
    """Create or update the standby: its hosts, its release (the owner's, or a pinned id) and its gate."""
    return [*([] if exists else [init_step(stack)]), up(stack, "standby up")]


def destroy_plan(stack: str) -> list[Step]:
    """Destroy the follower: each host runs `hostagent stop` first (the rollout's delete), then its droplets go."""
    return [Step(f"pulumi destroy of stack {stack}: `hostagent stop` on each of its hosts, then its droplets and "
                 "everything else it created are deleted", pulumi("destroy", "--yes", "--message", "standby destroy",
                                                                  stack=stack))]


def check_color(stack: str, color: str) -> str:
    if color not in COLORS:
        raise PlanError(f"stack {stack}'s {NAMESPACE}:color {color!r} is not one of {', '.join(COLORS)}")
    return color


def stack_summaries(text: str) -> list[dict[str, Any]]:
    """What `pulumi stack ls --json` printed: one object per stack (name, updateInProgress, ...); ValueError when it
    printed no list of them."""
    try:
        listed = json.loads(text or "[]")
    except ValueError:
        listed = None
    if not isinstance(listed, list) or not all(isinstance(s, dict) and "name" in s for s in listed):
        raise ValueError(f"`pulumi stack ls --json` printed no list of stacks ({text[:200]!r})")
    return listed


def short_names(stacks: Sequence[str]) -> list[str]:
    """`org/project/blue` → `blue` (as `pulumi stack ls --json` names them on Pulumi Cloud)."""
    return [s.rsplit("/", 1)[-1] for s in stacks]
