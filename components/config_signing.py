"""The signing keys' files, read once when the config is read (components/config.py reads the keys themselves).

Paths are the project root's when relative (the committed `signing/prod.pub`), as given when absolute (the local
stand-in's pair under /var/tmp/devtools-local/signing). Every problem names the key, the file and the fix, never
a key's text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.signing import Policy
from components.config_read import Reader, Secret
from components.signing_keys import private_key_problem, public_key_problem


@dataclass(frozen=True)
class SigningConfig:
    """Signed images: the hosts' policy (require, the public keys' PEM texts as listed) and the private key the
    images this stack builds are signed with (signingKey, or the file signingKeyPath names) with its password."""

    require: bool
    public_keys: tuple[str, ...]
    public_key_files: tuple[str, ...]  # as listed in signingPublicKeys
    private_key: Secret
    private_key_path: str | None
    password: Secret

    @property
    def policy(self) -> Policy | None:
        """What every release carries (release.json's `signing`); None when no public key is configured: the
        release then has no `signing` section and keeps its bytes."""
        return Policy(self.require, self.public_keys) if self.public_keys else None


KEY_PAIR_FIX = ("make the key pair with `cosign generate-key-pair`, commit its public half as {entry} and set the "
                "private half on the stack that builds (`pulumi config set --secret devtools:signingKey < "
                "cosign.key`): signing/README.md. The local stacks' pair is made by `scripts/local-env.sh up`")


def _read(r: Reader, name: str, root: Path, entry: str, missing: str) -> str | None:
    """The text of `entry` (key `name`), or None with a problem: `missing` says what to do about an absent file."""
    path = root / entry
    try:
        return path.read_text()
    except FileNotFoundError:
        r.problem(f"{r.key(name)}: {entry}: no such file ({path}): {missing}")
    except (OSError, UnicodeDecodeError) as exc:
        r.problem(f"{r.key(name)}: {entry}: cannot be read ({getattr(exc, 'strerror', None) or exc}): {path}")
    return None


def read_public_keys(r: Reader, root: Path, files: tuple[str, ...]) -> tuple[str, ...]:
    """The PEM text of each signingPublicKeys file, in the order listed; each checked to be one PEM public key
    cosign verifies with, and listed once."""
    name = "signingPublicKeys"
    keys: dict[str, str] = {}  # PEM text (stripped) → the entry that listed it
    for entry in files:
        text = _read(r, name, root, entry, KEY_PAIR_FIX.format(entry=entry))
        if text is None:
            continue
        problem = public_key_problem(text)
        if problem:
            r.problem(f"{r.key(name)}: {entry}: not a PEM public key: {problem}: list the public half of a cosign "
                      "key pair (the cosign.pub `cosign generate-key-pair` writes)")
        elif text.strip() in keys:
            r.problem(f"{r.key(name)}: {entry}: the same key as {keys[text.strip()]}: list each key once")
        else:
            keys[text.strip()] = entry
    return tuple(text + "\n" for text in keys)


def read_private_key_file(r: Reader, root: Path, entry: str) -> str:
    """The encrypted private key in the file signingKeyPath names; "" when not set or with a problem."""
    if not entry:
        return ""
    name = "signingKeyPath"
    text = _read(r, name, root, entry, "the local stand-in's key pair is made by `scripts/local-env.sh up`; elsewhere "
                 "set devtools:signingKey instead (`pulumi config set --secret devtools:signingKey < cosign.key`)")
    if text is None:
        return ""
    problem = private_key_problem(text)
    if problem:
        r.problem(f"{r.key(name)}: {entry}: not an encrypted cosign private key: {problem}: name the cosign.key "
                  "`cosign generate-key-pair` writes")
        return ""
    return text
