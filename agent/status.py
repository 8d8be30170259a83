"""`status` and `history` of a host's project (standard library only).

status reports what the host says should run (the current release's pins, and the services its compose file
declares: a tier's file holds only that tier's) next to what actually runs (each container's image reference and
digest, and whether that digest's signature verifies against the release's keys), which is what a drift check
compares.
"""

from __future__ import annotations

import json
from typing import Any

from agent import containers, signing
from agent.process import Runner, run_process
from agent.store import Store


def running_services(inspected: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per compose service: container, state, health, image reference and the digest it pins (pure)."""
    out: dict[str, dict[str, Any]] = {}
    for c in inspected:
        service = containers.service_of(c)
        if not service:
            continue
        ref = str(c.get("Config", {}).get("Image", ""))
        state = c.get("State", {})
        out[service] = {
            "container": str(c.get("Name", "")).lstrip("/"),
            "state": state.get("Status"),
            "health": (state.get("Health") or {}).get("Status"),
            "restarts": c.get("RestartCount", 0),
            "image": ref,
            "digest": ref.split("@", 1)[1] if "@" in ref else None,
            "image_id": c.get("Image"),
        }
    return dict(sorted(out.items()))


def declared_services(store: Store, release_id: str | None) -> list[str] | None:
    """The services a release's resolved compose config declares (its profiles applied), None when unknown."""
    if release_id is None:
        return None
    try:
        services = json.loads((store.release_dir(release_id) / "resolved.json").read_text()).get("services")
    except (OSError, ValueError, AttributeError):
        return None
    return sorted(str(s) for s in services) if isinstance(services, dict) else None


def signatures(services: dict[str, dict[str, Any]], manifest: dict[str, Any], runner: Runner, cosign: str
               ) -> None:
    """Each running container's digest against the current release's public keys (agent.signing), as its
    `signature`: {verified, detail}. Nothing is added when the release has no signing policy."""
    policy = signing.policy_from_manifest(manifest)
    if policy is None or not policy.public_keys:
        return
    refs = {name: str(svc["image"]) for name, svc in services.items() if svc.get("digest")}
    for verdict in signing.verify_images(refs, policy, runner, cosign):
        services[verdict.service]["signature"] = {"verified": verdict.ok, "detail": verdict.reason}


def release_images(store: Store, report: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The images of each release the host runs or may switch to on its own (current, previous, active, pending):
    what `ops.cli registry-gc` must keep in the registry."""
    pending = report.get("pending") or {}
    ids = {report.get("current"), report.get("previous"), report.get("active"), pending.get("release")}
    kept = set(store.kept_releases())
    return {rid: dict(sorted(store.release_manifest(rid).get("images", {}).items()))
            for rid in sorted(i for i in ids if isinstance(i, str) and i in kept)}


def status(store: Store, runner: Runner = run_process, cosign: str = signing.COSIGN) -> dict[str, Any]:
    current = store.pointer("current")
    manifest = store.release_manifest(current) if current else {}
    intended = manifest.get("images", {})
    report: dict[str, Any] = {
        "project": store.project,
        "current": current,
        "previous": store.pointer("previous"),
        "active": store.run_target(),
        "pending": store.read_pending(),
        "provisional": store.read_provisional(),
        "releases": store.kept_releases(),
        "intended": dict(sorted(intended.items())),
        "declared": declared_services(store, current),
    }
    report["release_images"] = release_images(store, report)
    try:
        inspected, errors = containers.inspect_project(store.project)
    except containers.ContainersError as exc:
        inspected, errors = [], [str(exc)]
    report["services"] = running_services(inspected)
    signatures(report["services"], manifest, runner, cosign)
    if errors:
        report["error"] = "cannot read containers: " + "; ".join(errors)
    return report


HISTORY_EVENTS = ("apply.", "rollback.", "recover.", "gate.", "upload.", "migrate.", "network.", "prune", "backup.",
                  "restore.")


def render_history(entries: list[dict[str, Any]], releases: list[str], current: str | None,
                   previous: str | None) -> str:
    """Plain-text history: kept releases, then the rollout events (pure)."""
    lines = ["releases kept (oldest first):"]
    for rid in releases:
        mark = " (current)" if rid == current else " (previous)" if rid == previous else ""
        lines.append(f"  {rid}{mark}")
    if not releases:
        lines.append("  none")
    lines.append("events:")
    for e in entries:
        detail = e.get("reason") or (f"previous {e['previous']}" if e.get("previous") else "")
        stage = f" at {e['stage']}" if e.get("stage") else ""
        lines.append(f"  {e['ts']}  {e['event']:<24} {e.get('release') or '-':<20} {detail}{stage}".rstrip())
    if not entries:
        lines.append("  none")
    return "\n".join(lines)


def history(store: Store, limit: int, as_json: bool) -> str:
    entries = [e for e in store.audit_entries() if str(e.get("event", "")).startswith(HISTORY_EVENTS)][-limit:]
    if as_json:
        return json.dumps({"releases": store.kept_releases(), "current": store.pointer("current"),
                           "previous": store.pointer("previous"), "events": entries}, indent=2, sort_keys=True)
    return render_history(entries, store.kept_releases(), store.pointer("current"), store.pointer("previous"))
