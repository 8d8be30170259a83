"""ops.lease_plan: an SSH lease as data (its name, its firewall, its expiry), and ops.lease's wait for DigitalOcean
to apply it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from components.config_slices import StackIdentity, stack_tag
from components.hosts import droplet_tags
from ops import lease
from ops import lease_plan as plan
from ops.lease_plan import Lease, LeaseError

NOW = datetime(2026, 12, 2, 8, 30, 15, 123456, tzinfo=UTC)


def test_a_lease_is_named_for_its_stack_expiry_and_holder() -> None:
    """Rule: the name carries stack, UTC expiry and holder in the characters DigitalOcean allows. Risk: a lease
    nobody can attribute or expire, or a name the API refuses."""
    expires = plan.expiry(NOW, 90)
    assert expires == datetime(2026, 12, 2, 10, 0, 15, tzinfo=UTC)
    name = plan.lease_name("devtools", "prod", expires, "gh-4242-1")
    assert name == "devtools-prod-ssh-lease-20261202t100015z-gh-4242-1"
    assert plan.holder_name("Jane Doe@laptop") == "jane-doe-laptop"
    assert plan.holder_name("@@") == "unknown"
    with pytest.raises(LeaseError, match=r"--ttl 0: a lease lasts 1 to 1440 minutes"):
        plan.expiry(NOW, 0)
    with pytest.raises(LeaseError, match=r"--ttl 1441"):
        plan.expiry(NOW, 1441)


@pytest.mark.parametrize("address", ["0.0.0.0", "10.1.2.3", "127.0.0.1", "192.168.1.4", "::1", "fd00::5",
                                     "198.51.100.7"])
def test_a_lease_never_admits_a_range_or_a_private_address(address: str) -> None:
    """Rule: one public address, as /32 or /128. Risk: 0.0.0.0/0 (or a whole range) behind a name that says lease."""
    with pytest.raises(LeaseError, match="is not a public address"):
        plan.lease_source(address)


def test_lease_source_and_allowlist_cover() -> None:
    """Rule: a public address becomes a host CIDR; an allowlist entry that holds it makes a lease unnecessary.
    Risk: a lease beside an allowlist that already admits the runner, or none where it does not."""
    assert plan.lease_source(" 52.170.12.7\n") == "52.170.12.7/32"
    assert plan.lease_source("2606:4700::1111") == "2606:4700::1111/128"
    with pytest.raises(LeaseError, match=r"'0.0.0.0/0' is not an IP address"):
        plan.lease_source("0.0.0.0/0")
    assert plan.covering("52.170.12.7/32", ["198.51.100.0/24", "52.170.0.0/16"]) == "52.170.0.0/16"
    assert plan.covering("52.170.12.7/32", ["198.51.100.0/24", "2606:4700::/32"]) is None


def test_the_lease_firewall_admits_port_22_from_one_source_to_the_stack_tag() -> None:
    """Rule: exactly one inbound rule (tcp 22 from the source) on the stack's droplet tag, no outbound rule.
    Risk: a lease that opens more than SSH, or reaches another stack's droplets."""
    assert plan.firewall_body("n", "devtools-prod", "52.170.12.7/32") == {
        "name": "n", "tags": ["devtools-prod"], "droplet_ids": [],
        "inbound_rules": [{"protocol": "tcp", "ports": "22", "sources": {"addresses": ["52.170.12.7/32"]}}],
        "outbound_rules": []}


def test_the_lease_targets_the_tag_the_program_puts_on_the_stacks_droplets() -> None:
    """Rule: one rule names a stack's droplet tag (components.config_slices.stack_tag) for the program and ops.
    Risk: a lease on a tag no droplet carries: the deploy cannot reach its hosts."""
    assert stack_tag("devtools", "blue") in droplet_tags(StackIdentity("devtools", "blue", "blue"))
    assert stack_tag("devtools", "blue") == "devtools-blue"


def test_only_this_stacks_lease_firewalls_are_leases() -> None:
    """Rule: a firewall is a lease of the stack only by its exact name form. Risk: close or the expiry sweep
    deleting the program's SSH firewall (its droplets would then accept every port) or another stack's lease."""
    firewalls: list[dict[str, Any]] = [
        {"id": "a", "name": "devtools-prod-ssh", "inbound_rules": []},
        {"id": "b", "name": "devtools-prod-ssh-lease-20261202t100015z-gh-1-1",
         "inbound_rules": [{"sources": {"addresses": ["52.170.12.7/32"]}}]},
        {"id": "c", "name": "devtools-prod-ssh-lease-20261202t070000z-jane"},
        {"id": "d", "name": "devtools-blue-ssh-lease-20261202t070000z-jane"},
        {"id": "e", "name": "devtools-prod-ssh-lease-soon-jane"},
    ]
    found = plan.leases(firewalls, "devtools", "prod")
    assert found == [
        Lease("c", "devtools-prod-ssh-lease-20261202t070000z-jane", (), datetime(2026, 12, 2, 7, tzinfo=UTC), "jane"),
        Lease("b", "devtools-prod-ssh-lease-20261202t100015z-gh-1-1", ("52.170.12.7/32",),
              datetime(2026, 12, 2, 10, 0, 15, tzinfo=UTC), "gh-1-1")]
    assert [x.firewall_id for x in plan.to_close(found, None, NOW)] == ["c"]
    assert [x.firewall_id for x in plan.to_close(found, "b", NOW)] == ["c", "b"]
    assert plan.render(found, NOW) == (
        "devtools-prod-ssh-lease-20261202t070000z-jane  -  until 2026-12-02T07:00:00+00:00  EXPIRED\n"
        "devtools-prod-ssh-lease-20261202t100015z-gh-1-1  52.170.12.7/32  until 2026-12-02T10:00:15+00:00")
    assert plan.render([], NOW) == "no SSH lease"


class Statuses:
    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)

    def status(self, _firewall_id: str) -> str:
        return self.answers.pop(0)


def test_open_waits_until_digitalocean_has_applied_the_lease() -> None:
    """Rule: the lease is ready when DigitalOcean says `succeeded`; `failed`, or still waiting at the bound, is an
    error. Risk: the deploy's first SSH dropped by a firewall not yet applied."""
    slept: list[float] = []
    lease.wait_active(Statuses("waiting", "waiting", "succeeded"), "f", sleep=slept.append)  # type: ignore[arg-type]
    assert slept == [2, 2]
    with pytest.raises(LeaseError, match=r"the lease firewall f is failed after 2s"):
        lease.wait_active(Statuses("waiting", "failed"), "f", sleep=slept.append)  # type: ignore[arg-type]
    with pytest.raises(LeaseError, match=r"the lease firewall f is waiting after 4s"):
        lease.wait_active(Statuses(*["waiting"] * 5), "f", timeout=4, sleep=slept.append)  # type: ignore[arg-type]
