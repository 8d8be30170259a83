"""agent.signing and the rollout's verification step on the scripted host: every image verified before anything
changes, the key only in cosign's environment, a refusal (exit 2) that names each service and its reason, rotation
(any accepted key verifies), and a policy that only reports. cosign itself answers in test_signing_live.py."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from agent import signing
from agent.rollout import EXIT_INPUT, Options, Outcome, SignaturesRefused
from tests.unit.agent.rollout_fake import DIGEST, bundle, exited, rig, serving, state

KEY_A = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEaaaa\n-----END PUBLIC KEY-----\n"
KEY_B = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEbbbb\n-----END PUBLIC KEY-----\n"


def ref(service: str, release: str) -> str:
    return f"registry.example/{service}-{release}@{DIGEST}"


def test_the_verify_command_names_the_key_by_environment_and_asks_no_transparency_log() -> None:
    assert signing.verify_command("r.example/api@sha256:" + "b" * 64, "/opt/cosign") == [
        "/opt/cosign", "verify", "--key", "env://DEVTOOLS_COSIGN_KEY", "--insecure-ignore-tlog=true",
        "--new-bundle-format=false", "r.example/api@sha256:" + "b" * 64]


def test_the_manifest_section_round_trips_into_a_policy() -> None:
    section = signing.manifest_section([KEY_A.strip(), KEY_B], require=True)
    assert section == {"require": True, "public_keys": [KEY_A, KEY_B]}
    assert signing.policy_problems(section) == []
    assert signing.policy_from_manifest({"signing": section}) == signing.Policy(True, (KEY_A, KEY_B))
    assert signing.policy_from_manifest({"id": "r1"}) is None


@pytest.mark.parametrize(("section", "problems"), [
    ("yes", ["signing: expected an object {require, public_keys}"]),
    ({"require": "on", "public_keys": [KEY_A]}, ["signing.require: expected true or false"]),
    ({"require": True, "public_keys": KEY_A}, ["signing.public_keys: expected a list of PEM public keys"]),
    ({"require": True, "public_keys": []},
     ["signing.public_keys: signatures are required but no public key is given"]),
    ({"require": False, "public_keys": [KEY_A, "ssh-ed25519 AAAA"]},
     ["signing.public_keys[2]: not a PEM public key (-----BEGIN PUBLIC KEY----- … -----END PUBLIC KEY-----)"]),
])
def test_a_malformed_signing_section_is_named(section: object, problems: list[str]) -> None:
    assert signing.policy_problems(section) == problems


@pytest.mark.parametrize(("code", "stderr", "reason"), [
    (10, "Error: no signatures found\n", "unsigned: the registry holds no signature for this digest"),
    (12, "Error: no matching signatures: invalid signature when validating ASN.1 encoded signature\n",
     "signed by another key, or the signature is not of this digest"),
    (1, "Error: GET http://127.0.0.1:1/v2/: dial tcp 127.0.0.1:1: connect: connection refused\nmain.go:74: error\n",
     "cannot verify (cosign exit 1): main.go:74: error"),
    (1, "", "cannot verify (cosign exit 1): no output"),
])
def test_cosign_failures_read_as_reasons(code: int, stderr: str, reason: str) -> None:
    assert signing.classify(subprocess.CompletedProcess([], code, "", stderr)) == reason


def required(*keys: str) -> dict[str, object]:
    return signing.manifest_section(keys, require=True)


def test_a_signed_release_is_verified_image_by_image_before_anything_changes(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.rollout().apply(bundle(tmp_path, "r1", signing=required(KEY_A)))
    verified = [c for c in r.host.calls if c[0] == "cosign"]
    assert sorted(verified) == [("cosign", ref("api", "r1")), ("cosign", ref("web", "r1"))]
    assert r.host.calls.index(verified[-1]) < r.host.calls.index(("config", "r1"))  # before the release is written
    for argv, env in zip(r.host.argvs, r.host.envs, strict=True):
        assert KEY_A.strip() not in " ".join(argv)  # the key only in the environment
        if argv[0].endswith("cosign"):
            assert env is not None and env[signing.KEY_ENV] == KEY_A
    assert any(line.startswith("signatures of r1: 2 images verified") for line in r.logged), r.logged
    assert state(r)[0] == "r1"


def test_an_unsigned_image_is_refused_naming_the_service_and_the_previous_release_stays(tmp_path: Path) -> None:
    r = serving(tmp_path, "r1")
    r.host.on("cosign", ref("web", "r2"), exited(10, stderr="Error: no signatures found\n"))
    with pytest.raises(SignaturesRefused) as caught:
        r.rollout().apply(bundle(tmp_path, "r2", signing=required(KEY_A)))
    assert caught.value.code == EXIT_INPUT and caught.value.stage == "verify"
    assert caught.value.message == (
        f"release r2 refused, nothing changed: 1 of 2 images failed signature verification: web ({ref('web', 'r2')})"
        ": unsigned: the registry holds no signature for this digest")
    assert {c[0] for c in r.host.calls} == {"cosign"}  # no pull, no compose, nothing written
    assert state(r) == ("r1", None, "r1", None)
    assert not r.store.release_dir("r2").exists()


def test_during_a_rotation_either_key_verifies_and_a_removed_key_refuses(tmp_path: Path) -> None:
    r = rig(tmp_path)
    no_match = exited(12, stderr="Error: no matching signatures\n")
    r.host.on("cosign", ref("api", "r1"), no_match)  # api signed by the new key (tried second)
    r.rollout().apply(bundle(tmp_path, "r1", signing=required(KEY_A, KEY_B)))
    api_envs = [env for (step, image), env in zip(r.host.calls, r.host.envs, strict=True)
                if step == "cosign" and image == ref("api", "r1")]
    assert [e[signing.KEY_ENV] for e in api_envs if e] == [KEY_A, KEY_B]
    assert state(r)[0] == "r1"

    r.forget()
    r.host.on("cosign", ref("api", "r2"), no_match)  # the same signer, its key no longer accepted
    with pytest.raises(SignaturesRefused) as caught:
        r.rollout().apply(bundle(tmp_path, "r2", signing=required(KEY_A)))
    assert "api (" in caught.value.message and "signed by another key" in caught.value.message
    assert "web (" not in caught.value.message
    assert state(r)[0] == "r1"


def test_a_policy_that_does_not_require_signatures_reports_and_goes_on(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.host.on("cosign", ref("api", "r1"), exited(10, stderr="Error: no signatures found\n"))
    r.rollout().apply(bundle(tmp_path, "r1", signing=signing.manifest_section([KEY_A], require=False)))
    assert state(r)[0] == "r1"
    assert any(line.startswith("signatures not required, going on: release r1 refused") for line in r.logged)


def test_a_verifier_that_cannot_run_refuses_with_its_path(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.host.always["cosign"] = FileNotFoundError(2, "No such file or directory")
    with pytest.raises(SignaturesRefused) as caught:
        r.rollout(Options(cosign="/nowhere/cosign")).apply(bundle(tmp_path, "r1", signing=required(KEY_A)))
    assert "api (" in caught.value.message and "cannot verify: cannot run /nowhere/cosign: No such file or " \
        "directory" in caught.value.message
    assert state(r)[0] is None


def test_a_malformed_section_is_refused_before_any_verification(tmp_path: Path) -> None:
    r = rig(tmp_path)
    with pytest.raises(Outcome) as caught:
        r.rollout().apply(bundle(tmp_path, "r1", signing={"require": True, "public_keys": []}))
    assert caught.value.code == EXIT_INPUT and caught.value.stage == "prepare"
    assert caught.value.message == "release refused, nothing changed: signing.public_keys: signatures are required " \
        "but no public key is given"
    assert r.host.calls == []


def test_a_release_without_a_signing_section_runs_no_verifier(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.apply("r1")
    assert "cosign" not in {c[0] for c in r.host.calls} and state(r)[0] == "r1"


def test_status_checks_each_running_digest_against_the_current_release_keys() -> None:
    from agent.status import signatures

    services: dict[str, dict[str, Any]] = {"api": {"image": ref("api", "r1"), "digest": DIGEST},
                                           "web": {"image": ref("web", "r1"), "digest": DIGEST},
                                           "edge": {"image": "caddy:2", "digest": None}}
    calls: list[list[str]] = []

    def runner(argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        calls.append(argv)
        code = 0 if "api" in argv[-1] else 10
        return subprocess.CompletedProcess(argv, code, "", "" if code == 0 else "Error: no signatures found\n")

    signatures(services, {"signing": required(KEY_A)}, runner, "/c/cosign")
    assert services["api"]["signature"] == {"verified": True, "detail": "signed"}
    assert services["web"]["signature"] == {"verified": False,
                                            "detail": "unsigned: the registry holds no signature for this digest"}
    assert "signature" not in services["edge"] and len(calls) == 2  # a tag is no digest to check

    untouched: dict[str, dict[str, Any]] = {"api": {"image": ref("api", "r1"), "digest": DIGEST}}
    signatures(untouched, {"id": "r1"}, runner, "/c/cosign")  # no signing section: nothing checked
    assert untouched == {"api": {"image": ref("api", "r1"), "digest": DIGEST}} and len(calls) == 2


def test_a_refusal_is_counted_as_a_failure_at_verify(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.host.always["cosign"] = exited(10, stderr="Error: no signatures found\n")
    with pytest.raises(SignaturesRefused):
        r.rollout().apply(bundle(tmp_path, "r1", signing=required(KEY_A)))
    text = (r.store.root / "metrics" / "green.prom").read_text()
    assert 'devtools_rollout_failures_total{project="green",stage="verify"} 1\n' in text, text
