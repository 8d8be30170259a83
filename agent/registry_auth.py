"""Registry credentials on a host: the docker config `docker compose pull` reads, written from stdin, mode 0600.

    python -m agent.hostagent --project green registry-auth < docker-config.json

The input is a docker config JSON ({"auths": {server: {"auth": base64(user:password)}}}), such as DigitalOcean's
read-only, expiring registry credentials the rollout mints for each release. Its `auths` entries replace the same
servers' entries in the user's docker config ($DOCKER_CONFIG/config.json, else ~/.docker/config.json); other
registries and settings in that file stay. The file is written 0600 from its first byte (in a 0700 directory) and
replaced atomically. Credentials arrive on stdin only (never argv), and no message repeats them.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def config_path(environ: Mapping[str, str]) -> Path:
    """Where docker reads its config: $DOCKER_CONFIG/config.json, else ~/.docker/config.json."""
    if environ.get("DOCKER_CONFIG"):
        return Path(environ["DOCKER_CONFIG"]) / "config.json"
    return Path(environ.get("HOME") or Path.home()) / ".docker" / "config.json"


def _refused(reason: str) -> ValueError:
    return ValueError(f"registry credentials refused: {reason}")


def read_auths(text: str) -> dict[str, dict[str, str]]:
    """The `auths` of a docker config JSON, each checked to be base64 of user:password (ValueError otherwise)."""
    try:
        document = json.loads(text)
    except ValueError:
        raise _refused("not JSON") from None
    auths = document.get("auths") if isinstance(document, dict) else None
    if not isinstance(auths, dict) or not auths:
        raise _refused("no `auths` object")
    checked: dict[str, dict[str, str]] = {}
    for server, entry in auths.items():
        auth = entry.get("auth") if isinstance(entry, dict) else None
        try:
            user, sep, password = base64.b64decode(str(auth), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            user = sep = password = ""
        if not (isinstance(auth, str) and user and sep and password):
            raise _refused(f"{server}: `auth` is not base64 of user:password")
        checked[str(server)] = {"auth": auth}
    return checked


def merged(existing: str | None, auths: Mapping[str, dict[str, str]]) -> str:
    """The docker config with `auths` written over the same servers' entries; an unreadable file is replaced."""
    try:
        document: Any = json.loads(existing) if existing else {}
    except ValueError:
        document = {}
    if not isinstance(document, dict):
        document = {}
    current = document.get("auths") if isinstance(document.get("auths"), dict) else {}
    document["auths"] = {**current, **auths}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`: 0600 from the first byte, in a 0700 directory, atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def install(text: str, environ: Mapping[str, str]) -> tuple[Path, list[str]]:
    """Write the credentials in `text` into the docker config; returns its path and the servers it now covers."""
    auths = read_auths(text)
    path = config_path(environ)
    existing = path.read_text(encoding="utf-8") if path.is_file() else None
    write_private(path, merged(existing, auths))
    return path, sorted(auths)
