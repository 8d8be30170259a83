"""The release id rule at config time: the id a stack builds or pins is one every host accepts
(agent.release.release_id_problem), checked before any image is pushed — for devtools:releaseId, for the id taken
from the commit (DEVTOOLS_COMMIT, GITHUB_SHA or the checkout) and for a pinned devtools:release."""

from __future__ import annotations

import json

import pytest

from agent.release import RELEASE_ID_RULE, check_release
from components.config import ConfigError, StackConfig, load_config
from tests.unit.components.program_harness import run_program
from tests.unit.components.program_stacks import source_env
from tests.unit.components.stack_configs import (
    BLUE,
    PROD,
    PROD_SECRETS,
    ROOT,
    stack_file_config,
    with_overrides,
)

BAD_IDS = ["_x", "a" * 65, "a..b", "r1\n", "../x"]
RELEASE_ID_ALLOWED = f"a release id the hosts accept ({RELEASE_ID_RULE}), or empty for the commit's short sha"
RELEASE_ALLOWED = f"`build`, `prod` or a release id the hosts accept ({RELEASE_ID_RULE})"
CANDIDATES = [
    "r1", "1a2b3c4", "2026.11.27-1", "A", "9", "Z9", "a" * 64, "a" * 65, "_x", ".x", "-x", "x_", "x.", "x-",
    "a_b-c.d", "a.b", "a..b", "a..", "..", ".", "r1\n", "\nr1", "r1\r", "r\t1", "../x", "a/b", "v1 final", "é",
    "1a2b3c4-dirty-0123abcd", "abc/../", "x" * 63 + ".", "release:1", "r1@sha256",
]
PIN = {"cicd": "registry.example/devtools/cicd@sha256:" + "a" * 64}


def _load(raw: dict[str, object], commit: str | None = "1a2b3c4", stack: str = "prod",
          commit_source: str = "the git commit") -> StackConfig:
    return load_config(raw, PROD_SECRETS, stack=stack, project="devtools", commit=commit, root=ROOT,
                       commit_source=commit_source)


def _problems(raw: dict[str, object], commit: str | None = "1a2b3c4", commit_source: str = "the git commit"
              ) -> list[str]:
    with pytest.raises(ConfigError) as err:
        _load(raw, commit=commit, commit_source=commit_source)
    return err.value.problems


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_a_release_id_the_hosts_refuse_is_refused_naming_the_key(bad):
    """Images are pushed under the release id before any host sees it; an id every host then refuses is a
    failed update with a half-written registry. The message names the key and what to set instead."""
    assert _problems(with_overrides(PROD, {"releaseId": bad})) == [
        f"devtools:releaseId: {json.dumps(bad)} is not allowed: {RELEASE_ID_ALLOWED}"]


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_a_pinned_release_the_hosts_refuse_is_refused_naming_the_key(bad):
    """A pinned id no host accepts can never have been released: refuse it in config rather than after a lookup
    in the release history (or, worse, on the hosts)."""
    assert _problems(with_overrides(PROD, {"release": bad})) == [
        f"devtools:release: {json.dumps(bad)} is not allowed: {RELEASE_ALLOWED}"]


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_a_commit_derived_id_the_hosts_refuse_is_refused_naming_its_source(bad):
    """With devtools:releaseId empty the id is the commit the caller named; the problem names where it came
    from (it is no stack key) and both fixes."""
    assert _problems(dict(PROD), commit=bad, commit_source="DEVTOOLS_COMMIT") == [
        f"DEVTOOLS_COMMIT: the release id {json.dumps(bad)} taken from it while devtools:releaseId is empty is "
        f"refused by the hosts ({RELEASE_ID_RULE}): set devtools:releaseId, or correct DEVTOOLS_COMMIT"]


def test_a_set_release_id_overrides_a_bad_commit():
    """The fix the message offers works: with devtools:releaseId set, the commit is not the id and not checked."""
    cfg = _load(with_overrides(PROD, {"releaseId": "r7"}), commit="../x", commit_source="DEVTOOLS_COMMIT")
    assert cfg.release.release_id == "r7"


def test_a_stack_that_does_not_build_does_not_check_the_commit():
    """A follower (blue) never tags anything with the commit's id: refusing its commit would block a standby
    over a value it does not use."""
    cfg = _load(dict(BLUE), commit="../x", stack="blue")
    assert (cfg.builds, cfg.release.source) == (False, "prod")


def test_a_bad_commit_in_the_environment_stops_the_program_before_any_resource():
    """End to end through __main__.py: DEVTOOLS_COMMIT=abc/../../x gives the id "abc/../" (its first 7
    characters); the run fails naming DEVTOOLS_COMMIT and registers nothing (no image is built or pushed)."""
    with source_env(commit="abc/../../x"), pytest.raises(Exception, match="DEVTOOLS_COMMIT") as err:
        run_program("prod", stack_file_config("prod"), PROD_SECRETS)
    assert type(err.value).__name__ == "RunError"
    assert 'DEVTOOLS_COMMIT: the release id "abc/../" taken from it' in str(err.value)
    assert err.value.registrations == []  # type: ignore[attr-defined]


def _config_accepts(candidate: str, path: str) -> bool:
    raw = dict(PROD)
    commit = "1a2b3c4"
    if path == "commit":
        commit = candidate
    else:
        raw = with_overrides(raw, {path: candidate})
    try:
        _load(raw, commit=commit)
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("path", ["releaseId", "release", "commit"])
def test_config_accepts_exactly_the_ids_the_hosts_accept(path):
    """The program's rule and the hosts' rule are one rule: for every candidate, config accepts the id (set as
    releaseId, pinned as release, or taken from the commit) exactly when agent.release.check_release does. Two
    rules that drift would refuse a good id or ship one every host refuses."""
    host = {c: check_release(c, PIN, {}) == [] for c in CANDIDATES}
    config = {c: _config_accepts(c, path) for c in CANDIDATES}
    assert config == host
    assert sum(host.values()) >= 10 and sum(not v for v in host.values()) >= 10  # both sides are exercised
