"""components.ssh_keys: OpenSSH keys read in pure Python, against keys ssh-keygen wrote (tests/ssh_test_keys.py)."""

from __future__ import annotations

import base64
import struct

import pytest

from components.ssh_keys import (
    DEPLOY_KEY_FIX,
    md5_fingerprint,
    parse_public_key,
    public_half,
    public_key_problem,
    same_key,
)
from tests.ssh_test_keys import (
    DEPLOY_FINGERPRINT,
    DEPLOY_PUBLIC_KEY,
    ECDSA_FINGERPRINT,
    ECDSA_PUBLIC_KEY,
    ENCRYPTED_PRIVATE_KEY,
    HOST_FINGERPRINT,
    HOST_PRIVATE_KEY,
    HOST_PUBLIC_KEY,
    RSA_FINGERPRINT,
    RSA_PUBLIC_KEY,
)

OLD_COMMITTED_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGRldnRvb2xzLWRlcGxveS1rZXktcmVwbGFjZS1tZQ devtools-deploy"
"""What Pulumi.prod.yaml used to commit as its example: `ssh-keygen -l` refuses it (base64 without padding, 22
bytes of text where 32 key bytes belong); DigitalOcean would answer 422."""


def _line(kind: str, *fields: bytes) -> str:
    blob = b"".join(struct.pack(">I", len(f)) + f for f in fields)
    return f"{kind} {base64.b64encode(blob).decode()} x@y"


@pytest.mark.parametrize(("line", "fingerprint"), [(DEPLOY_PUBLIC_KEY, DEPLOY_FINGERPRINT),
                                                   (ECDSA_PUBLIC_KEY, ECDSA_FINGERPRINT),
                                                   (RSA_PUBLIC_KEY, RSA_FINGERPRINT)], ids=["ed25519", "ecdsa", "rsa"])
def test_real_keys_are_accepted_with_ssh_keygens_fingerprint(line: str, fingerprint: str) -> None:
    """What ssh-keygen writes is accepted, and its MD5 fingerprint is the one `ssh-keygen -l -E md5` prints: the
    name DigitalOcean gives the uploaded key, which a standby's droplets refer to."""
    assert public_key_problem(line) is None
    assert md5_fingerprint(line) == fingerprint
    assert parse_public_key(line).comment == line.rsplit(" ", 1)[1]


@pytest.mark.parametrize(("line", "reason"), [
    (OLD_COMMITTED_KEY, "its base64 does not decode"),
    (DEPLOY_PUBLIC_KEY.replace("AAAAIKfz", "AAAAHKfz"), "an ed25519 key is 32 bytes, this one has 28"),
    (DEPLOY_PUBLIC_KEY[:60] + " deploy@ci", "the key's data ends early"),
    (_line("ssh-ed25519", b"ssh-ed25519", b"k" * 20), "an ed25519 key is 32 bytes, this one has 20"),
    (_line("ssh-ed25519", b"ssh-ed25519", b"k" * 32, b"extra"), "its key data has bytes after the key"),
    (_line("ssh-ed25519", b"ssh-rsa", b"k" * 32), "its key data is of type 'ssh-rsa', the line says ssh-ed25519"),
    (_line("ssh-ed25519", b"ssh-ed25519"), "the key's data ends early"),
    (_line("ssh-rsa", b"ssh-rsa", b"\x01\x00\x01", b"\x00" + b"\xff" * 128),
     "an RSA key needs at least 2048 bits, this one has 1024"),
    (_line("ecdsa-sha2-nistp256", b"ecdsa-sha2-nistp256", b"nistp384", b"\x04" + b"k" * 64),
     "its key data is not a nistp256 point"),
    ("ssh-dss AAAAB3NzaC1kc3M= x", "the type 'ssh-dss' is not one of ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256"),
    ("AAAAC3NzaC1lZDI1NTE5", "expected `<type> <base64 key> [comment]`"),
    (DEPLOY_PUBLIC_KEY + "\n@cert-authority * " + RSA_PUBLIC_KEY, "a public key is one line"),
], ids=["the old example", "length field", "truncated", "short key", "trailing bytes", "inner type", "no key",
        "small rsa", "wrong curve", "dsa", "no type", "two lines"])
def test_a_corrupted_or_unusable_key_is_refused_with_the_reason(line: str, reason: str) -> None:
    """A key DigitalOcean or sshd would refuse stops the program at config time, saying what is wrong with it; a
    second line (which would become a known_hosts entry of its own) is never a key."""
    problem = public_key_problem(line)
    assert problem is not None and problem.startswith(reason), problem
    with pytest.raises(ValueError, match="^" + reason.replace("(", r"\(").replace("[", r"\[")):
        parse_public_key(line)


def test_the_placeholder_is_refused_with_the_fix() -> None:
    """The committed stack files hold a placeholder where the operator's key belongs: the refusal says how to
    make a key and set both halves, rather than that the value is malformed."""
    assert public_key_problem("REPLACE-with-your-deploy-key.pub") == (
        "this is the committed placeholder, not a key: make a deploy key with `ssh-keygen -t ed25519 -N '' -C "
        "devtools-deploy -f deploy_key`, then set both halves on the stack: `pulumi config set "
        "devtools:sshPublicKey \"$(cat deploy_key.pub)\"` and `pulumi config set --secret devtools:sshPrivateKey "
        "< deploy_key`")
    assert DEPLOY_KEY_FIX in str(public_key_problem("ssh-ed25519 REPLACE_ME"))


def test_same_key_ignores_the_comment() -> None:
    assert same_key(DEPLOY_PUBLIC_KEY, DEPLOY_PUBLIC_KEY.replace("deploy@ci", "laptop"))
    assert not same_key(DEPLOY_PUBLIC_KEY, HOST_PUBLIC_KEY)


def test_public_half_of_an_openssh_private_key() -> None:
    """The host key's public half is derived from the private key cloud-init installs: the key the rollout and
    ops.cli pin is the key the host presents, by construction."""
    key = public_half(HOST_PRIVATE_KEY)
    assert key.line == HOST_PUBLIC_KEY
    assert key.type == "ssh-ed25519" and key.comment == ""
    assert md5_fingerprint(key.line) == HOST_FINGERPRINT


def _with_other_public_copy(private_key: str) -> str:
    """The key with the last byte of the public key copy inside its private section changed."""
    lines = private_key.strip().splitlines()
    data = bytearray(base64.b64decode("".join(lines[1:-1])))
    public = data[data.index(b"ssh-ed25519") + 15:][:32]
    at = data.rindex(bytes(public)) + 31
    data[at] ^= 1
    body = base64.b64encode(bytes(data)).decode()
    return "\n".join([lines[0], *(body[i:i + 70] for i in range(0, len(body), 70)), lines[-1]]) + "\n"


@pytest.mark.parametrize(("text", "reason"), [
    (ENCRYPTED_PRIVATE_KEY, "it is protected by a passphrase"),
    (DEPLOY_PUBLIC_KEY, "expected an OpenSSH private key"),
    (HOST_PRIVATE_KEY.replace("b3BlbnNzaC1rZXktdjEAAAAABG5v", "b3BlbnNzaC1rZXktdjIAAAAABG5v"),
     "not in the openssh-key-v1 format"),
    (_with_other_public_copy(HOST_PRIVATE_KEY), "its private section holds another key"),
    (HOST_PRIVATE_KEY.replace("7P8rPcUl1y", "7P8r!cUl1y"), "its base64 does not decode"),
], ids=["passphrase", "a public key", "format", "mismatch", "base64"])
def test_unusable_private_keys_are_refused_without_the_key(text: str, reason: str) -> None:
    """sshd reads a host key at boot, unattended: a passphrase, a damaged key or a public key where the private
    one belongs is refused, and the message never repeats the key."""
    with pytest.raises(ValueError) as err:
        public_half(text)
    assert str(err.value).startswith(reason)
    assert "PRIVATE KEY" not in str(err.value) and "b3BlbnNz" not in str(err.value)
