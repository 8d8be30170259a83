"""Cosign keys read in pure Python when the config is read: a PEM public key (what hosts verify images with) and
the encrypted private key (what the program signs with). Each check says why a text is refused, never quoting it.

A public key is one PEM block `PUBLIC KEY` holding a DER SubjectPublicKeyInfo of a kind cosign verifies with: ECDSA
on P-256, P-384 or P-521 (`cosign generate-key-pair` makes P-256), RSA or Ed25519. A private key is what `cosign
generate-key-pair` writes: one PEM block `ENCRYPTED SIGSTORE PRIVATE KEY` (`ENCRYPTED COSIGN PRIVATE KEY` from
older cosign) around JSON naming its scrypt key derivation and nacl/secretbox cipher. Opening it needs the password
and is cosign's business at signing time.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

PUBLIC_TYPE = "PUBLIC KEY"
PRIVATE_TYPES = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.S)

EC_PUBLIC_KEY = "1.2.840.10045.2.1"
CURVES = {"1.2.840.10045.3.1.7": "P-256", "1.3.132.0.34": "P-384", "1.3.132.0.35": "P-521"}
RSA = "1.2.840.113549.1.1.1"
ED25519 = "1.3.101.112"

SEQUENCE, BIT_STRING, OID = 0x30, 0x03, 0x06


class _DerError(ValueError):
    pass


def _tlv(data: bytes, at: int) -> tuple[int, bytes, int]:
    """(tag, value, offset after it) of the DER element at `at`."""
    if at + 2 > len(data):
        raise _DerError("ends early")
    tag, length, at = data[at], data[at + 1], at + 2
    if length & 0x80:
        size = length & 0x7F
        if size == 0 or size > 4 or at + size > len(data):
            raise _DerError("bad length")
        length, at = int.from_bytes(data[at:at + size], "big"), at + size
    if at + length > len(data):
        raise _DerError("ends early")
    return tag, data[at:at + length], at + length


def _oid(value: bytes) -> str:
    if not value:
        raise _DerError("empty OID")
    parts = [value[0] // 40, value[0] % 40]
    number = 0
    for byte in value[1:]:
        number = (number << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(number)
            number = 0
    return ".".join(str(p) for p in parts)


def _spki_kind(der: bytes) -> str:
    """The kind of key a DER SubjectPublicKeyInfo holds ("ECDSA P-256", "RSA", "Ed25519"); _DerError otherwise."""
    tag, spki, end = _tlv(der, 0)
    if tag != SEQUENCE or end != len(der):
        raise _DerError("not one SEQUENCE")
    tag, algorithm, at = _tlv(spki, 0)
    key_tag, key, end = _tlv(spki, at)
    if tag != SEQUENCE or key_tag != BIT_STRING or end != len(spki) or not key:
        raise _DerError("not an algorithm and a key")
    tag, oid, at = _tlv(algorithm, 0)
    if tag != OID:
        raise _DerError("no algorithm")
    name = _oid(oid)
    if name == EC_PUBLIC_KEY:
        tag, curve, _ = _tlv(algorithm, at)
        if tag != OID or _oid(curve) not in CURVES:
            raise _DerError("an EC key on a curve cosign does not verify with")
        return f"ECDSA {CURVES[_oid(curve)]}"
    if name == RSA:
        return "RSA"
    if name == ED25519:
        return "Ed25519"
    raise _DerError(f"a key of algorithm {name}, which cosign does not verify with")


def _blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(text)]


def _decode(body: str) -> bytes:
    return base64.b64decode("".join(body.split()), validate=True)


def public_key_problem(text: str) -> str | None:
    """Why `text` is not one PEM public key cosign verifies with (None: it is)."""
    blocks = _blocks(text)
    if any(kind.endswith("PRIVATE KEY") for kind, _ in blocks) or "PRIVATE KEY" in text:
        return "it holds a private key (a secret: devtools:signingKey)"
    if len(blocks) != 1 or blocks[0][0] != PUBLIC_TYPE:
        return f"expected one -----BEGIN {PUBLIC_TYPE}----- block"
    try:
        _spki_kind(_decode(blocks[0][1]))
    except binascii.Error:
        return "its base64 does not decode"
    except _DerError as exc:
        return f"not a public key cosign verifies with (DER: {exc})"
    return None


def private_key_problem(text: str) -> str | None:
    """Why `text` is not an encrypted cosign private key (None: it is)."""
    blocks = _blocks(text)
    return _private_block_problem(blocks) or _private_content_problem(blocks[0][1])


def _private_block_problem(blocks: list[tuple[str, str]]) -> str | None:
    if not blocks:
        return f"no -----BEGIN {PRIVATE_TYPES[0]}----- block"
    if len(blocks) != 1:
        return "more than one PEM block"
    kind = blocks[0][0]
    if kind == PUBLIC_TYPE:
        return "it is a public key: the private half (cosign.key) signs"
    if kind not in PRIVATE_TYPES:
        return f"its PEM block is {kind}: cosign signs with the encrypted key `cosign generate-key-pair` writes"
    return None


def _private_content_problem(body: str) -> str | None:
    try:
        data = json.loads(_decode(body))
    except (binascii.Error, ValueError):
        return "its content is not cosign's encrypted key format (base64 of JSON)"
    kdf, cipher = (data.get(k) if isinstance(data, dict) else None for k in ("kdf", "cipher"))
    if not (isinstance(kdf, dict) and kdf.get("name") == "scrypt" and isinstance(cipher, dict)
            and cipher.get("name") == "nacl/secretbox" and isinstance(data.get("ciphertext"), str)):
        return "its content is not cosign's encrypted key format (scrypt, nacl/secretbox)"
    return None
