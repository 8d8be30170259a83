"""Drift: what a stack says should run on each host, next to what `hostagent status` says runs there.

`compare` is pure: the stack's release record ({"id", "images": service → repo@sha256:…}) and one host's
status JSON in, one finding per service (and one for the release pointer) out. A project is compared with the
services its release's compose file declares (status "declared"): a color runs the app tier and the `data` project
the data tier, each from its own file, so the other tier's services are not missing from it. `render_table` prints them;
`python -m ops.cli drift` fetches both sides and fails when any finding is not `ok`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["ok", "differs", "missing", "extra", "stopped", "unsigned", "release", "unreadable"]
PROBLEM_TEXT: dict[str, str] = {
    "ok": "ok",
    "differs": "DIGEST DIFFERS",
    "missing": "NOT RUNNING (no container)",
    "extra": "EXTRA (not in the release)",
    "stopped": "STOPPED / UNHEALTHY",
    "unsigned": "SIGNATURE FAILS",
    "release": "OTHER RELEASE",
    "unreadable": "STATUS UNREADABLE",
}


@dataclass(frozen=True)
class Finding:
    host: str
    service: str
    kind: Kind
    intended: str | None
    running: str | None
    detail: str = ""
    signature: str = "-"  # the running digest's signature: verified, FAILS, or - (the release names no key)

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


def digest_of(ref: str | None) -> str | None:
    """`repo@sha256:…` → `sha256:…`; None for a reference that is not pinned by digest."""
    if not ref or "@" not in ref:
        return None
    return ref.split("@", 1)[1]


def running_problem(svc: Mapping[str, Any]) -> str | None:
    """None when the container runs and is healthy (or has no healthcheck); else a short reason."""
    state, health = svc.get("state"), svc.get("health")
    if state != "running":
        return f"state {state or 'unknown'}"
    if health not in (None, "healthy"):
        return f"health {health}"
    return None


def signature_of(svc: Mapping[str, Any]) -> tuple[str, str]:
    """(the SIGNATURE cell, why it fails) of a running service from `hostagent status`'s `signature`."""
    sig = svc.get("signature")
    if not isinstance(sig, Mapping):
        return "-", ""
    return ("verified", "") if sig.get("verified") is True else ("FAILS", str(sig.get("detail") or "not verified"))


def signature_line(host: str, services: Mapping[str, Mapping[str, Any]]) -> tuple[str | None, list[str]]:
    """`ops.cli status`'s line on a host's signatures ("host web-0: signatures 9/9 verified"), and one problem per
    running container whose signature fails. (None, []) when the host checked none (the release names no key)."""
    checked = {name: signature_of(svc) for name, svc in services.items() if isinstance(svc.get("signature"), Mapping)}
    if not checked:
        return None, []
    verified = sum(1 for cell, _ in checked.values() if cell == "verified")
    problems = [f"host {host}: {name}'s signature FAILS: {why}" for name, (cell, why) in sorted(checked.items())
                if cell != "verified"]
    return f"host {host}: signatures {verified}/{len(checked)} verified", problems


def with_third_party(release: Mapping[str, Any], third_party: Mapping[str, str]) -> dict[str, Any]:
    """The stack's release record plus the third-party services its enabled compose profiles run (service →
    `repo@sha256:…` from the compose file): what the host should run, all of it. The release's own pins win."""
    return {**release, "images": {**dict(third_party), **dict(release.get("images") or {})}}


def scope(images: Mapping[str, str], declared: object) -> dict[str, str]:
    """The intended images of the services the host's release declares (its tier's); all of them when the host does
    not say (no release yet, an agent older than the tiers)."""
    if not isinstance(declared, list):
        return dict(images)
    return {service: ref for service, ref in images.items() if service in declared}


def compare(host: str, intended: Mapping[str, Any], status: Mapping[str, Any]) -> list[Finding]:
    """Every service of the intended release and every service running on the host, each judged once.

    intended: the stack's release record, {"id": ..., "images": {service: "repo@sha256:…"}}.
    status: `hostagent status` JSON of that host's project ("current", "declared", "services": {service: {...}}).
    A service matches when the running container's image is pinned to the intended digest, it runs healthy and,
    when the host checked it against the release's keys, its signature verifies.
    """
    if status.get("error") and not status.get("services"):
        return [Finding(host, "*", "unreadable", None, None, str(status["error"]))]
    findings: list[Finding] = []
    release_id = intended.get("id")
    if release_id and status.get("current") != release_id:
        findings.append(Finding(host, "(release)", "release", str(release_id), status.get("current") or "none",
                                "the host's current release is not the stack's"))
    images = scope(intended.get("images") or {}, status.get("declared"))
    services: Mapping[str, Mapping[str, Any]] = status.get("services") or {}
    for service in sorted(set(images) | set(services)):
        want = images.get(service)
        if want is None:
            ref = services[service].get("image")
            findings.append(Finding(host, service, "extra", None, digest_of(ref) or ref))
            continue
        svc = services.get(service)
        if svc is None:
            findings.append(Finding(host, service, "missing", digest_of(want), None))
            continue
        have = digest_of(svc.get("image"))
        sig, unsigned = signature_of(svc)
        if have != digest_of(want):
            findings.append(Finding(host, service, "differs", digest_of(want), have or svc.get("image"),
                                    f"container {svc.get('container')}", sig))
            continue
        reason = running_problem(svc)
        if reason is not None:
            findings.append(Finding(host, service, "stopped", digest_of(want), have, reason, sig))
        elif unsigned:
            findings.append(Finding(host, service, "unsigned", digest_of(want), have, unsigned, sig))
        else:
            findings.append(Finding(host, service, "ok", digest_of(want), have, signature=sig))
    return findings


def short(digest: str | None, width: int = 19) -> str:
    """`sha256:0123…` shortened for a table (`sha256:` + 12 hex); `-` for nothing."""
    if not digest:
        return "-"
    return digest if len(digest) <= width else digest[:width] + "…"


def render_table(findings: Iterable[Finding], *, only_problems: bool = False) -> str:
    """A plain-text table, one row per finding; problems first when mixed."""
    rows = [f for f in findings if not (only_problems and f.ok)]
    rows.sort(key=lambda f: (f.ok, f.host, f.service))
    head = ("HOST", "SERVICE", "STATE", "INTENDED", "RUNNING", "SIGNATURE", "DETAIL")
    body = [(f.host, f.service, PROBLEM_TEXT[f.kind], short(f.intended), short(f.running), f.signature, f.detail)
            for f in rows]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in [head, *body]]
    return "\n".join(lines)


def render_markdown(findings: Iterable[Finding]) -> str:
    """The same table for a GitHub step summary."""
    rows = sorted(findings, key=lambda f: (f.ok, f.host, f.service))
    problems = sum(1 for f in rows if not f.ok)
    title = "### Drift: none" if not problems else f"### Drift: {problems} finding(s)"
    lines = [title, "", "| host | service | state | intended | running | signature | detail |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {f.host} | {f.service} | {PROBLEM_TEXT[f.kind]} | `{short(f.intended)}` | `{short(f.running)}` "
              f"| {f.signature} | {f.detail} |" for f in rows]
    return "\n".join(lines) + "\n"


def verdict(findings: Iterable[Finding]) -> tuple[bool, str]:
    """(clean, one-line summary)."""
    items = list(findings)
    problems = [f for f in items if not f.ok]
    hosts = len({f.host for f in items})
    if not problems:
        return True, f"no drift: {len(items)} checks on {hosts} host(s) match the stack"
    return False, f"DRIFT: {len(problems)} of {len(items)} checks on {hosts} host(s) differ from the stack"
