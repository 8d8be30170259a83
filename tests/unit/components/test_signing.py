"""components.signing and its command: one `cosign sign` per image, keyed on the digest pin, the key, its password
and the push credentials in the environment only (exact strings, under Pulumi mocks, and in a real shell)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pulumi
import pytest

from agent.signing import manifest_section
from components import commands
from components.signing import ImageSignatures, ImageSignaturesArgs
from tests.cosign_test_keys import PAIR_B
from tests.unit.components.program_harness import World, run_components, secret_leaks

LOCAL_COMMAND = "command:local:Command"
DOCR = "registry.digitalocean.com"
PINS = {"cicd": f"{DOCR}/devtools/cicd@sha256:{'a' * 64}",
        "gateway-mcp": f"{DOCR}/devtools/gateway-mcp@sha256:{'b' * 64}"}
PUSH_USER, PUSH_PASSWORD = "do-write-token-user", "do-write-token-password-for-tests"
FLAGS = "--tlog-upload=false --use-signing-config=false --new-bundle-format=false --yes"


def test_the_sign_command_for_a_registry_on_loopback_is_cosign_alone():
    ref = f"127.0.0.1:5000/devtools/cicd@sha256:{'c' * 64}"
    assert commands.sign_command(ref, registry_auth=False) == (
        f"cosign sign --key env://COSIGN_PRIVATE_KEY {FLAGS} {ref}")
    assert commands.sign_argv(ref) == ["cosign", "sign", "--key", "env://COSIGN_PRIVATE_KEY", *FLAGS.split(), ref]


def test_the_sign_command_with_push_credentials_writes_them_from_the_environment():
    """The credentials travel in DEVTOOLS_REGISTRY_AUTH into a private DOCKER_CONFIG removed when the shell exits;
    the command line names no secret."""
    ref = PINS["cicd"]
    assert commands.sign_command(ref, registry_auth=True) == (
        "set -eu; umask 077; DOCKER_CONFIG=\"$(mktemp -d)\"; export DOCKER_CONFIG; "
        "trap 'rm -rf \"$DOCKER_CONFIG\"' EXIT; trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM; "
        "printf '%s' \"$DEVTOOLS_REGISTRY_AUTH\" > \"$DOCKER_CONFIG/config.json\"; unset DEVTOOLS_REGISTRY_AUTH; "
        f"cosign sign --key env://COSIGN_PRIVATE_KEY {FLAGS} {ref}")


@pytest.mark.parametrize("ref", ["registry.digitalocean.com/devtools/cicd:1a2b3c4", "cicd@sha256:abc",
                                 f"registry.digitalocean.com/devtools/cicd@sha256:{'a' * 64}; rm -rf /"])
def test_only_a_digest_pin_is_signed(ref):
    with pytest.raises(ValueError, match=r"refusing to sign .*: not digest-pinned \(expected repo@sha256:<64 hex>\)"):
        commands.sign_command(ref, registry_auth=False)


def test_the_docker_config_holds_one_login():
    text = commands.docker_config_json(DOCR, PUSH_USER, PUSH_PASSWORD)
    auth = base64.b64encode(f"{PUSH_USER}:{PUSH_PASSWORD}".encode()).decode()
    assert text == json.dumps({"auths": {DOCR: {"auth": auth}}})


def test_the_manifest_carries_the_signing_section_only_when_given():
    """An unsigned stack's release keeps its bytes; a signed one tells the hosts what to verify."""
    images = {"cicd": PINS["cicd"]}
    plain = commands.manifest("r1", images, {}, "c0ffee")
    assert "signing" not in plain
    section = manifest_section([PAIR_B.public_pem], True)
    signed = commands.manifest("r1", images, {}, "c0ffee", section)
    assert signed == {**plain, "signing": {"require": True, "public_keys": [PAIR_B.public_pem]}}
    assert commands.content_hash(signed) != commands.content_hash(plain)


def run_signatures(pins: dict[str, str], *, login: bool = True) -> World:
    def program() -> None:
        signatures = ImageSignatures("signatures", ImageSignaturesArgs(
            pins=pins, private_key=PAIR_B.private_pem, password=PAIR_B.password, registry_server=DOCR,
            push_username=PUSH_USER if login else None, push_password=PUSH_PASSWORD if login else None))
        pulumi.export("signed", signatures.signed)
        pulumi.export("commands", [c.urn for c in signatures.commands])

    return run_components(program)


def _by_service(world: World) -> dict[str, Any]:
    return {r.name.removeprefix("signatures-"): r for r in world.of_type(LOCAL_COMMAND)}


def test_one_signature_per_image_keyed_on_its_digest_pin():
    world = run_signatures(PINS)
    component = world.one("devtools:index:ImageSignatures")
    signed = _by_service(world)
    assert sorted(signed) == sorted(PINS)
    for service, cmd in signed.items():
        assert cmd.parent == component.urn
        assert cmd.inputs["triggers"] == [PINS[service]]  # a new digest replaces it: the new digest is signed
        assert cmd.inputs["create"] == commands.sign_command(PINS[service], registry_auth=True)
        assert "delete" not in cmd.inputs and "update" not in cmd.inputs  # the old digest keeps its signature
        assert cmd.inputs["addPreviousOutputInEnv"] is False
        assert cmd.secret_input("environment")
        assert cmd.inputs["environment"] == {
            "COSIGN_PRIVATE_KEY": PAIR_B.private_pem, "COSIGN_PASSWORD": PAIR_B.password,
            "DEVTOOLS_REGISTRY_AUTH": commands.docker_config_json(DOCR, PUSH_USER, PUSH_PASSWORD)}
        assert cmd.additional_secret_outputs == ["environment"]
    assert world.exports_plain["signed"] == PINS


def test_a_registry_on_loopback_gets_no_credentials():
    pins = {"cicd": f"127.0.0.1:5000/devtools/cicd@sha256:{'c' * 64}"}
    cmd = _by_service(run_signatures(pins, login=False))["cicd"]
    assert cmd.inputs["create"] == commands.sign_command(pins["cicd"], registry_auth=False)
    assert sorted(cmd.inputs["environment"]) == ["COSIGN_PASSWORD", "COSIGN_PRIVATE_KEY"]


def test_the_key_the_password_and_the_credentials_are_never_plain_text():
    world = run_signatures(PINS)
    auth = base64.b64encode(f"{PUSH_USER}:{PUSH_PASSWORD}".encode()).decode()
    secrets = [PAIR_B.private_pem.strip(), *PAIR_B.private_pem.splitlines()[1:-1], PAIR_B.password, PUSH_PASSWORD,
               auth]
    assert secret_leaks(world, secrets) == []
    for cmd in world.of_type(LOCAL_COMMAND):
        assert not any(s in cmd.inputs["create"] for s in secrets)


def test_an_unchanged_digest_is_not_signed_again_and_a_new_one_is():
    """The engine re-runs a command only when its inputs change: the same pins give byte-identical inputs (secret
    markers included), a new digest changes exactly its own service's command, by its trigger (a replacement)."""
    first, again = run_signatures(PINS), run_signatures(PINS)
    assert {r.name: r.raw for r in first.of_type(LOCAL_COMMAND)} == {
        r.name: r.raw for r in again.of_type(LOCAL_COMMAND)}
    moved = {**PINS, "cicd": PINS["cicd"].replace("a" * 64, "d" * 64)}
    changed = _by_service(run_signatures(moved))
    before = _by_service(first)
    assert changed["gateway-mcp"].raw == before["gateway-mcp"].raw
    assert changed["cicd"].inputs["triggers"] == [moved["cicd"]] != before["cicd"].inputs["triggers"]


def test_push_credentials_come_in_pairs():
    def program() -> None:
        ImageSignatures("signatures", ImageSignaturesArgs(pins=PINS, private_key="k", password="",
                                                          registry_server=DOCR, push_username="u"))

    with pytest.raises(ValueError, match="push_username and push_password are given together"):
        run_components(program)


FAKE_COSIGN = """#!/bin/sh
{{ printf 'argv:%s\\n' "$*"
  printf 'key:%s\\n' "$(printf '%s' "$COSIGN_PRIVATE_KEY" | head -n 1)"
  printf 'password:%s\\n' "$COSIGN_PASSWORD"
  printf 'auth env:%s\\n' "${{DEVTOOLS_REGISTRY_AUTH-unset}}"
  printf 'docker config:%s\\n' "$DOCKER_CONFIG"
  printf 'config mode:%s\\n' "$(stat -c %a "$DOCKER_CONFIG/config.json" 2>/dev/null)"
  printf 'config:%s\\n' "$(cat "$DOCKER_CONFIG/config.json" 2>/dev/null)"; }} > {record}
exit {code}
"""


@pytest.mark.live
@pytest.mark.parametrize("code", [0, 1], ids=["signed", "cosign fails"])
def test_the_sign_command_in_a_real_shell(tmp_path: Path, code: int):
    """As the command provider runs it (/bin/sh -c, the environment given): cosign gets the key and the password
    from its environment, the credentials as a 0600 docker config it can read and not as a variable, and the
    temporary directory is gone afterwards, whether cosign succeeded or not."""
    bin_dir, tmp, record = tmp_path / "bin", tmp_path / "tmp", tmp_path / "record"
    bin_dir.mkdir()
    tmp.mkdir()
    (bin_dir / "cosign").write_text(FAKE_COSIGN.format(record=record, code=code))
    (bin_dir / "cosign").chmod(0o755)
    auth = commands.docker_config_json(DOCR, PUSH_USER, PUSH_PASSWORD)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "TMPDIR": str(tmp), "COSIGN_PRIVATE_KEY": PAIR_B.private_pem,
           "COSIGN_PASSWORD": PAIR_B.password, "DEVTOOLS_REGISTRY_AUTH": auth}
    proc = subprocess.run(["/bin/sh", "-c", commands.sign_command(PINS["cicd"], registry_auth=True)], env=env,
                          capture_output=True, text=True, timeout=20, check=False)
    assert proc.returncode == code, proc.stderr
    lines = dict(line.split(":", 1) for line in record.read_text().splitlines())
    assert lines["argv"] == f"sign --key env://COSIGN_PRIVATE_KEY {FLAGS} {PINS['cicd']}"
    assert lines["key"] == "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"
    assert lines["password"] == PAIR_B.password
    assert lines["auth env"] == "unset"
    assert lines["config mode"] == "600" and lines["config"] == auth
    assert Path(lines["docker config"]).parent == tmp
    assert list(tmp.iterdir()) == []  # removed on exit
    assert os.environ.get("DOCKER_CONFIG") != lines["docker config"]
