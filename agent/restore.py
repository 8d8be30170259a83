"""Restoring a backup (agent.backup) into a project's volumes, and making a backup of plain directories (standard
library only).

A restore writes only into volumes that are missing or empty (a fresh project), unless `replace`: then it first
takes a backup of what is there, so nothing is ever lost. Every tar is checked against the manifest's size and
sha256 before anything is written. The project's running containers that mount the volumes are stopped meanwhile
(never removed) and started again whatever happens.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from agent import backup as bk
from agent import compose as cc
from agent.installs import write_atomic
from agent.store import Store
from agent.volume_io import Docker, Sink, shielded

Log = Callable[[str], None]


class Refused(bk.BackupError):
    """The target volumes hold data and --replace was not given (exit 2, nothing changed)."""


@dataclass(frozen=True)
class Target:
    """One volume of the backup and where it goes."""

    name: str
    docker: str
    file: IO[bytes]
    image: str
    state: str  # missing | empty | "not empty (<first entries>)"


def verify(base: Path, manifest: dict[str, Any], names: Sequence[str]) -> dict[str, IO[bytes]]:
    """Open each tar of `names` and check its size and sha256 against the manifest; the open files (a retention
    run removing the backup meanwhile cannot take them away)."""
    records = {v["name"]: v for v in manifest["volumes"]}
    opened: dict[str, IO[bytes]] = {}
    try:
        for name in names:
            fh: IO[bytes] = open(base / manifest["id"] / records[name]["file"], "rb")  # noqa: SIM115
            opened[name] = fh
            digest, size = hashlib.sha256(), 0
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
            if (size, digest.hexdigest()) != (records[name]["size"], records[name]["sha256"]):
                raise bk.BackupError(f"backup {manifest['id']}: {records[name]['file']} is not what was written "
                                     f"({size} bytes, sha256 {digest.hexdigest()}; the manifest says "
                                     f"{records[name]['size']} bytes, {records[name]['sha256']}): refusing to "
                                     "restore it; nothing changed")
            fh.seek(0)
    except BaseException:
        for fh in opened.values():
            fh.close()
        raise
    return opened


def choose_image(docker: Docker, candidates: Sequence[str | None], volume: str) -> str:
    """The first candidate image present on this host (the backup's own, then the target's, then the source's
    release image of a service mounting the volume): the one-shot containers never pull."""
    for image in dict.fromkeys(c for c in candidates if c):
        if docker.run(bk.image_present_argv(image), 60)[0] == 0:
            return image
    tried = ", ".join(c for c in candidates if c) or "none known"
    raise bk.BackupError(f"no image with tar on this host to write volume {volume} with (tried: {tried}): ship the "
                         "project first, or `docker pull` one of them; nothing changed")


def volume_state(docker: Docker, volume: str, image: str) -> str:
    if docker.run(bk.volume_inspect_argv(volume), 60)[0] != 0:
        return "missing"
    code, out, err = docker.run(bk.entries_argv(volume, image), 120)
    if code != 0:
        raise bk.BackupError(f"cannot list volume {volume}: {err.strip()[-300:]}; nothing changed")
    entries = out.split()
    return "empty" if not entries else f"not empty ({', '.join(entries[:3])}{', …' if len(entries) > 3 else ''})"


def restore(store: Store, docker: Docker, *, source: Path, backup_id: str, only: Sequence[str], replace: bool,
            keep: int, timeout: float, stop_timeout: int, fallback_images: dict[str, str | None],
            log: Log) -> dict[str, Any]:
    """Restore backup `backup_id` of the backups directory `source` into this project's volumes (the caller holds
    the project's lock). `fallback_images`: volume name → an image of the source project's release."""
    manifest = bk.read_manifest(source, backup_id)
    names = [v["name"] for v in manifest["volumes"]]
    unknown = [n for n in only if n not in names]
    if unknown:
        raise bk.BackupError(f"backup {backup_id} holds no volume {', '.join(unknown)} (it holds "
                             f"{', '.join(names)}); nothing changed", 2)
    chosen = [n for n in names if not only or n in only]
    files = verify(source, manifest, chosen)
    try:
        return _restore(store, docker, manifest, files, replace=replace, keep=keep, timeout=timeout,
                        stop_timeout=stop_timeout, fallback_images=fallback_images, log=log)
    finally:
        for fh in files.values():
            fh.close()


def _restore(store: Store, docker: Docker, manifest: dict[str, Any], files: dict[str, IO[bytes]], *,
             replace: bool, keep: int, timeout: float, stop_timeout: int, fallback_images: dict[str, str | None],
             log: Log) -> dict[str, Any]:
    release, mine, compose = bk.current_release(store)
    own = {v.name: v for v in mine}
    records = {v["name"]: v for v in manifest["volumes"]}
    targets = []
    for name, fh in files.items():
        docker_name = own[name].docker if name in own else f"{store.project}_{name}"
        image = choose_image(docker, [records[name].get("image"), own[name].image if name in own else None,
                                      fallback_images.get(name)], docker_name)
        targets.append(Target(name, docker_name, fh, image, volume_state(docker, docker_name, image)))
    full = [t for t in targets if t.state.startswith("not empty")]
    if full and not replace:
        store.audit("restore.refused", backup=manifest["id"], source=manifest["project"],
                    volumes={t.docker: t.state for t in full})
        listed = "; ".join(f"{t.docker} is {t.state}" for t in full)
        raise Refused(f"project {store.project}: {listed}. Restoring there would mix two data sets: nothing "
                             f"changed. Restore into a fresh project (another --project), or pass --replace (a "
                             f"backup of what is there is taken first, nothing is lost)", 2)
    bk.unpause_leftovers(store, docker, log)
    mounting = {s for t in targets if t.name in own for s in own[t.name].services}
    stopped = bk.running_services(store, docker, mounting) if compose else []
    summary: dict[str, Any] = {"backup": manifest["id"], "source": manifest["project"], "release": release,
                               "volumes": [t.docker for t in targets], "stopped": stopped, "replaced_backup": None}
    if compose is not None and stopped:
        code, _out, err = docker.run(cc.stop(compose, stopped, stop_timeout), stop_timeout * 4 + 60)
        if code != 0:
            docker.run(cc.start(compose, stopped), 300)
            raise bk.BackupError(f"compose stop {' '.join(stopped)} failed: {err.strip()[-300:]}; nothing changed")
        log(f"stopped {', '.join(stopped)} (started again at the end)")
    try:
        if full:
            sources = [bk.VolumeSource(t.name, t.docker, own[t.name].services if t.name in own else (), t.image)
                       for t in targets if t.state != "missing"]
            kept = bk.take_backup(store, docker, sources, release=release, compose=None,
                                  label=f"before-restore-{manifest['id']}", keep=keep, timeout=timeout, log=log,
                                  spare=[manifest["id"]])
            summary["replaced_backup"] = kept["id"]
            log(f"backup {kept['id']} of project {store.project} holds what the restore replaces")
        for t in targets:
            _write(store, docker, t, timeout, log)
    except bk.BackupError as exc:
        kept_note = (f"; what was there is in backup {summary['replaced_backup']} of project {store.project}"
                     if summary["replaced_backup"] else "")
        raise bk.BackupError(f"{exc}{kept_note}", exc.code) from exc
    finally:
        if compose is not None and stopped:
            with shielded():
                code, _out, err = docker.run(cc.start(compose, stopped), 300)
            if code != 0:
                raise bk.BackupError(f"compose start {' '.join(stopped)} failed: {err.strip()[-300:]}", 4)
            log(f"started {', '.join(stopped)}")
    return summary


def _write(store: Store, docker: Docker, t: Target, timeout: float, log: Log) -> None:
    if t.state == "missing":
        code, _out, err = docker.run(bk.volume_create_argv(store.project, t.name, t.docker), 60)
        if code != 0:
            raise bk.BackupError(f"cannot create volume {t.docker}: {err.strip()[-300:]}")
    elif t.state != "empty":
        code, _out, err = docker.run(bk.clear_argv(t.docker, t.image), timeout)
        if code != 0:
            raise bk.BackupError(f"cannot empty volume {t.docker}: {err.strip()[-300:]}")
    code, err = docker.write(bk.write_argv(t.docker, t.image), t.file, timeout)
    if code != 0:
        raise bk.BackupError(f"writing volume {t.docker} failed (exit {code}): {err.strip()[-300:]}")
    log(f"{t.name}: restored into {t.docker}")


def _owner_only(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uname = info.gname = ""  # numeric owners: the image that unpacks it has no /etc/passwd of this host
    return info


def import_directories(store: Store, sources: dict[str, Path], *, label: str | None, keep: int,
                       log: Log, now: float | None = None) -> dict[str, Any]:
    """A backup of this project made of plain directories (volume name → directory, e.g. a volume snapshot mounted
    read-only), restorable like any other; it records no image (the restore takes the release's)."""
    base = bk.private_dir(bk.backups_dir(store))
    backup_id = bk.new_id(base, time.time() if now is None else now)
    partial = bk.private_dir(base / f".{backup_id}.partial")
    records: list[dict[str, Any]] = []
    try:
        for name, directory in sorted(sources.items()):
            sink = Sink(partial / f"{name}.tar")
            try:
                with tarfile.open(fileobj=cast(IO[bytes], _Writer(sink)), mode="w|", format=tarfile.GNU_FORMAT) as tar:
                    tar.add(directory, arcname=".", filter=_owner_only)
            finally:
                sink.close()
            records.append({"name": name, "docker_volume": None, "file": f"{name}.tar", "size": sink.size,
                            "sha256": sink.sha256.hexdigest(), "image": None, "services": [],
                            "directory": str(directory)})
            log(f"{name}: {sink.size} bytes from {directory}, sha256 {sink.sha256.hexdigest()}")
        manifest: dict[str, Any] = {"id": backup_id, "project": store.project, "release": None, "label": label,
                                    "paused": [],
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "volumes": records}
        write_atomic(partial / bk.MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n", 0o600)
        os.rename(partial, base / backup_id)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    manifest["pruned"] = bk.prune(base, keep, [backup_id])
    return manifest


class _Writer:
    """A write-only file object over a Sink (tarfile's stream mode needs only write)."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def write(self, data: bytes) -> int:
        self.sink(bytes(data))
        return len(data)
