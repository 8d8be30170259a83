"""What `ops.cli registry-gc` keeps and what it deletes (pure: no network, no clock).

Kept is whatever can still be asked for: every release a stack records (`release`, `releases`, `builds`, the data
tier's `data.release`) and every release a host reports as current, previous, active or pending; the N newest images
of each repository (a push not recorded yet is among them); the build cache tag; and, for each kept manifest, the
children of an image index and its cosign artifacts (`sha256-<hex>.sig`, `.att`, `.sbom`). Every other manifest of
the project's repositories is deleted by digest. A stack whose history is malformed stops everything: HistoryError
names the stack and the output.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

REF = re.compile(r"(?P<repo>[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})")
ARTIFACT_SUFFIXES = (".sig", ".att", ".sbom")
ROLES = ("current", "previous", "active", "pending")
"""The releases a host may run or switch back to without asking anyone (agent.status reports their images)."""


class HistoryError(ValueError):
    """A stack's or a host's record of its releases cannot be read: nothing may be deleted."""


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """One manifest of a repository, as the registry reports it."""

    repo: str  # inside the registry: gcdemo/documentation
    digest: str
    tags: tuple[str, ...] = ()
    blobs: tuple[Blob, ...] = ()  # config and layers (an index has none of its own)
    children: tuple[str, ...] = ()  # an index's manifests
    created: str = ""  # ISO 8601 build (or push) time; "" when unknown

    @property
    def artifact(self) -> bool:
        """A cosign signature, attestation or SBOM (tag `sha256-<hex>.sig` …)."""
        return any(t.startswith("sha256-") and t.endswith(ARTIFACT_SUFFIXES) for t in self.tags)


@dataclass(frozen=True)
class Wanted:
    """One release some place can still ask for, and who asks."""

    release: str
    why: str  # "stack prod history", "host prod-1 previous"
    images: Mapping[str, str]  # service → repo@sha256:…


@dataclass(frozen=True)
class Plan:
    address: str
    repositories: tuple[str, ...]
    manifests: int
    releases: Mapping[str, tuple[str, ...]]  # release id → who asks for it (only releases with images here)
    kept: Mapping[str, int]  # why → manifests kept for it (besides releases)
    delete: tuple[Manifest, ...]
    freed: int  # bytes of blobs only deleted manifests reference
    missing: tuple[str, ...] = field(default=())  # wanted images the registry does not hold


def _images(where: str, release_id: str, record: Any) -> dict[str, str]:
    images = record.get("images") if isinstance(record, Mapping) else None
    if not isinstance(images, Mapping) or not all(isinstance(v, str) and REF.fullmatch(v) for v in images.values()):
        raise HistoryError(f"{where}: release {release_id!r} has no images map pinned by digest "
                           f"(repo@sha256:…); refusing to delete anything")
    return {str(k): str(v) for k, v in images.items()}


def _records(where: str, history: Any) -> list[tuple[str, Any]]:
    if history is None:
        return []
    if not isinstance(history, Mapping):
        raise HistoryError(f"{where} is not a map of release id → release; refusing to delete anything")
    return [(str(k), v) for k, v in history.items()]


def wanted_from_stack(stack: str, outputs: Mapping[str, Any]) -> list[Wanted]:
    """Every release the stack's outputs record (a stack never updated records none)."""
    found: list[Wanted] = []
    for output, why in (("releases", "history"), ("builds", "builds")):
        for rid, record in _records(f"stack {stack}'s output {output}", outputs.get(output)):
            found.append(Wanted(rid, f"stack {stack} {why}", _images(f"stack {stack}'s output {output}", rid, record)))
    singles: list[tuple[str, Any, str]] = [("release", outputs.get("release"), "release")]
    data = outputs.get("data")
    if isinstance(data, Mapping):
        singles.append(("data.release", data.get("release"), "data release"))
    for output, record, why in singles:
        if record is None:
            continue
        single = record.get("id") if isinstance(record, Mapping) else None
        if not isinstance(single, str) or not single:
            raise HistoryError(f"stack {stack}'s output {output} has no release id; refusing to delete anything")
        found.append(Wanted(single, f"stack {stack} {why}",
                            _images(f"stack {stack}'s output {output}", single, record)))
    return found


def wanted_from_host(host: str, status: Mapping[str, Any],
                     known: Mapping[str, Mapping[str, str]] | None = None) -> list[Wanted]:
    """The releases a host runs or can switch back to on its own (`hostagent status` → release_images). A host agent
    older than release_images reports only the current release's images (`intended`): the others are looked up in
    `known` (the stacks' records by release id), and one found nowhere stops everything."""
    if status.get("error"):
        raise HistoryError(f"host {host} cannot be asked which releases it keeps ({status['error']}); refusing to "
                           "delete anything")
    images = status.get("release_images")
    if not isinstance(images, Mapping):
        images = dict(known or {})
        if isinstance(status.get("current"), str):
            images[str(status["current"])] = status.get("intended")
    found = []
    for role in ROLES:
        pending = status.get("pending")
        rid = pending.get("release") if role == "pending" and isinstance(pending, Mapping) else status.get(role)
        if not isinstance(rid, str) or not rid:
            continue
        if rid not in images:
            raise HistoryError(f"host {host}'s {role} release {rid} is in no stack's records and its host agent does "
                               "not report its images (an older agent: apply a release there first); refusing to "
                               "delete anything")
        found.append(Wanted(rid, f"host {host} {role}", _images(f"host {host}", rid, {"images": images[rid]})))
    return found


def split_ref(address: str, ref: str) -> tuple[str, str] | None:
    """(repo inside the registry, digest) when `ref` lives in the registry at `address`, else None."""
    match = REF.fullmatch(ref)
    if match is None or not match["repo"].startswith(address.rstrip("/") + "/"):
        return None
    return match["repo"][len(address.rstrip("/")) + 1:], match["digest"]


def _newest(manifests: Iterable[Manifest], keep_recent: int, cache_tag: str) -> list[Manifest]:
    by_repo: dict[str, list[Manifest]] = {}
    for m in manifests:
        if m.tags and not m.artifact and cache_tag not in m.tags:
            by_repo.setdefault(m.repo, []).append(m)
    newest: list[Manifest] = []
    for items in by_repo.values():
        newest += sorted(items, key=lambda m: (m.created, m.digest), reverse=True)[:keep_recent]
    return newest


def plan(address: str, repositories: Sequence[str], manifests: Sequence[Manifest], wanted: Sequence[Wanted], *,
         keep_recent: int, cache_tag: str = "buildcache") -> Plan:
    by_key = {(m.repo, m.digest): m for m in manifests}
    keep: dict[tuple[str, str], str] = {}
    releases: dict[str, list[str]] = {}
    missing: list[str] = []
    for w in wanted:
        for service, ref in sorted(w.images.items()):
            key = split_ref(address, ref)
            if key is None:
                continue
            releases.setdefault(w.release, [])
            if w.why not in releases[w.release]:
                releases[w.release].append(w.why)
            if key in by_key:
                keep.setdefault(key, "release")
            elif f"{ref} ({service} of {w.release})" not in missing:
                missing.append(f"{ref} ({service} of {w.release})")
    if not releases:
        raise HistoryError(f"no stack and no host names a release whose images live in {address}: refusing to "
                           "delete everything (is --stack the stack that owns this registry?)")
    for m in _newest(manifests, keep_recent, cache_tag):
        keep.setdefault((m.repo, m.digest), f"the {keep_recent} newest of each repository")
    for m in manifests:
        if cache_tag in m.tags:
            keep.setdefault((m.repo, m.digest), "build cache")
    _close(keep, by_key, manifests)
    delete = tuple(sorted((m for k, m in by_key.items() if k not in keep), key=lambda m: (m.repo, m.tags, m.digest)))
    kept_blobs = {b.digest for k in keep for b in by_key[k].blobs}
    freed = {b.digest: b.size for m in delete for b in m.blobs if b.digest not in kept_blobs}
    kept: dict[str, int] = {}
    for why in keep.values():
        if why != "release":
            kept[why] = kept.get(why, 0) + 1
    return Plan(address, tuple(repositories), len(manifests),
                {rid: tuple(whys) for rid, whys in sorted(releases.items())}, dict(sorted(kept.items())), delete,
                sum(freed.values()), tuple(missing))


def _close(keep: dict[tuple[str, str], str], by_key: Mapping[tuple[str, str], Manifest],
           manifests: Sequence[Manifest]) -> None:
    """Add what kept manifests need: an index's children, and the cosign artifacts of every kept digest."""
    artifacts: dict[tuple[str, str], list[Manifest]] = {}
    for m in manifests:
        for tag in m.tags:
            if m.artifact and tag.startswith("sha256-"):
                artifacts.setdefault((m.repo, "sha256:" + tag[7:].rsplit(".", 1)[0]), []).append(m)
    todo = list(keep)
    while todo:
        repo, digest = todo.pop()
        needed = [(repo, c, "index children") for c in by_key[(repo, digest)].children]
        needed += [(repo, a.digest, "signatures and attestations") for a in artifacts.get((repo, digest), [])]
        for r, d, why in needed:
            if (r, d) in by_key and (r, d) not in keep:
                keep[(r, d)] = why
                todo.append((r, d))


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} bytes"
    value = float(n)
    for unit in ("kB", "MB"):
        value /= 1000
        if value < 1000:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:.1f} GB"


def _tags(tags: tuple[str, ...], shown: int = 3) -> str:
    if not tags:
        return "(untagged)"
    more = f" and {len(tags) - shown} more" if len(tags) > shown else ""
    return ", ".join(tags[:shown]) + more


def render(p: Plan) -> str:
    lines = [f"registry {p.address}: {p.manifests} manifests in {len(p.repositories)} repositories",
             f"releases kept ({len(p.releases)}), who can still ask for them:"]
    width = max(len(r) for r in p.releases)
    lines += [f"  {rid:<{width}}  {', '.join(whys)}" for rid, whys in p.releases.items()]
    lines += [f"also kept: {n} for {why}" for why, n in p.kept.items()]
    lines += [f"not in the registry (a rollback to these cannot pull): {m}" for m in p.missing]
    if not p.delete:
        lines.append("delete nothing: every manifest is kept")
        return "\n".join(lines)
    lines.append(f"delete {len(p.delete)} of {p.manifests} manifests, freeing about {_size(p.freed)} (the blobs only "
                 "they reference, as the registry reports their sizes):")
    lines += [f"  {m.repo}@{m.digest[:19]}  {_tags(m.tags)}" for m in p.delete]
    return "\n".join(lines)
