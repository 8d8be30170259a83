"""Pure rules over what other stacks (and this stack's last update) exported: which release runs, the release
history, whether traffic may move to a color, which deploy key a standby's droplets take, and whether an update may
replace the droplets. No Pulumi here: the program calls these inside `apply`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from agent.release import DIGEST_REF
from components.ssh_keys import md5_fingerprint


class ReleaseError(Exception):
    """The release this stack should run cannot be determined; the message says why and what to do."""


class FollowError(Exception):
    """Something a standby takes from the followed stack is missing or does not fit; the message says what to do."""


class ChosenRelease(NamedTuple):
    """A release another stack (or this stack's history) recorded, as this stack will run it."""

    id: str
    images: dict[str, str]
    commit: str | None
    """The commit the release was built from, carried over so the hosts' release.json names it too."""


def _commit(record: Any) -> str | None:
    commit = record.get("commit") if isinstance(record, Mapping) else None
    return str(commit) if commit else None


def release_record(release_id: str, images: Mapping[str, str], content: str, commit: str | None) -> dict[str, Any]:
    """What a stack exports as `release` and keeps in `releases`: enough to run it again anywhere."""
    return {"id": release_id, "images": dict(sorted(images.items())), "content": content, "commit": commit}


def build_record(release_id: str, images: Mapping[str, str], commit: str | None) -> dict[str, Any]:
    """What a building stack exports as `build` and keeps in `builds`: this update's images, whether or not its own
    color runs them (a color's `release` adds the content hash of what it applied)."""
    return {"id": release_id, "images": dict(sorted(images.items())), "commit": commit}


def check_images(where: str, release_id: str, images: Any, services: tuple[str, ...]) -> dict[str, str]:
    """The images of a release read from another stack, checked: every service pinned by digest."""
    if not isinstance(images, Mapping):
        raise ReleaseError(f"{where}: release {release_id!r} has no images map")
    missing = [s for s in services if s not in images]
    if missing:
        raise ReleaseError(f"{where}: release {release_id!r} has no image for {', '.join(missing)}")
    bad = [f"{s}={images[s]}" for s in services if not DIGEST_REF.match(str(images[s]))]
    if bad:
        raise ReleaseError(f"{where}: release {release_id!r} is not pinned by digest: {', '.join(bad)}")
    return {s: str(images[s]) for s in services}


def followed_release(prod_stack: str, exported: Any, services: tuple[str, ...]) -> ChosenRelease:
    """`release: prod`: the release prod exported last."""
    if not isinstance(exported, Mapping) or not exported.get("id"):
        raise ReleaseError(f"stack {prod_stack} exports no release yet: run `pulumi up --stack {prod_stack}` first, "
                           "or pin devtools:release to a release id")
    rid = str(exported["id"])
    return ChosenRelease(rid, check_images(f"stack {prod_stack}", rid, exported.get("images"), services),
                         _commit(exported))


def pinned_release(pinned: str, histories: Mapping[str, Any], services: tuple[str, ...]) -> ChosenRelease:
    """`release: <id>`: the first history (by stack name, in order) that holds the id."""
    known: list[str] = []
    for stack, history in histories.items():
        if isinstance(history, Mapping) and pinned in history:
            record = history[pinned]
            images = record.get("images") if isinstance(record, Mapping) else None
            return ChosenRelease(pinned, check_images(f"stack {stack} history", pinned, images, services),
                                 _commit(record))
        if isinstance(history, Mapping):
            known += [str(k) for k in history]
    hint = ", ".join(dict.fromkeys(known)) or "none yet"
    raise ReleaseError(f"devtools:release {pinned!r} is not in the release history of "
                       f"{' or '.join(histories) or 'any stack'} (known: {hint}); pick one of those")


def followed_key(prod_stack: str, exported: Any, public_key: str) -> str:
    """The fingerprint of the deploy key the followed stack uploaded, for a standby's droplets: DigitalOcean refuses
    a second upload of the same key (422), so only one stack uploads it. It must be this stack's own key, or the
    rollout (which signs in with this stack's private key) could never reach the droplets."""
    if not isinstance(exported, str) or not exported:
        raise FollowError(f"stack {prod_stack} exports no sshKeyFingerprint: run `pulumi up --stack {prod_stack}` "
                          "first (it uploads the deploy key standbys use)")
    if md5_fingerprint(public_key) != exported:
        raise FollowError(f"devtools:sshPublicKey of this stack is not the deploy key stack {prod_stack} uploaded "
                          f"(fingerprint {exported}); standbys use {prod_stack}'s key: set the same "
                          f"devtools:sshPublicKey and devtools:sshPrivateKey as stack {prod_stack}")
    return exported


def followed_registry(prod_stack: str, exported: Any) -> str:
    """The name of the DigitalOcean registry the followed stack pushes to: a standby mints its own pull
    credential for it."""
    name = exported.get("name") if isinstance(exported, Mapping) else None
    if not isinstance(name, str) or not name:
        raise FollowError(f"stack {prod_stack} exports no registry name: run `pulumi up --stack {prod_stack}` first")
    return name


def merge_history(previous: Any, current: Mapping[str, Any], keep: int) -> dict[str, Any]:
    """The last `keep` releases, oldest first, the current one last (a re-run moves it to the end)."""
    entries: dict[str, Any] = {}
    if isinstance(previous, Mapping):
        entries = {str(k): v for k, v in previous.items() if isinstance(v, Mapping) and str(k) != current["id"]}
    entries[str(current["id"])] = dict(current)
    return dict(list(entries.items())[-keep:])


RELEASE_RUN_ENV = "DEVTOOLS_RELEASE_RUN"
"""A JSON file holding the record of a finished `ops.cli release` run, which the update adds to `releaseRuns`."""

RUNS_KEPT = 20
"""`ops.cli release` runs the traffic owner keeps in its `releaseRuns` output (`ops.cli history` shows them)."""


def merge_runs(previous: Any, run: Mapping[str, Any] | None, keep: int) -> list[dict[str, Any]]:
    """The last `keep` release runs, oldest first: the previous export, plus `run` (replacing a record of the same
    run id: an update run again with the same record changes nothing)."""
    runs = [dict(r) for r in previous if isinstance(r, Mapping) and r.get("run")] if isinstance(previous, list) \
        else []
    if run is not None and run.get("run"):
        runs = [r for r in runs if r.get("run") != run["run"]] + [dict(run)]
    return runs[-keep:]


def flip_refusal(color: str, stack: str, release: Any, validation: Any) -> str | None:
    """Why traffic may NOT move to `color` served by `stack`, or None when it may.

    Allowed only when the color's last validation passed for the release it runs now (same content hash).
    """
    if not isinstance(release, Mapping) or not release.get("id"):
        return (f"refusing to send traffic to {color}: stack {stack} exports no release; deploy it first "
                f"(`pulumi up --stack {stack}`)")
    rid = release["id"]
    if not isinstance(validation, Mapping) or not validation:
        return f"refusing to send traffic to {color}: release {rid} on stack {stack} has no validation result"
    if validation.get("content") != release.get("content") or validation.get("release") != rid:
        return (f"refusing to send traffic to {color}: the last validation on stack {stack} was for release "
                f"{validation.get('release')!r}, but it now runs {rid!r}; run `pulumi up --stack {stack}` to "
                "validate it")
    if validation.get("passed") is not True:
        failed = ", ".join(validation.get("failed") or []) or "see its validation report"
        return f"refusing to send traffic to {color}: release {rid} on stack {stack} failed validation ({failed})"
    return None


REPLACING = ("region", "monitoring", "vpcIpRange", "vpc", "dropletImage")
"""Shape entries whose change makes DigitalOcean replace the droplets (ForceNew: region, monitoring, vpc_uuid, and
image where it is not ignored); a smaller hostCount deletes droplets."""


def _number(value: Any) -> Any:
    """A whole number read back from a stack output (JSON numbers arrive as floats) as an int."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _change(name: str, before: Any, after: Any) -> str:
    before, after = _number(before), _number(after)
    label = "the VPC of the followed stack" if name == "vpc" else f"devtools:{name}"
    return f"{label} {json.dumps(before)} -> {json.dumps(after)}"


def replacement_refusal(stack: str, color: str, previous: Any, shape: Mapping[str, Any], *, protected: bool,
                        live_on: str | None) -> str | None:
    """Why this update may NOT change what replaces (or removes) the stack's droplets, or None when it may.

    `previous` is the shape the stack's last update exported (None on the first update), `live_on` the stack whose
    load balancer sends users to this color (None when the color is idle). Protected droplets hold the data; live
    ones serve users: both are refused, each with its way out.
    """
    if not isinstance(previous, Mapping):
        return None
    changes = [_change(k, previous[k], shape[k]) for k in REPLACING
               if k in previous and k in shape and previous[k] != shape[k]]
    count = _number(previous.get("hostCount"))
    if isinstance(count, int) and shape["hostCount"] < count:
        changes.append(_change("hostCount", previous["hostCount"], shape["hostCount"]))
    if not changes:
        return None
    what = ", ".join(changes)
    if protected:
        return (f"refusing to change {what} on stack {stack}: DigitalOcean replaces (or for a smaller hostCount, "
                "deletes) droplets for that, and these are protected: they hold the data. Put the old value back; "
                "to move, bring up the other color with the new value and flip traffic to it")
    if live_on is not None:
        other = next(c for c in ("green", "blue") if c != color)
        return (f"refusing to change {what} on stack {stack} while {color} serves traffic (liveColor on stack "
                f"{live_on} is {color}): DigitalOcean would replace (or delete) the droplets users are sent to. "
                f"Flip traffic away first (`python -m ops.cli flip {other} --stack {live_on}`), or put the old value "
                "back")
    return None


def resize_warning(stack: str, previous: Any, size: str) -> str | None:
    """What a droplet size change does to the running droplets (None when the size stays)."""
    before = previous.get("dropletSize") if isinstance(previous, Mapping) else None
    if before is None or before == size:
        return None
    return (f"{_change('dropletSize', before, size)}: DigitalOcean powers off every droplet of stack {stack} to "
            "resize it (all at once: this color serves nothing until they are back), and the disk grows with the "
            "size and never shrinks: a size with a smaller disk is refused from then on")


def followed_data_env(prod_stack: str, exported: Any) -> dict[str, str]:
    """The colors' addresses of the data tier (STATE_URL, RAG_URL…), from the `data` output of the stack that owns
    it: a follower declares no data tier of its own."""
    env = exported.get("env") if isinstance(exported, Mapping) else None
    if not isinstance(env, Mapping) or not env:
        raise FollowError(f"stack {prod_stack} exports no data tier (its `data` output): run `pulumi up --stack "
                          f"{prod_stack}` first (it owns the data tier this stack's colors reach)")
    return {str(k): str(v) for k, v in env.items()}


def _exported_id(record: Any) -> str | None:
    """The id of a release record another update exported (None when it exported none)."""
    rid = record.get("id") if isinstance(record, Mapping) else None
    return str(rid) if rid else None


def data_release_changes(previous: Any, release_id: str) -> bool:
    """Whether `release_id` changes the data tier this stack's last update exported (`previous`: its `data`)."""
    before = _exported_id(previous.get("release")) if isinstance(previous, Mapping) else None
    return before is not None and before != release_id


def data_release_refusal(stack: str, standby_stack: str, previous: Any, release_id: str, *, own_release: Any,
                         standby_release: Any) -> str | None:
    """Why this update may NOT release the data tier `release_id`, or None when it may.

    `previous` is the `data` output of this stack's last update, `own_release` its `release` output, and
    `standby_release` the `release` output of the standby stack. One data tier serves both colors: a change of its
    content while the colors run two different releases would leave one of them on a data tier it was not
    released with.
    """
    if not data_release_changes(previous, release_id):
        return None
    before = previous["release"]["id"]
    own, other = _exported_id(own_release), _exported_id(standby_release)
    if own is None or other is None or own == other:
        return None
    return (f"refusing data release {release_id} on stack {stack}: it changes the data tier (now {before}) while "
            f"the colors run two releases, {own} on stack {stack} and {other} on stack {standby_stack}, and one "
            f"data tier serves both. Bring stack {standby_stack} to release {own} first (`pulumi up --stack "
            f"{standby_stack}`), or flip so both colors run one release; then run this update again")


def _size(value: Any) -> int | None:
    number = _number(value)
    return number if isinstance(number, int) and not isinstance(number, bool) else None


def volume_shrink_refusal(stack: str, previous: Any, size: int) -> str | None:
    """Why the data volume may NOT take `size` GiB (it was larger at the last update), or None when it may."""
    shape = previous.get("shape") if isinstance(previous, Mapping) else None
    before = _size(shape.get("dataVolumeSize")) if isinstance(shape, Mapping) else None
    if before is None or size >= before:
        return None
    return (f"refusing {_change('dataVolumeSize', before, size)} on stack {stack}: a block volume only grows "
            "(DigitalOcean cannot shrink one) and it holds every named volume of the data tier. Put back "
            f"{before} or more")


def data_resize_warning(stack: str, previous: Any, size: str) -> str | None:
    """What a data droplet size change does (None when the size stays)."""
    shape = previous.get("shape") if isinstance(previous, Mapping) else None
    before = shape.get("dataDropletSize") if isinstance(shape, Mapping) else None
    if before is None or before == size:
        return None
    return (f"{_change('dataDropletSize', before, size)}: DigitalOcean powers off the data droplet of stack {stack} "
            "to resize it: both colors lose the data tier until it is back, and its disk never shrinks")
