"""Release directories of a project (standard library only): install a bundle as releases/<id> (immutable, numbered),
order them by install sequence, prune the oldest. The base of agent.store.Store, which gives it its paths."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

SEQ_FILE = "seq"
"""In each release directory: the release's install sequence number."""
LAST_SEQ_FILE = "last-seq"
"""In the project directory: the last install sequence number handed out."""


def _read_int(path: Path) -> int | None:
    """A file holding one non-negative integer; None when it is missing or holds anything else."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isascii() and text.isdigit() else None


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)  # the mode from the first byte on
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fd, mode)  # a leftover temp file of another mode, or the umask
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def tree_digest(directory: Path) -> str:
    """sha256 over every file's relative path and bytes: two bundles with the same digest are the same release.

    release.json's `source` (commit, build time, CI run) describes where a release came from, not what it is:
    it is left out, so shipping the same release again is a no-op rather than a conflict. So is `signing`: the keys
    a host accepts are checked against the bundle of each apply (agent.signing) and may change (a rotation, signing
    turned on) while a release a rollback pins stays the same release.
    """
    h = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.relative_to(directory) == Path("release.json"):
            manifest = json.loads(data)
            manifest.pop("source", None)
            manifest.pop("signing", None)
            data = json.dumps(manifest, sort_keys=True).encode()
        h.update(str(path.relative_to(directory)).encode() + b"\0")
        h.update(data + b"\0")
    return h.hexdigest()


class ReleaseDirs:
    """releases/<id> under a project's directory (`base`, given by Store)."""

    @property
    def base(self) -> Path:
        raise NotImplementedError

    @property
    def releases(self) -> Path:
        return self.base / "releases"

    def release_dir(self, release_id: str) -> Path:
        return self.releases / release_id


    def install_release(self, bundle: Path, release_id: str, extra_files: dict[str, str]) -> Path:
        """Copy a bundle into releases/<id> in one rename, numbered with the next install sequence number (`seq`).
        Releases are immutable: the same id with other content is refused (ValueError) rather than silently
        changing what a rollback would restore; the same id with the same content keeps its directory and number.
        Called under the project's lock (one rollout at a time), so two installs never take the same number."""
        target = self.release_dir(release_id)
        digest = tree_digest(bundle)
        if target.exists():
            stored = target / "content.sha256"
            if not stored.exists() or stored.read_text().strip() != digest:
                raise ValueError(
                    f"release {release_id} already exists on this host with different content; "
                    "releases are immutable: give the new content a new release id"
                )
            return target
        staging = self.releases / f".{release_id}.{os.getpid()}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(bundle, staging, symlinks=False)
        seq = self.next_seq()
        for name, text in {**extra_files, "content.sha256": digest + "\n", SEQ_FILE: f"{seq}\n"}.items():
            write_atomic(staging / name, text)
        write_atomic(self.base / LAST_SEQ_FILE, f"{seq}\n")  # handed out before use: a number is never reused
        os.replace(staging, target)
        return target

    def release_seq(self, release_id: str) -> int | None:
        """The install sequence number of a release; None for one installed by an older agent (no `seq` file)."""
        return _read_int(self.release_dir(release_id) / SEQ_FILE)

    def next_seq(self) -> int:
        """One more than the last number handed out, or than the highest on disk if the counter file is lost."""
        on_disk = (self.release_seq(d.name) for d in self._release_dirs())
        return max([_read_int(self.base / LAST_SEQ_FILE) or 0, *(n for n in on_disk if n is not None)]) + 1

    def kept_releases(self) -> list[str]:
        """Release ids on disk, oldest first: by install sequence number, never by directory times (a copy, a
        restore from backup or a `touch` changes those). Releases of an older agent have no number: they come
        first, in mtime order, so a host upgraded in place prunes them before any numbered release."""

        def order(d: Path) -> tuple[int, float, str]:
            seq = self.release_seq(d.name)
            return (0, d.stat().st_mtime, d.name) if seq is None else (1, seq, d.name)

        return [d.name for d in sorted(self._release_dirs(), key=order)]

    def _release_dirs(self) -> list[Path]:
        if not self.releases.exists():
            return []
        return [d for d in self.releases.iterdir() if d.is_dir() and not d.name.startswith(".")]

    def release_manifest(self, release_id: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.release_dir(release_id) / "release.json").read_text())
        return data

    def prune_releases(self, keep: int, protected: set[str | None]) -> list[str]:
        """Delete the oldest release directories beyond `keep` (at least 2), never one of `protected`."""
        ids = self.kept_releases()
        removable = [i for i in ids if i not in protected]
        excess = max(0, len(ids) - max(keep, 2))
        dropped = removable[:excess]
        for release_id in dropped:
            shutil.rmtree(self.release_dir(release_id))
        return dropped
