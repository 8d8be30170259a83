"""Image signatures on the host: which keys a release accepts, and cosign's verdict for each image before anything
changes.

A release carries its signing policy in release.json (`signing`: whether signatures are required, the PEM public
keys accepted, several during a rotation). Every image of the release is verified with the pinned cosign
(components.cloud_init installs it at COSIGN with its checksum checked; the stand-in builds the same version) against
each key until one verifies. The key reaches cosign in its environment (`--key env://…`), never in argv. Offline by
design: key-based, the transparency log neither written at signing nor asked at verification, so a host needs its
registry and nothing else.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

COSIGN = "/usr/local/bin/cosign"
KEY_ENV = "DEVTOOLS_COSIGN_KEY"  # the public key cosign reads (`--key env://DEVTOOLS_COSIGN_KEY`)
VERIFY_TIMEOUT_S = 120.0
MAX_AT_ONCE = 8
PEM_BEGIN, PEM_END = "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----"

# cosign's own exit codes for a verification that found no signature, or none of this key / for this digest
EXIT_NO_SIGNATURE, EXIT_NO_MATCH = 10, 12

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class Policy:
    """What a release accepts: `require` signatures, by any of `public_keys` (PEM, several while a key is rotated).
    The program writes it into release.json (manifest_section), the host reads it back (policy_from_manifest)."""

    require: bool
    public_keys: tuple[str, ...]

    def manifest_section(self) -> dict[str, object]:
        return manifest_section(self.public_keys, self.require)


@dataclass(frozen=True)
class Verdict:
    service: str
    ref: str
    ok: bool
    reason: str  # "signed (key 1 of 2)" or why not


def manifest_section(public_keys: Sequence[str], require: bool) -> dict[str, object]:
    """release.json's `signing` section (components.commands.manifest writes it; policy_from_manifest reads it)."""
    return {"require": bool(require), "public_keys": [k.strip() + "\n" for k in public_keys]}


def policy_problems(section: object) -> list[str]:
    """Why release.json's `signing` section is unusable (empty = fine)."""
    if not isinstance(section, Mapping):
        return ["signing: expected an object {require, public_keys}"]
    problems = []
    if not isinstance(section.get("require"), bool):
        problems.append("signing.require: expected true or false")
    keys = section.get("public_keys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        problems.append("signing.public_keys: expected a list of PEM public keys")
    else:
        for i, key in enumerate(keys, 1):
            if not (key.strip().startswith(PEM_BEGIN) and key.strip().endswith(PEM_END)):
                problems.append(f"signing.public_keys[{i}]: not a PEM public key ({PEM_BEGIN} … {PEM_END})")
        if section.get("require") is True and not keys:
            problems.append("signing.public_keys: signatures are required but no public key is given")
    return problems


def policy_from_manifest(manifest: Mapping[str, object]) -> Policy | None:
    """The release's policy; None when it has no `signing` section (nothing verified). Call policy_problems first."""
    section = manifest.get("signing")
    if not isinstance(section, Mapping):
        return None
    keys = section.get("public_keys")
    return Policy(require=section.get("require") is True,
                  public_keys=tuple(str(k) for k in keys) if isinstance(keys, list) else ())


def verify_command(ref: str, cosign: str = COSIGN) -> list[str]:
    """cosign's verification of one digest against the key in KEY_ENV, offline (no transparency log)."""
    return [cosign, "verify", "--key", f"env://{KEY_ENV}", "--insecure-ignore-tlog=true",
            "--new-bundle-format=false", ref]


def classify(proc: subprocess.CompletedProcess[str]) -> str:
    """Why one key did not verify an image, in words an operator acts on."""
    text = (proc.stderr or "") + (proc.stdout or "")
    lowered = text.lower()
    if proc.returncode == EXIT_NO_SIGNATURE or "no signatures found" in lowered:
        return "unsigned: the registry holds no signature for this digest"
    if proc.returncode == EXIT_NO_MATCH or "no matching signatures" in lowered:
        return "signed by another key, or the signature is not of this digest"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"cannot verify (cosign exit {proc.returncode}): {lines[-1] if lines else 'no output'}"


def verify_one(service: str, ref: str, policy: Policy, runner: Runner, cosign: str = COSIGN) -> Verdict:
    """Try each accepted key in turn; the first that verifies wins."""
    reasons: list[str] = []
    for index, key in enumerate(policy.public_keys, 1):
        env = {**os.environ, KEY_ENV: key}
        try:
            proc = runner(verify_command(ref, cosign), timeout=VERIFY_TIMEOUT_S, env=env, cwd=None)
        except subprocess.TimeoutExpired:
            return Verdict(service, ref, False, f"cannot verify: cosign did not answer within {VERIFY_TIMEOUT_S:.0f}s")
        except OSError as exc:
            return Verdict(service, ref, False, f"cannot verify: cannot run {cosign}: {exc.strerror or exc}")
        if proc.returncode == 0:
            which = f" (key {index} of {len(policy.public_keys)})" if len(policy.public_keys) > 1 else ""
            return Verdict(service, ref, True, f"signed{which}")
        reasons.append(classify(proc))
    if not reasons:
        return Verdict(service, ref, False, "no public key configured")
    unique = list(dict.fromkeys(reasons))
    return Verdict(service, ref, False, unique[0] if len(unique) == 1 else "; ".join(
        f"key {i}: {r}" for i, r in enumerate(reasons, 1)))


def verify_images(images: Mapping[str, str], policy: Policy, runner: Runner, cosign: str = COSIGN
                  ) -> list[Verdict]:
    """Every image's verdict, sorted by service; at most MAX_AT_ONCE cosign processes at once."""
    services = sorted(images)
    if not services:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_AT_ONCE, len(services))) as pool:
        return list(pool.map(lambda s: verify_one(s, images[s], policy, runner, cosign), services))


def refusal(release_id: str, verdicts: Sequence[Verdict]) -> str | None:
    """The operator's message when any image failed verification (None: all verified)."""
    bad = [v for v in verdicts if not v.ok]
    if not bad:
        return None
    lines = "; ".join(f"{v.service} ({v.ref}): {v.reason}" for v in bad)
    return (f"release {release_id} refused, nothing changed: {len(bad)} of {len(verdicts)} images failed signature "
            f"verification: {lines}")
