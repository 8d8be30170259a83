"""The release format every side shares: release ids, pins and release.env (the secrets file: test_secretfile.py)."""

import json

import pytest

from agent import release as rel
from components.images import digest_ref
from ops.build import BuildError, pick_digest

DIGEST = "sha256:" + "a" * 64


def test_release_env_is_sorted_and_stable():
    text = rel.render_release_env(
        "abc1234",
        {"state-persistence": "r/s@" + DIGEST, "gateway-mcp": "r/g@" + DIGEST},
        {"HOST_PORT_PREFIX": "81", "COMPOSE_PROFILES": "edge"},
    )
    assert text == (
        "RELEASE_ID=abc1234\n"
        f"GATEWAY_MCP_IMAGE=r/g@{DIGEST}\n"
        f"STATE_PERSISTENCE_IMAGE=r/s@{DIGEST}\n"
        "COMPOSE_PROFILES=edge\n"
        "HOST_PORT_PREFIX=81\n"
    )


def test_good_release_has_no_problems():
    assert rel.check_release("abc1234", {"cicd": "127.0.0.1:5000/devtools/cicd@" + DIGEST}, {"X": "1"}) == []


@pytest.mark.parametrize(
    ("release_id", "images", "extra", "expected"),
    [
        ("bad id", {"a": "r@" + DIGEST}, {}, "release id 'bad id' must be 1-64 letters, digits"),
        ("r1\n", {"a": "r@" + DIGEST}, {}, "release id 'r1\\n' must be"),
        ("a..b", {"a": "r@" + DIGEST}, {}, "release id 'a..b' must be"),
        ("_r1", {"a": "r@" + DIGEST}, {}, "release id '_r1' must be"),
        ("r" * 65, {"a": "r@" + DIGEST}, {}, "must be 1-64"),
        ("r1", {"cicd": "r@" + DIGEST + "\n"}, {}, "is not digest-pinned"),
        ("r1", {}, {}, "release has no images"),
        ("r1", {"cicd": "registry/cicd:latest"}, {}, "images.cicd: 'registry/cicd:latest' is not digest-pinned"),
        ("r1", {"cicd": "r@sha256:abc"}, {}, "is not digest-pinned"),
        ("r1", {"Bad": "r@" + DIGEST}, {}, "service name 'Bad' must match"),
        ("r1", {"a": "r@" + DIGEST}, {"lower": "x"}, "env.lower: not an environment variable name"),
        ("r1", {"a": "r@" + DIGEST}, {"CICD_IMAGE": "x"}, "env.CICD_IMAGE: reserved for the release itself"),
        ("r1", {"a": "r@" + DIGEST}, {"A": "x\ny"}, "env.A: value must be one line"),
    ],
)
def test_bad_release_is_refused_with_the_key(release_id, images, extra, expected):
    """Tags are for humans: a host must only ever run digest-pinned images, so anything else is refused."""
    problems = rel.check_release(release_id, images, extra)
    assert any(expected in p for p in problems), problems


def test_image_env_key():
    assert rel.image_env_key("gateway-mcp") == "GATEWAY_MCP_IMAGE"
    assert rel.image_env_key("cicd") == "CICD_IMAGE"


@pytest.mark.parametrize(("digest", "ok"), [
    ("sha256:" + "0123456789abcdef" * 4, True),
    ("sha256:" + "A" * 64, False),
    ("sha256:" + "a" * 63, False),
    ("sha256:" + "a" * 65, False),
    ("sha512:" + "a" * 64, False),
    ("sha256:" + "a" * 64 + "\n", False),
])
def test_one_digest_grammar_for_build_program_and_hosts(digest: str, ok: bool):
    """ops.build (the pushed digest), the program (components.images) and the hosts (check_release) read a digest
    by agent.release.DIGEST: a digest one side accepts and another refuses would fail a release half-way."""
    assert (rel.DIGEST.fullmatch(digest) is not None) is ok
    assert (rel.check_release("r1", {"cicd": "r/cicd@" + digest}, {}) == []) is ok
    try:
        assert digest_ref("r/cicd", digest) == "r/cicd@" + digest and ok
    except ValueError:
        assert not ok
    try:
        assert pick_digest(json.dumps([f"r/cicd@{digest}"]), "r/cicd") == "r/cicd@" + digest and ok
    except BuildError:
        assert not ok
