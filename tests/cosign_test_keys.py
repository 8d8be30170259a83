"""Cosign key pairs for tests only (tests/signing/): EC P-256, the private half encrypted as `cosign
generate-key-pair` writes it, so the program's key checks and the signing tiers meet the real format.

The format (sigstore's encrypted private key, go-securesystemslib `encrypted`): PEM type ENCRYPTED SIGSTORE PRIVATE
KEY around compact JSON {"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1}, "salt": b64},
"cipher": {"name": "nacl/secretbox", "nonce": b64}, "ciphertext": b64}; the secretbox (XSalsa20-Poly1305, tag
first) seals the PKCS#8 DER of the private key under scrypt(password, salt). Cosign refuses other scrypt
parameters. The public half is the PKIX PEM (PUBLIC KEY).

    .venv/bin/python -m tests.cosign_test_keys   # writes new pairs into tests/signing/ (the tests read the files)

`decrypt` opens a key again (a unit test holds each committed pair together); the stream cipher is written out
here because the `cryptography` package has no XSalsa20.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

DIR = Path(__file__).resolve().parent / "signing"
PEM_TYPE = "ENCRYPTED SIGSTORE PRIVATE KEY"
SCRYPT = {"N": 32768, "r": 8, "p": 1}


@dataclass(frozen=True)
class CosignPair:
    name: str
    password: str  # COSIGN_PASSWORD; "" as the local stand-in's key

    @property
    def key_path(self) -> Path:
        return DIR / f"{self.name}.key"

    @property
    def pub_path(self) -> Path:
        return DIR / f"{self.name}.pub"

    @property
    def private_pem(self) -> str:
        return self.key_path.read_text()

    @property
    def public_pem(self) -> str:
        return self.pub_path.read_text()


PAIR_A = CosignPair("cosign-a", "")
PAIR_B = CosignPair("cosign-b", "test-only-signing-password-b")
PAIRS = (PAIR_A, PAIR_B)

MASK = 0xFFFFFFFF
SIGMA = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)  # "expand 32-byte k"


def _rotl(v: int, c: int) -> int:
    return ((v << c) & MASK) | (v >> (32 - c))


def _rounds(state: list[int]) -> list[int]:
    x = list(state)
    for _ in range(10):
        for a, b, c, d in ((0, 4, 8, 12), (5, 9, 13, 1), (10, 14, 2, 6), (15, 3, 7, 11),
                           (0, 1, 2, 3), (5, 6, 7, 4), (10, 11, 8, 9), (15, 12, 13, 14)):
            x[b] ^= _rotl((x[a] + x[d]) & MASK, 7)
            x[c] ^= _rotl((x[b] + x[a]) & MASK, 9)
            x[d] ^= _rotl((x[c] + x[b]) & MASK, 13)
            x[a] ^= _rotl((x[d] + x[c]) & MASK, 18)
    return x


def _state(key: bytes, middle: bytes) -> list[int]:
    k, m = struct.unpack("<8I", key), struct.unpack("<4I", middle)
    return [SIGMA[0], *k[:4], SIGMA[1], *m, SIGMA[2], *k[4:], SIGMA[3]]


def _hsalsa20(key: bytes, nonce16: bytes) -> bytes:
    x = _rounds(_state(key, nonce16))
    return struct.pack("<8I", *(x[i] for i in (0, 5, 10, 15, 6, 7, 8, 9)))


def _xsalsa20_stream(key: bytes, nonce: bytes, length: int) -> bytes:
    subkey = _hsalsa20(key, nonce[:16])
    out = bytearray()
    counter = 0
    while len(out) < length:
        state = _state(subkey, nonce[16:24] + struct.pack("<Q", counter))
        out += struct.pack("<16I", *((a + b) & MASK for a, b in zip(_rounds(state), state, strict=True)))
        counter += 1
    return bytes(out[:length])


def _poly1305(key: bytes, message: bytes) -> bytes:
    r = int.from_bytes(key[:16], "little") & 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF
    s = int.from_bytes(key[16:], "little")
    p, acc = (1 << 130) - 5, 0
    for i in range(0, len(message), 16):
        acc = (acc + int.from_bytes(message[i:i + 16] + b"\x01", "little")) * r % p
    return ((acc + s) % (1 << 128)).to_bytes(16, "little")


def secretbox_seal(message: bytes, nonce: bytes, key: bytes) -> bytes:
    stream = _xsalsa20_stream(key, nonce, 32 + len(message))
    cipher = bytes(a ^ b for a, b in zip(message, stream[32:], strict=True))
    return _poly1305(stream[:32], cipher) + cipher


def secretbox_open(box: bytes, nonce: bytes, key: bytes) -> bytes:
    tag, cipher = box[:16], box[16:]
    stream = _xsalsa20_stream(key, nonce, 32 + len(cipher))
    if _poly1305(stream[:32], cipher) != tag:
        raise ValueError("secretbox: wrong key or damaged ciphertext")
    return bytes(a ^ b for a, b in zip(cipher, stream[32:], strict=True))


def _kdf(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT["N"], r=SCRYPT["r"], p=SCRYPT["p"],
                          maxmem=64 * 1024 * 1024, dklen=32)


def _pem(kind: str, der: bytes) -> str:
    body = base64.b64encode(der).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {kind}-----", *lines, f"-----END {kind}-----"]) + "\n"


def _unpem(text: str, kind: str) -> bytes:
    lines = text.strip().splitlines()
    if lines[0] != f"-----BEGIN {kind}-----" or lines[-1] != f"-----END {kind}-----":
        raise ValueError(f"not a PEM {kind}")
    return base64.b64decode("".join(lines[1:-1]))


def encrypt(der: bytes, password: str, salt: bytes, nonce: bytes) -> str:
    """The encrypted PEM of a PKCS#8 DER private key, as cosign writes it."""
    data = {"kdf": {"name": "scrypt", "params": SCRYPT, "salt": base64.b64encode(salt).decode()},
            "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
            "ciphertext": base64.b64encode(secretbox_seal(der, nonce, _kdf(password, salt))).decode()}
    return _pem(PEM_TYPE, json.dumps(data, separators=(",", ":")).encode())


def decrypt(pem: str, password: str) -> bytes:
    """The PKCS#8 DER inside an encrypted cosign private key."""
    data = json.loads(_unpem(pem, PEM_TYPE))
    if data["kdf"]["name"] != "scrypt" or data["kdf"]["params"] != SCRYPT or data["cipher"]["name"] != \
            "nacl/secretbox":
        raise ValueError("not a cosign-encrypted key (scrypt N=32768 r=8 p=1, nacl/secretbox)")
    key = _kdf(password, base64.b64decode(data["kdf"]["salt"]))
    return secretbox_open(base64.b64decode(data["ciphertext"]), base64.b64decode(data["cipher"]["nonce"]), key)


def public_pem_of(der: bytes) -> str:
    """The PKIX PEM public half of a PKCS#8 DER private key."""
    private = serialization.load_der_private_key(der, password=None)
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def generate(pair: CosignPair) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    pair.key_path.write_text(encrypt(der, pair.password, os.urandom(32), os.urandom(24)))
    pair.pub_path.write_text(public_pem_of(der))


if __name__ == "__main__":
    DIR.mkdir(exist_ok=True)
    for each in PAIRS:
        generate(each)
        print(f"wrote {each.key_path} and {each.pub_path}")
