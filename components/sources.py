"""Pure rules over what other stacks (and this stack's last update) exported: which release runs, the release
history, and whether traffic may move to a color. No Pulumi here: the program calls these inside `apply`.
"""

from __future__ import annotations

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


def merge_history(previous: Any, current: Mapping[str, Any], keep: int) -> dict[str, Any]:
    """The last `keep` releases, oldest first, the current one last (a re-run moves it to the end)."""
    entries: dict[str, Any] = {}
    if isinstance(previous, Mapping):
        entries = {str(k): v for k, v in previous.items() if isinstance(v, Mapping) and str(k) != current["id"]}
    entries[str(current["id"])] = dict(current)
    return dict(list(entries.items())[-keep:])


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
