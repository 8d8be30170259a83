"""SSH leases, as data: the short-lived DigitalOcean firewall that admits one CI runner's address to a stack's
droplets on port 22 while a job runs, and how its name records who holds it and until when. Pure: no network,
no clock (the caller passes `now`), so every name, body and verdict has an exact-string test.

A lease is its own firewall, `<project>-<stack>-ssh-lease-<expiry>-<holder>`, applied to the stack's droplet tag
(`components.config_slices.stack_tag`): DigitalOcean admits the union of a droplet's firewalls, so the lease adds
one /32 (or /128) beside the program's SSH firewall without touching it. The Pulumi program owns that firewall and
replaces its whole rule set on every update (a droplet added, a new allowlist), so a rule added to it would be
wiped in the middle of the deploy that needed it; a droplet created during the job (blue's first `up`) carries
the tag and is covered from its first boot. The name is the lease's record, kept by DigitalOcean itself: a job
killed before it closed its lease leaves a firewall whose name says when it expired, and the next lease of the
stack (deploy, operate, drift) deletes it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

SSH_PORT = "22"
DEFAULT_TTL_MINUTES = 90  # longer than the longest job that holds one (deploy: 60 minutes), so none expires live
MAX_TTL_MINUTES = 24 * 60
_EXPIRY = "%Y%m%dt%H%M%Sz"


class LeaseError(ValueError):
    """A lease cannot be opened or closed as asked (the message says why and what to do)."""


@dataclass(frozen=True)
class Lease:
    firewall_id: str
    name: str
    addresses: tuple[str, ...]
    expires: datetime
    holder: str

    def expired(self, now: datetime) -> bool:
        return now >= self.expires

    def record(self) -> dict[str, Any]:
        """What `open` writes for `close` (no secret in it)."""
        return {"firewall_id": self.firewall_id, "name": self.name, "addresses": list(self.addresses),
                "expires": self.expires.isoformat(), "holder": self.holder}


def prefix(project: str, stack: str) -> str:
    """Every lease firewall of one stack starts with this."""
    return f"{project}-{stack}-ssh-lease-"


def holder_name(raw: str) -> str:
    """Who holds a lease, in the characters a firewall name allows (`gh-<run id>-<attempt>`, a user name)."""
    cleaned = re.sub(r"[^a-z0-9.-]+", "-", raw.lower()).strip("-.")[:40].strip("-.")
    return cleaned or "unknown"


def lease_name(project: str, stack: str, expires: datetime, holder: str) -> str:
    """`<project>-<stack>-ssh-lease-<UTC expiry>-<holder>`: letters, digits, '.' and '-' only, as DigitalOcean
    requires of a firewall name."""
    return f"{prefix(project, stack)}{expires.astimezone(UTC).strftime(_EXPIRY)}-{holder_name(holder)}"


def expiry(now: datetime, ttl_minutes: int) -> datetime:
    if not 1 <= ttl_minutes <= MAX_TTL_MINUTES:
        raise LeaseError(f"--ttl {ttl_minutes}: a lease lasts 1 to {MAX_TTL_MINUTES} minutes")
    return (now + timedelta(minutes=ttl_minutes)).astimezone(UTC).replace(microsecond=0)


def lease_source(address: str) -> str:
    """The one address a lease admits, as a host CIDR (/32, /128). Anything but a single public address is
    refused: a lease never opens a range, let alone 0.0.0.0/0."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError as exc:
        raise LeaseError(f"{address!r} is not an IP address: a lease admits one runner's public address") from exc
    if not ip.is_global:
        raise LeaseError(f"{ip} is not a public address: a GitHub-hosted runner reaches the droplets from its public "
                         f"address (pass --address, or run on a runner whose address sshAllowlist holds)")
    return f"{ip}/{ip.max_prefixlen}"


def covering(source: str, allowlist: Iterable[str]) -> str | None:
    """The sshAllowlist entry that already admits `source` (then no lease is needed), or None."""
    host = ipaddress.ip_network(source)
    for entry in allowlist:
        network = ipaddress.ip_network(entry, strict=False)
        if network.version == host.version and host.subnet_of(network):  # type: ignore[arg-type]
            return entry
    return None


def firewall_body(name: str, tag: str, source: str) -> dict[str, Any]:
    """POST /v2/firewalls: TCP 22 from `source` to the droplets tagged `tag`, nothing else (outbound stays the
    program's firewall's: DigitalOcean applies the union)."""
    return {"name": name, "tags": [tag], "droplet_ids": [],
            "inbound_rules": [{"protocol": "tcp", "ports": SSH_PORT, "sources": {"addresses": [source]}}],
            "outbound_rules": []}


def parse(firewall: Mapping[str, Any], project: str, stack: str) -> Lease | None:
    """A firewall of DigitalOcean's list as a lease of this stack, or None when it is none (any other firewall,
    the program's included, is never a lease)."""
    name = str(firewall.get("name") or "")
    match = re.fullmatch(re.escape(prefix(project, stack)) + r"(\d{8}t\d{6}z)-([a-z0-9.-]+)", name)
    if not match:
        return None
    expires = datetime.strptime(match.group(1), _EXPIRY).replace(tzinfo=UTC)
    addresses = tuple(str(a) for rule in firewall.get("inbound_rules") or []
                      for a in (rule.get("sources") or {}).get("addresses") or [])
    return Lease(str(firewall.get("id")), name, addresses, expires, match.group(2))


def leases(firewalls: Iterable[Mapping[str, Any]], project: str, stack: str) -> list[Lease]:
    found = (parse(f, project, stack) for f in firewalls)
    return sorted((lease for lease in found if lease is not None), key=lambda lease: (lease.expires, lease.name))


def to_close(all_leases: Sequence[Lease], recorded: str | None, now: datetime) -> list[Lease]:
    """The recorded lease (this job's) and every expired one (a killed job's), each once."""
    return [lease for lease in all_leases if lease.firewall_id == recorded or lease.expired(now)]


def render(all_leases: Sequence[Lease], now: datetime) -> str:
    """One line per lease: name, addresses, expiry, and EXPIRED when it is."""
    if not all_leases:
        return "no SSH lease"
    return "\n".join(f"{lease.name}  {', '.join(lease.addresses) or '-'}  until {lease.expires.isoformat()}"
                     + ("  EXPIRED" if lease.expired(now) else "") for lease in all_leases)
