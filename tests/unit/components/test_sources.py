"""Release selection, release history and the flip gate: pure rules over other stacks' outputs."""

from __future__ import annotations

import pytest

from components.sources import (
    ReleaseError,
    flip_refusal,
    followed_release,
    merge_history,
    pinned_release,
    release_record,
)

SERVICES = ("gateway-mcp", "orchestrator")
IMAGES = {s: f"registry.digitalocean.com/devtools/{s}@sha256:{'a' * 64}" for s in SERVICES}


def test_release_record_is_sorted_and_complete():
    rec = release_record("abc1234", {"orchestrator": "o@x", "gateway-mcp": "g@x"}, "c0ffee", "abc1234ffff")
    assert rec == {"id": "abc1234", "images": {"gateway-mcp": "g@x", "orchestrator": "o@x"}, "content": "c0ffee",
                   "commit": "abc1234ffff"}
    assert list(rec["images"]) == ["gateway-mcp", "orchestrator"]


def test_followed_release_reads_prods_current_release():
    """The commit comes along: a standby's release.json names the commit its release was built from."""
    assert followed_release("prod", {"id": "abc1234", "images": IMAGES, "commit": "c0ffee"}, SERVICES) == (
        "abc1234", IMAGES, "c0ffee")
    assert followed_release("prod", {"id": "abc1234", "images": IMAGES}, SERVICES) == ("abc1234", IMAGES, None)


def test_followed_release_without_prod_outputs_says_what_to_do():
    """Blue before prod ever deployed must fail with the command that fixes it, not a KeyError."""
    with pytest.raises(ReleaseError, match=r"stack prod exports no release yet: run `pulumi up --stack prod` first"):
        followed_release("prod", None, SERVICES)


def test_followed_release_refuses_tags_and_missing_services():
    """Hosts only ever run digest-pinned images: a tag from another stack must not sneak in."""
    with pytest.raises(ReleaseError, match=r"not pinned by digest: gateway-mcp=registry/x:latest"):
        followed_release("prod", {"id": "r1", "images": {**IMAGES, "gateway-mcp": "registry/x:latest"}}, SERVICES)
    with pytest.raises(ReleaseError, match=r"release 'r1' has no image for orchestrator"):
        followed_release("prod", {"id": "r1", "images": {"gateway-mcp": IMAGES["gateway-mcp"]}}, SERVICES)


def test_pinned_release_found_in_own_history_first():
    histories = {"blue": {"r1": {"images": IMAGES, "commit": "b1"}},
                 "prod": {"r1": {"images": {}}, "r2": {"images": IMAGES, "commit": "p2"}}}
    assert pinned_release("r1", histories, SERVICES) == ("r1", IMAGES, "b1")
    assert pinned_release("r2", histories, SERVICES) == ("r2", IMAGES, "p2")


def test_pinned_release_unknown_lists_the_known_ids():
    with pytest.raises(ReleaseError) as err:
        pinned_release("r9", {"prod": {"r1": {"images": IMAGES}, "r2": {"images": IMAGES}}}, SERVICES)
    assert str(err.value) == ("devtools:release 'r9' is not in the release history of prod (known: r1, r2); "
                              "pick one of those")


def test_history_keeps_the_last_n_with_the_current_last():
    prev = {f"r{i}": {"id": f"r{i}"} for i in range(1, 6)}
    merged = merge_history(prev, {"id": "r3", "images": {}}, keep=3)
    assert list(merged) == ["r4", "r5", "r3"]
    assert merge_history(None, {"id": "r1"}, keep=5) == {"r1": {"id": "r1"}}


VALID = {"release": "r2", "content": "c2", "passed": True}
RELEASE = {"id": "r2", "content": "c2"}


def test_flip_allowed_when_validation_matches_the_running_release():
    assert flip_refusal("blue", "blue", RELEASE, VALID) is None


@pytest.mark.parametrize(("release", "validation", "expected"), [
    (None, VALID, "refusing to send traffic to blue: stack blue exports no release; deploy it first "
                  "(`pulumi up --stack blue`)"),
    (RELEASE, None, "refusing to send traffic to blue: release r2 on stack blue has no validation result"),
    (RELEASE, {**VALID, "release": "r1", "content": "c1"},
     "refusing to send traffic to blue: the last validation on stack blue was for release 'r1', but it now runs "
     "'r2'; run `pulumi up --stack blue` to validate it"),
    (RELEASE, {**VALID, "content": "c-other"},
     "refusing to send traffic to blue: the last validation on stack blue was for release 'r2', but it now runs "
     "'r2'; run `pulumi up --stack blue` to validate it"),
    (RELEASE, {**VALID, "passed": False, "failed": ["mcp/gateway-mcp"]},
     "refusing to send traffic to blue: release r2 on stack blue failed validation (mcp/gateway-mcp)"),
], ids=["no release", "never validated", "validated an older release", "same id other content", "failed"])
def test_flip_refused(release, validation, expected):
    """Traffic must never move to a color whose current release was not validated: that is an outage."""
    assert flip_refusal("blue", "blue", release, validation) == expected


def test_stack_reference_names():
    """prodStack/standbyStack may be written short; the reference must still name the right stack."""
    from components.program import stack_ref_name

    assert stack_ref_name("prod", "acme", "devtools") == "acme/devtools/prod"
    assert stack_ref_name("other/blue", "acme", "devtools") == "acme/other/blue"
    assert stack_ref_name("corp/devtools/blue", "acme", "devtools") == "corp/devtools/blue"
