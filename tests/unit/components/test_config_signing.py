"""Signed images in the stack config: requireSignedImages, signingPublicKeys (PEM files, read and checked when the
config is read), signingKey / signingKeyPath and signingPassword. Every problem names the key, the file and the
fix, never a key's text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.signing import Policy, manifest_section
from components.config import ConfigError, load_config
from components.signing_keys import private_key_problem, public_key_problem
from tests.cosign_test_keys import PAIR_A, PAIR_B, PAIRS, decrypt, public_pem_of
from tests.unit.components.stack_configs import (
    LOCAL,
    LOCAL_SECRETS,
    PROD_SECRETS,
    ROOT,
    SSH_PRIVATE_KEY,
    committed_stack_config,
    make_blue_config,
    make_config,
    make_local_config,
    stack_file_config,
)

K = "devtools:signingPublicKeys"


def _problems(stack: str = "prod", **overrides: object) -> list[str]:
    make = {"prod": make_config, "blue": make_blue_config, "local": make_local_config}[stack]
    with pytest.raises(ConfigError) as err:
        make(**overrides)
    return [p for p in err.value.problems if "signing" in p or "SignedImages" in p]


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p.name)
def test_each_committed_test_pair_belongs_together(pair):
    """The test pairs are what `cosign generate-key-pair` writes: the private half opens with its password (scrypt,
    nacl/secretbox) to a key whose public half is the .pub beside it, and the program's checks accept both."""
    assert public_pem_of(decrypt(pair.private_pem, pair.password)) == pair.public_pem
    assert pair.private_pem.startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    assert private_key_problem(pair.private_pem) is None and public_key_problem(pair.public_pem) is None


def test_prod_signs_with_its_key_and_ships_the_public_key():
    cfg = make_config()
    assert (cfg.signing.require, cfg.signing.public_keys, cfg.signing.public_key_files) == (
        True, (PAIR_B.public_pem,), ("tests/signing/cosign-b.pub",))
    assert (cfg.signing.private_key.value, cfg.signing.password.value) == (PAIR_B.private_pem, PAIR_B.password)
    assert cfg.signs
    assert cfg.signing.policy == Policy(True, (PAIR_B.public_pem,))
    assert cfg.signing.policy.manifest_section() == manifest_section([PAIR_B.public_pem], True)
    assert "PRIVATE" not in repr(cfg) and PAIR_B.password not in repr(cfg)


def test_a_stack_that_does_not_build_needs_only_the_public_keys():
    blue = make_blue_config()
    assert not blue.signs and blue.signing.private_key.value == ""
    assert blue.signing.policy == Policy(True, (PAIR_B.public_pem,))
    pinned = make_config(release="r1", signingKey=None, signingPassword=None)  # a rollback pin builds nothing
    assert not pinned.signs and pinned.signing.policy is not None


def test_the_local_stack_reads_its_key_pair_from_files():
    cfg = make_local_config()
    assert cfg.signing.private_key.value == PAIR_A.private_pem and cfg.signing.password.value == ""
    assert cfg.signing.private_key_path == str(PAIR_A.key_path)
    assert cfg.signing.public_keys == (PAIR_A.public_pem,) and cfg.signs


def test_a_rotation_lists_two_public_keys_in_order():
    cfg = make_config(signingPublicKeys=json.dumps(["tests/signing/cosign-a.pub", "tests/signing/cosign-b.pub"]))
    assert cfg.signing.policy == Policy(True, (PAIR_A.public_pem, PAIR_B.public_pem))


def test_signatures_not_required_and_no_keys_is_an_unsigned_stack():
    """Turned off, with no key at all: nothing is signed and releases carry no `signing` section."""
    cfg = make_config(requireSignedImages="false", signingPublicKeys=None, signingKey=None, signingPassword=None)
    assert (cfg.signs, cfg.signing.policy) == (False, None)
    relaxed = make_config(requireSignedImages="false")  # keys kept: signed and verified, a failure only logged
    assert relaxed.signs and relaxed.signing.policy == Policy(False, (PAIR_B.public_pem,))


def test_required_signatures_need_a_public_key():
    assert _problems(signingPublicKeys="[]") == [
        "devtools:signingPublicKeys: empty while devtools:requireSignedImages is true: list the public key file(s) "
        "the hosts accept, such as signing/prod.pub (signing/README.md), or set devtools:requireSignedImages false"]
    assert _problems("blue", signingPublicKeys=None) != []  # every stack verifies, including those that never build


def test_a_stack_that_builds_needs_the_private_key():
    expected = [
        "devtools:signingKey: not set while devtools:requireSignedImages is true and stack prod builds images, "
        "which are signed after their push: set the private half of a key in devtools:signingPublicKeys with "
        "`pulumi config set --secret devtools:signingKey < cosign.key` (or devtools:signingKeyPath, a key file), or "
        "set devtools:requireSignedImages false"]
    assert _problems(signingKey=None) == expected
    assert _problems(signingKey=None, release="r1", buildAlways="true") == expected  # a build for the idle color


def test_the_key_and_its_file_are_one_or_the_other():
    with pytest.raises(ConfigError) as err:
        make_config("local", LOCAL, LOCAL_SECRETS | {"devtools:signingKey"}, signingKey=PAIR_A.private_pem)
    assert err.value.problems == [
        "devtools:signingKeyPath: set together with devtools:signingKey: keep one"]


def test_a_missing_public_key_file_says_how_to_make_the_pair():
    assert _problems(signingPublicKeys='["signing/other.pub"]') == [
        f"devtools:signingPublicKeys: signing/other.pub: no such file ({ROOT / 'signing/other.pub'}): make the key "
        "pair with `cosign generate-key-pair`, commit its public half as signing/other.pub and set the private half "
        "on the stack that builds (`pulumi config set --secret devtools:signingKey < cosign.key`): "
        "signing/README.md. The local stacks' pair is made by `scripts/local-env.sh up`"]


@pytest.mark.parametrize("stack", ["prod", "blue"])
def test_the_committed_stacks_list_prods_public_key(stack):
    """prod and blue list signing/prod.pub, which the operator makes once (signing/README.md): until it is
    committed the program refuses both stacks with the way to make it; once it is, it must be a public key."""
    raw = committed_stack_config(stack)
    assert json.loads(raw[K]) == ["signing/prod.pub"] and raw["devtools:requireSignedImages"] == "true"
    tested = stack_file_config(stack) | {K: raw[K]}
    pub = ROOT / "signing" / "prod.pub"
    if pub.exists():
        cfg = load_config(tested, PROD_SECRETS, stack=stack, project="devtools", commit="abc1234", root=ROOT)
        assert cfg.signing.public_keys == (pub.read_text().strip() + "\n",)
        return
    with pytest.raises(ConfigError) as err:
        load_config(tested, PROD_SECRETS, stack=stack, project="devtools", commit="abc1234", root=ROOT)
    assert err.value.problems == [
        f"devtools:signingPublicKeys: signing/prod.pub: no such file ({pub}): make the key pair with `cosign "
        "generate-key-pair`, commit its public half as signing/prod.pub and set the private half on the stack that "
        "builds (`pulumi config set --secret devtools:signingKey < cosign.key`): signing/README.md. The local "
        "stacks' pair is made by `scripts/local-env.sh up`"]


def test_the_local_stacks_list_the_stand_ins_pair():
    local, blue = committed_stack_config("local"), committed_stack_config("local-blue")
    assert json.loads(local[K]) == json.loads(blue[K]) == ["/var/tmp/devtools-local/signing/cosign.pub"]
    assert local["devtools:signingKeyPath"] == "/var/tmp/devtools-local/signing/cosign.key"
    assert blue["devtools:signingKeyPath"] == ""  # local-blue never builds: Pulumi.yaml's default, no key


def test_a_public_key_file_holding_a_private_key_is_refused_without_its_text(tmp_path: Path):
    wrong = tmp_path / "cosign.pub"
    wrong.write_text(PAIR_B.private_pem)
    problems = _problems(signingPublicKeys=json.dumps([str(wrong)]))
    assert problems == [
        f"devtools:signingPublicKeys: {wrong}: not a PEM public key: it holds a private key (a secret: "
        "devtools:signingKey): list the public half of a cosign key pair (the cosign.pub `cosign generate-key-pair` "
        "writes)"]
    assert PAIR_B.private_pem.splitlines()[1] not in str(problems)


@pytest.mark.parametrize(("text", "reason"), [
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKfzOVcUM9c3bFCZwGA5vDjKtYsxYii94J2icBkmSzRn x\n",
     "expected one -----BEGIN PUBLIC KEY----- block"),
    ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
     "not a public key cosign verifies with (DER: not one SEQUENCE)"),
    ("-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n", "its base64 does not decode"),
    (PAIR_A.public_pem + PAIR_B.public_pem, "expected one -----BEGIN PUBLIC KEY----- block"),
], ids=["ssh key", "not DER", "not base64", "two keys in one file"])
def test_a_public_key_file_that_is_not_one_pem_public_key(tmp_path: Path, text, reason):
    bad = tmp_path / "bad.pub"
    bad.write_text(text)
    assert _problems(signingPublicKeys=json.dumps([str(bad)])) == [
        f"devtools:signingPublicKeys: {bad}: not a PEM public key: {reason}: list the public half of a cosign key "
        "pair (the cosign.pub `cosign generate-key-pair` writes)"]


def test_a_key_listed_twice_is_refused(tmp_path: Path):
    copy = tmp_path / "copy.pub"
    copy.write_text(PAIR_B.public_pem)
    assert _problems(signingPublicKeys=json.dumps(["tests/signing/cosign-b.pub", str(copy)])) == [
        f"devtools:signingPublicKeys: {copy}: the same key as tests/signing/cosign-b.pub: list each key once"]


def test_a_path_the_pattern_refuses():
    assert _problems(signingPublicKeys='["keys/prod key.pub"]') == [
        'devtools:signingPublicKeys: "keys/prod key.pub" is not allowed: each entry must be a file path such as '
        "signing/prod.pub"]


def test_a_signing_key_that_is_not_an_encrypted_cosign_key_is_named_without_its_value():
    problems = _problems(signingKey=SSH_PRIVATE_KEY)
    assert problems == [
        "devtools:signingKey: [secret] is not allowed: an encrypted cosign private key (cosign.key from `cosign "
        "generate-key-pair`): its PEM block is OPENSSH PRIVATE KEY: cosign signs with the encrypted key `cosign "
        "generate-key-pair` writes"]
    assert _problems(signingKey=PAIR_B.public_pem) == [
        "devtools:signingKey: [secret] is not allowed: an encrypted cosign private key (cosign.key from `cosign "
        "generate-key-pair`): it is a public key: the private half (cosign.key) signs"]


def test_a_signing_key_in_plain_text_is_refused():
    with pytest.raises(ConfigError) as err:
        make_config(secrets=PROD_SECRETS - {"devtools:signingKey", "devtools:signingPassword"})
    assert err.value.problems == [
        "devtools:signingKey holds a secret but is stored in plain text: set it with `pulumi config set --secret "
        "devtools:signingKey …` (or `--path --secret` for one entry)",
        "devtools:signingPassword holds a secret but is stored in plain text: set it with `pulumi config set --secret "
        "devtools:signingPassword …` (or `--path --secret` for one entry)"]
    assert PAIR_B.password not in str(err.value)


def test_a_signing_key_file_that_is_missing_or_not_a_private_key(tmp_path: Path):
    missing = tmp_path / "cosign.key"
    assert _problems("local", signingKeyPath=str(missing)) == [
        f"devtools:signingKeyPath: {missing}: no such file ({missing}): the local stand-in's key pair is made by "
        "`scripts/local-env.sh up`; elsewhere set devtools:signingKey instead (`pulumi config set --secret "
        "devtools:signingKey < cosign.key`)"]
    assert _problems("local", signingKeyPath=str(PAIR_A.pub_path)) == [
        f"devtools:signingKeyPath: {PAIR_A.pub_path}: not an encrypted cosign private key: it is a public key: the "
        "private half (cosign.key) signs: name the cosign.key `cosign generate-key-pair` writes"]
