"""OpenSSH keys read in pure Python (no ssh-keygen): a public key line checked down to its key blob, the MD5
fingerprint DigitalOcean gives an uploaded key, and the public half of an unencrypted OpenSSH private key.

    public_key_problem("ssh-ed25519 AAAAC3Nz… deploy@ci")   # None, or why the line is not a usable key
    md5_fingerprint("ssh-ed25519 AAAAC3Nz… deploy@ci")      # "66:45:43:…", as DigitalOcean lists the key
    public_half(private_key_text)                           # "ssh-ed25519 AAAAC3Nz…" (no comment)

A public key line is `<type> <base64 blob> [comment]`. The blob repeats the type as its first field, then the key
itself: 32 bytes for ed25519, the curve name and an uncompressed point for ECDSA, exponent and modulus for RSA.
A line whose blob does not decode, names another type or has the wrong length is refused with the reason (what
`ssh-keygen -l` would refuse, and what DigitalOcean answers 422 to).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from typing import NamedTuple

ED25519 = "ssh-ed25519"
RSA = "ssh-rsa"
ECDSA_POINT_BYTES = {"nistp256": 65, "nistp384": 97, "nistp521": 133}  # 0x04 || X || Y
TYPES = (ED25519, RSA, *(f"ecdsa-sha2-{curve}" for curve in ECDSA_POINT_BYTES))
RSA_MIN_BITS = 2048
PLACEHOLDER = "REPLACE"
"""A committed stack file holds a value with this word where an operator's own key belongs."""
PRIVATE_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----"
PRIVATE_END = "-----END OPENSSH PRIVATE KEY-----"
PRIVATE_MAGIC = b"openssh-key-v1\0"
DEPLOY_KEY_FIX = ("make a deploy key with `ssh-keygen -t ed25519 -N '' -C devtools-deploy -f deploy_key`, then set "
                  "both halves on the stack: `pulumi config set devtools:sshPublicKey \"$(cat deploy_key.pub)\"` and "
                  "`pulumi config set --secret devtools:sshPrivateKey < deploy_key`")


class PublicKey(NamedTuple):
    type: str
    blob: bytes
    comment: str

    @property
    def line(self) -> str:
        """`<type> <base64>`: the key without its comment (what known_hosts and the command provider pin)."""
        return f"{self.type} {base64.b64encode(self.blob).decode()}"


class _Reader:
    """The SSH wire format: uint32 big-endian length, then that many bytes."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def uint32(self) -> int:
        if self.pos + 4 > len(self.data):
            raise ValueError("the key's data ends early")
        (value,) = struct.unpack(">I", self.data[self.pos:self.pos + 4])
        self.pos += 4
        return int(value)

    def string(self) -> bytes:
        size = self.uint32()
        if self.pos + size > len(self.data):
            raise ValueError("the key's data ends early")
        value = self.data[self.pos:self.pos + size]
        self.pos += size
        return value

    def done(self) -> bool:
        return self.pos == len(self.data)


def _check_blob(kind: str, blob: bytes) -> None:
    """Raise ValueError saying why `blob` is not a key of type `kind`."""
    reader = _Reader(blob)
    inner = reader.string()
    if inner != kind.encode():
        raise ValueError(f"its key data is of type {inner.decode(errors='replace')!r}, the line says {kind}")
    if kind == ED25519:
        key = reader.string()
        if len(key) != 32:
            raise ValueError(f"an ed25519 key is 32 bytes, this one has {len(key)}")
    elif kind == RSA:
        exponent, modulus = reader.string(), reader.string()
        bits = int.from_bytes(modulus, "big").bit_length()
        if not exponent or bits < RSA_MIN_BITS:
            raise ValueError(f"an RSA key needs at least {RSA_MIN_BITS} bits, this one has {bits}")
    else:
        curve = kind.removeprefix("ecdsa-sha2-")
        named, point = reader.string(), reader.string()
        if named != curve.encode() or len(point) != ECDSA_POINT_BYTES[curve] or point[:1] != b"\x04":
            raise ValueError(f"its key data is not a {curve} point")
    if not reader.done():
        raise ValueError("its key data has bytes after the key")


def parse_public_key(line: str) -> PublicKey:
    """The key of one OpenSSH public key line; ValueError says what is wrong (never repeating the value)."""
    if any(c in line.strip() for c in "\r\n\0"):
        raise ValueError("a public key is one line")
    parts = line.strip().split(None, 2)
    if len(parts) < 2:
        raise ValueError("expected `<type> <base64 key> [comment]`")
    kind, data = parts[0], parts[1]
    if kind not in TYPES:
        raise ValueError(f"the type {kind!r} is not one of {', '.join(TYPES)}")
    try:
        blob = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("its base64 does not decode") from None
    _check_blob(kind, blob)
    return PublicKey(kind, blob, parts[2] if len(parts) > 2 else "")


def public_key_problem(line: str) -> str | None:
    """Why `line` is not a usable OpenSSH public key (with the fix for the committed placeholder), or None."""
    if PLACEHOLDER in line:
        return f"this is the committed placeholder, not a key: {DEPLOY_KEY_FIX}"
    try:
        parse_public_key(line)
    except ValueError as exc:
        return str(exc)
    return None


def md5_fingerprint(line: str) -> str:
    """The MD5 fingerprint of a public key line, colon-separated hex: how DigitalOcean names an uploaded key (and
    what a droplet's `ssh_keys` accepts)."""
    digest = hashlib.md5(parse_public_key(line).blob, usedforsecurity=False).digest()
    return ":".join(f"{b:02x}" for b in digest)


def same_key(a: str, b: str) -> bool:
    """Two public key lines hold the same key (comments aside)."""
    return parse_public_key(a).blob == parse_public_key(b).blob


def public_half(private_key: str) -> PublicKey:
    """The public key of an unencrypted OpenSSH private key (the `openssh-key-v1` format ssh-keygen writes).

    The format keeps the public key in clear ahead of the private section; the private section (not encrypted
    when the cipher is `none`) repeats it, which is checked too. ValueError says what is wrong, never the key.
    """
    text = private_key.strip()
    if not (text.startswith(PRIVATE_BEGIN) and text.endswith(PRIVATE_END)):
        raise ValueError("expected an OpenSSH private key (the BEGIN/END OPENSSH block ssh-keygen writes)")
    body = re.sub(r"\s+", "", text[len(PRIVATE_BEGIN):-len(PRIVATE_END)])
    try:
        data = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("its base64 does not decode") from None
    if not data.startswith(PRIVATE_MAGIC):
        raise ValueError("not in the openssh-key-v1 format")
    reader = _Reader(data[len(PRIVATE_MAGIC):])
    cipher, _kdf, _options = reader.string(), reader.string(), reader.string()
    if cipher != b"none":
        raise ValueError("it is protected by a passphrase: sshd reads a host key unattended, so it must have none")
    if reader.uint32() != 1:
        raise ValueError("it holds more than one key")
    blob = reader.string()
    private = _Reader(reader.string())
    check1, check2 = private.uint32(), private.uint32()
    kind = private.string().decode(errors="replace")
    if check1 != check2 or kind not in TYPES:
        raise ValueError("its private section is damaged")
    _check_blob(kind, blob)
    if kind == ED25519:  # the private section repeats the public key, then holds seed + public key
        inner = _Reader(blob)
        inner.string()
        public = inner.string()
        if private.string() != public or private.string()[32:] != public:
            raise ValueError("its private section holds another key than its public half")
    return PublicKey(kind, blob, "")


def host_private_key_problem(text: str) -> str | None:
    """Why `text` cannot be a host key sshd loads at boot (never repeating the key), or None."""
    try:
        public_half(text)
    except ValueError as exc:
        return str(exc)
    return None


def cloud_init_type(key: PublicKey) -> str:
    """The name cloud-init's `ssh_keys` gives the key type (`ed25519_private`, `rsa_private`, …)."""
    return {ED25519: "ed25519", RSA: "rsa"}.get(key.type, "ecdsa")
