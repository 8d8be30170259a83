"""Backups of a project's named volumes on its host (standard library only).

Layout under <root>/<project>/backups/ (0700 directories, 0600 files):
    <id>/manifest.json      what the backup holds: volumes, sizes, sha256, the release it was taken of, the images
    <id>/<volume>.tar       one tar per named volume (the volume's root as `.`)
    .<id>.partial/          a backup being written: renamed to <id> once whole, removed when it fails
    paused.json             the services a running backup paused; a backup killed meanwhile (SIGKILL) leaves it,
                            and the next backup or restore of the project unpauses them first

A backup is consistent: the running containers that mount the volumes are paused (`compose pause`) while the
volumes are read, and unpaused whatever happens. Each volume is read by a one-shot container of the image that runs
on it (digest-pinned by the release, present on the host; images carry busybox tar): no network, the volume
read-only, never a pull. Every docker argv comes from a builder here (tests/unit/agent/test_backup.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import compose as cc
from agent import containers
from agent.installs import write_atomic
from agent.store import Store
from agent.volume_io import Docker, Sink, shielded

BACKUP_ID = re.compile(r"^(?P<stamp>[0-9]{8}T[0-9]{6}Z)(?:-(?P<n>[0-9]{1,4}))?\Z")
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}\Z")
LABEL_RULE = "1-40 letters, digits, '.', '_' or '-', starting with a letter or digit"
MANIFEST = "manifest.json"
PAUSED = "paused.json"
DEFAULT_KEEP = 7
ONE_SHOT = ("docker", "run", "--rm", "--network", "none", "--user", "0:0", "--pull", "never")
COMPOSE_PROJECT_LABEL, COMPOSE_VOLUME_LABEL = "com.docker.compose.project", "com.docker.compose.volume"


class BackupError(Exception):
    """A backup or restore cannot go on; `code` is the host agent's exit code (1 failed, 2 bad input or refused,
    4 critical: containers may still be paused)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# argv builders (pure) -----------------------------------------------------------------------------------------
def read_argv(volume: str, image: str) -> list[str]:
    """The volume as a tar on stdout: a one-shot container of `image`, no network, the volume read-only."""
    return [*ONE_SHOT, "-v", f"{volume}:/v:ro", "--entrypoint", "tar", image, "-C", "/v", "-cf", "-", "."]


def write_argv(volume: str, image: str) -> list[str]:
    """A tar on stdin unpacked into the volume (owners and modes as recorded: the container runs as root)."""
    return [*ONE_SHOT[:3], "-i", *ONE_SHOT[3:], "-v", f"{volume}:/v", "--entrypoint", "tar", image, "-C", "/v",
            "-xf", "-"]


def entries_argv(volume: str, image: str) -> list[str]:
    """What the volume's root holds, one name a line (nothing: the volume is empty)."""
    return [*ONE_SHOT, "-v", f"{volume}:/v:ro", "--entrypoint", "ls", image, "-A", "/v"]


def clear_argv(volume: str, image: str) -> list[str]:
    """Everything under the volume's root removed (the volume stays): `restore-backup --replace` only, after a
    backup of what was there."""
    return [*ONE_SHOT, "-v", f"{volume}:/v", "--entrypoint", "find", image, "/v", "-mindepth", "1", "-maxdepth", "1",
            "-exec", "rm", "-rf", "{}", "+"]  # busybox find has no -delete


def volume_inspect_argv(volume: str) -> list[str]:
    return ["docker", "volume", "inspect", "--format", "{{json .Labels}}", volume]


def volume_create_argv(project: str, name: str, volume: str) -> list[str]:
    """A volume labelled as compose labels its own, so the project's `up` adopts it without a warning."""
    return ["docker", "volume", "create", "--label", f"{COMPOSE_PROJECT_LABEL}={project}",
            "--label", f"{COMPOSE_VOLUME_LABEL}={name}", volume]


def image_present_argv(image: str) -> list[str]:
    return ["docker", "image", "inspect", "--format", "{{.Id}}", image]


@dataclass(frozen=True)
class VolumeSource:
    """A named volume of a project's release: its compose name, its docker name, who mounts it and their image."""

    name: str
    docker: str
    services: tuple[str, ...]
    image: str | None


def release_volumes(resolved: dict[str, Any], project: str) -> list[VolumeSource]:
    """The named volumes a release's resolved compose config mounts (external ones are not the project's), each
    with the services mounting it and the image of the first of them."""
    declared = resolved.get("volumes") or {}
    mounts: dict[str, list[str]] = {}
    images: dict[str, str] = {}
    for service, spec in sorted((resolved.get("services") or {}).items()):
        images[service] = str(spec.get("image") or "")
        for mount in spec.get("volumes") or ():
            source = str(mount.get("source") or "")
            if mount.get("type") == "volume" and source in declared and not declared[source].get("external"):
                mounts.setdefault(source, []).append(service)
    return [VolumeSource(name, str(declared[name].get("name") or f"{project}_{name}"), tuple(services),
                         images[services[0]] or None)
            for name, services in sorted(mounts.items())]


def current_release(store: Store) -> tuple[str | None, list[VolumeSource], cc.ComposeProject | None]:
    """The project's current release, its named volumes and its compose project (None: no release here)."""
    release = store.pointer("current")
    if release is None or store.run_target() is None:
        return None, [], None
    try:
        resolved = json.loads((store.release_dir(release) / "resolved.json").read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"cannot read release {release}'s resolved config: {exc}") from exc
    files = tuple(store.release_manifest(release).get("compose_files", ["docker-compose.yml"]))
    return release, release_volumes(resolved, store.project), cc.ComposeProject(store.project, store.run_link, files)


# the backups directory ------------------------------------------------------------------------------------------
def backups_dir(store: Store) -> Path:
    return store.base / "backups"


def private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def id_key(backup_id: str) -> tuple[str, int]:
    match = BACKUP_ID.match(backup_id)
    return (match.group("stamp"), int(match.group("n") or 1)) if match else ("", 0)


def backup_ids(base: Path) -> list[str]:
    """The project's whole backups, oldest first (ids are UTC times, a second in the same second gets `-2`)."""
    if not base.is_dir():
        return []
    return sorted((p.name for p in base.iterdir() if p.is_dir() and BACKUP_ID.match(p.name)
                   and (p / MANIFEST).is_file()), key=id_key)


def new_id(base: Path, now: float) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    taken = {p.name.strip(".").removesuffix(".partial") for p in base.iterdir()} if base.is_dir() else set()
    n = 1
    while (candidate := stamp if n == 1 else f"{stamp}-{n}") in taken:
        n += 1
    return candidate


def read_manifest(base: Path, backup_id: str) -> dict[str, Any]:
    if not BACKUP_ID.match(backup_id) or not (base / backup_id / MANIFEST).is_file():
        known = ", ".join(backup_ids(base)[-5:]) or "none"
        raise BackupError(f"no backup {backup_id!r} in {base} (newest: {known}); `hostagent backups` lists them", 2)
    data: dict[str, Any] = json.loads((base / backup_id / MANIFEST).read_text())
    return data


def prune(base: Path, keep: int, spare: Sequence[str]) -> list[str]:
    """Remove the oldest backups beyond `keep`, never one of `spare` (the one just written, one being restored)."""
    ids = backup_ids(base)
    doomed = [b for b in ids[:max(0, len(ids) - keep)] if b not in spare]
    for backup_id in doomed:
        shutil.rmtree(base / backup_id)
    return doomed


def unpause_leftovers(store: Store, docker: Docker, log: Callable[[str], None]) -> None:
    """Unpause what a killed backup paused (its paused.json is still there)."""
    marker = backups_dir(store) / PAUSED
    if not marker.is_file():
        return
    left = json.loads(marker.read_text())
    project = cc.ComposeProject(store.project, Path(left["directory"]), tuple(left["files"]))
    code, _out, err = docker.run(cc.unpause(project, left["services"]), 120)
    if code != 0 and "is not paused" not in err:
        raise BackupError(f"services {', '.join(left['services'])} of project {store.project} were left paused by "
                          f"a backup that did not finish, and unpausing them failed: {err.strip()[-300:]}", 4)
    marker.unlink()
    store.audit("backup.unpaused", services=left["services"], reason="left paused by a backup that did not finish")
    log(f"unpaused {', '.join(left['services'])}: a backup that did not finish had left them paused")


def running_services(store: Store, docker: Docker, services: set[str]) -> list[str]:
    """Those of `services` whose container of this project runs now (a stopped one needs no pause)."""
    try:
        inspected, _errors = containers.inspect_project(store.project, lambda argv: docker.run(argv, 60))
    except containers.ContainersError as exc:
        raise BackupError(f"cannot list project {store.project}'s containers: {exc}") from exc
    return sorted({containers.service_of(c) for c in inspected if containers.service_of(c) in services
                   and (c.get("State") or {}).get("Running") and not (c.get("State") or {}).get("Paused")})


def take_backup(store: Store, docker: Docker, volumes: Sequence[VolumeSource], *, release: str | None,
                compose: cc.ComposeProject | None, label: str | None, keep: int, timeout: float,
                log: Callable[[str], None], now: float | None = None, spare: Sequence[str] = ()) -> dict[str, Any]:
    """Write one backup of `volumes` (the caller holds the project's lock); returns its manifest. Retention keeps
    the newest `keep`, never this one nor those of `spare`."""
    base = private_dir(backups_dir(store))
    for stale in base.glob(".*.partial"):
        shutil.rmtree(stale)  # a backup killed mid-way (under the lock we hold, none runs now)
    unpause_leftovers(store, docker, log)
    for v in volumes:
        if v.image is None:
            raise BackupError(f"volume {v.docker}: no image to read it with", 2)
        if docker.run(volume_inspect_argv(v.docker), 60)[0] != 0:
            raise BackupError(f"volume {v.docker} of project {store.project} does not exist on this host's engine")
    backup_id = new_id(base, time.time() if now is None else now)
    partial = private_dir(base / f".{backup_id}.partial")
    try:
        pause = running_services(store, docker, {s for v in volumes for s in v.services}) if compose else []
        records = _read_paused(store, docker, volumes, partial=partial, compose=compose, pause=pause,
                               timeout=timeout, log=log)
        manifest = {"id": backup_id, "project": store.project, "release": release, "label": label,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "paused": pause,
                    "volumes": records}
        write_atomic(partial / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n", 0o600)
        os.rename(partial, base / backup_id)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    manifest["pruned"] = prune(base, keep, [backup_id, *spare])
    return manifest


def _read_paused(store: Store, docker: Docker, volumes: Sequence[VolumeSource], *, partial: Path,
                 compose: cc.ComposeProject | None, pause: list[str], timeout: float,
                 log: Callable[[str], None]) -> list[dict[str, Any]]:
    marker = backups_dir(store) / PAUSED
    if compose is not None and pause:
        write_atomic(marker, json.dumps({"services": pause, "directory": str(compose.directory),
                                         "files": list(compose.files)}) + "\n", 0o600)
        code, _out, err = docker.run(cc.pause(compose, pause), 120)
        if code != 0:
            docker.run(cc.unpause(compose, pause), 120)
            marker.unlink(missing_ok=True)
            raise BackupError(f"compose pause {' '.join(pause)} failed: {err.strip()[-300:]}")
        log(f"paused {', '.join(pause)}")
    t0 = time.monotonic()
    try:
        records = [_read_volume(docker, v, partial, timeout, log) for v in volumes]
    finally:
        if compose is not None and pause:
            with shielded():
                code, _out, err = docker.run(cc.unpause(compose, pause), 120)
            if code != 0:
                raise BackupError(f"compose unpause {' '.join(pause)} failed, they are still paused: "
                                  f"{err.strip()[-300:]}; the next `hostagent --project {store.project} backup` "
                                  "unpauses them first", 4)
            marker.unlink(missing_ok=True)
            log(f"unpaused {', '.join(pause)} after {time.monotonic() - t0:.1f}s")
    return records


def _read_volume(docker: Docker, v: VolumeSource, partial: Path, timeout: float,
                 log: Callable[[str], None]) -> dict[str, Any]:
    assert v.image is not None
    sink = Sink(partial / f"{v.name}.tar")
    try:
        code, err = docker.read(read_argv(v.docker, v.image), sink, timeout)
    finally:
        sink.close()
    if code != 0:
        raise BackupError(f"reading volume {v.docker} failed (exit {code}): {err.strip()[-300:]}")
    log(f"{v.name}: {sink.size} bytes, sha256 {sink.sha256.hexdigest()}")
    return {"name": v.name, "docker_volume": v.docker, "file": f"{v.name}.tar", "size": sink.size,
            "sha256": sink.sha256.hexdigest(), "image": v.image, "services": list(v.services)}
