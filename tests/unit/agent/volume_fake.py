"""A docker engine in memory for agent.backup and agent.restore (no process, no socket): named volumes holding
files, the images present, a compose project's containers with their running/paused state. It answers the argv
the builders make, records every one, and fails the commands a test names.

    engine = Engine(volumes={"data_state-data": {"records.jsonl": b"{}\\n"}}, images={IMAGE})
    engine.containers["state-persistence"] = "running"
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from agent.store import Store

DIGEST = "sha256:" + "b" * 64
STATE_IMAGE = f"127.0.0.1:5000/devtools/state-persistence@{DIGEST}"
RAG_IMAGE = f"127.0.0.1:5000/devtools/rag-context@{DIGEST}"


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        root = tarfile.TarInfo("./")  # busybox tar writes the volume's root first
        root.type = tarfile.DIRTYPE
        tar.addfile(root)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def files_of(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name.removeprefix("./"): tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers() if m.isfile()}


@dataclass
class Engine:
    project: str = "data"
    volumes: dict[str, dict[str, bytes]] = field(default_factory=dict)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    images: set[str] = field(default_factory=lambda: {STATE_IMAGE, RAG_IMAGE})
    containers: dict[str, str] = field(default_factory=dict)  # service → running | paused | exited
    fail: dict[str, tuple[int, str]] = field(default_factory=dict)  # a word of the argv → (exit code, stderr)
    calls: list[list[str]] = field(default_factory=list)
    during_read: Callable[[], None] | None = None

    def _failure(self, argv: Sequence[str]) -> tuple[int, str] | None:
        joined = " ".join(argv)
        return next((v for k, v in self.fail.items() if k in joined), None)

    def run(self, argv: Sequence[str], timeout: float) -> tuple[int, str, str]:
        argv = list(argv)
        self.calls.append(argv)
        if (failure := self._failure(argv)) is not None:
            return failure[0], "", failure[1]
        answer = {("docker", "volume", "inspect"): self._volume_inspect, ("docker", "volume", "create"): self._create,
                  ("docker", "image", "inspect"): self._image, ("docker", "ps", "--all"): self._ps,
                  ("docker", "container", "inspect"): self._container_inspect,
                  ("docker", "compose", "--project-name"): self._compose,
                  ("docker", "run", "--rm"): self._one_shot}.get((argv[0], argv[1], argv[2]))
        if answer is None:
            raise AssertionError(f"the fake engine does not know {argv}")
        return answer(argv)

    def _volume_inspect(self, argv: list[str]) -> tuple[int, str, str]:
        if argv[-1] in self.volumes:
            return 0, json.dumps(self.labels.get(argv[-1], {})), ""
        return 1, "", f"Error response from daemon: get {argv[-1]}: no such volume"

    def _create(self, argv: list[str]) -> tuple[int, str, str]:
        self.volumes[argv[-1]] = {}
        self.labels[argv[-1]] = dict(a.split("=", 1) for a in argv[4:-1:2])
        return 0, argv[-1] + "\n", ""

    def _image(self, argv: list[str]) -> tuple[int, str, str]:
        return (0, "sha256:x\n", "") if argv[-1] in self.images else (1, "", f"No such image: {argv[-1]}")

    def _ps(self, _argv: list[str]) -> tuple[int, str, str]:
        return 0, "".join(f"id-{s}\n" for s in self.containers), ""

    def _container_inspect(self, argv: list[str]) -> tuple[int, str, str]:
        return 0, json.dumps([self._inspect(i.removeprefix("id-")) for i in argv[3:]]), ""

    def _one_shot(self, argv: list[str]) -> tuple[int, str, str]:
        volume = self._volume(argv)
        if "ls" in argv:
            return 0, "".join(f"{name.split('/')[0]}\n" for name in sorted(self.volumes[volume])), ""
        assert "find" in argv, argv
        self.volumes[volume] = {}
        return 0, "", ""

    def _inspect(self, service: str) -> dict[str, Any]:
        state = self.containers[service]
        return {"Name": f"/{self.project}-{service}-1",
                "Config": {"Labels": {"com.docker.compose.project": self.project,
                                      "com.docker.compose.service": service}},
                "State": {"Status": state, "Running": state in ("running", "paused"), "Paused": state == "paused"}}

    def _compose(self, argv: list[str]) -> tuple[int, str, str]:
        verb = next(a for a in ("pause", "unpause", "stop", "start") if a in argv)
        services = [a for a in argv[argv.index(verb) + 1:] if a in self.containers]
        self.containers.update({s: {"pause": "paused", "unpause": "running", "stop": "exited",
                                    "start": "running"}[verb] for s in services})
        return 0, "", ""

    @staticmethod
    def _volume(argv: list[str]) -> str:
        return argv[argv.index("-v") + 1].split(":", 1)[0]

    def read(self, argv: Sequence[str], sink: Callable[[bytes], None], timeout: float) -> tuple[int, str]:
        argv = list(argv)
        self.calls.append(argv)
        if self.during_read is not None:
            self.during_read()
        if (failure := self._failure(argv)) is not None:
            sink(b"partial")
            return failure
        data = tar_of(self.volumes[self._volume(argv)])
        sink(data[:100])
        sink(data[100:])
        return 0, ""

    def write(self, argv: Sequence[str], source: IO[bytes], timeout: float) -> tuple[int, str]:
        argv = list(argv)
        self.calls.append(argv)
        if (failure := self._failure(argv)) is not None:
            return failure
        self.volumes[self._volume(argv)].update(files_of(source.read()))
        return 0, ""

    def verbs(self) -> list[str]:
        """Each call in short: `pause state-persistence`, `read data_state-data`, `create x`, ..."""
        out = []
        for argv in self.calls:
            if argv[:2] == ["docker", "compose"]:
                verb = next(a for a in ("pause", "unpause", "stop", "start") if a in argv)
                out.append(" ".join([verb, *argv[argv.index(verb) + 1:]]).replace("--timeout 30 ", ""))
            elif argv[:2] == ["docker", "run"]:
                kind = argv[argv.index("--entrypoint") + 1]
                what = {"tar": "read" if "-cf" in argv else "write", "ls": "list", "find": "clear"}[kind]
                out.append(f"{what} {self._volume(argv)}")
            elif argv[:3] == ["docker", "volume", "create"]:
                out.append(f"create {argv[-1]}")
        return out


RESOLVED = {
    "name": "data",
    "services": {
        "rag-context": {"image": RAG_IMAGE, "volumes": [{"type": "volume", "source": "rag-index", "target": "/data"}]},
        "state-persistence": {"image": STATE_IMAGE, "volumes": [
            {"type": "volume", "source": "state-data", "target": "/data"},
            {"type": "bind", "source": "/etc/hosts", "target": "/x"}]},
    },
    "volumes": {"rag-index": {"name": "data_rag-index"}, "state-data": {"name": "data_state-data"},
                "shared": {"name": "shared", "external": True}},
}


def with_release(root: Path, project: str, release: str = "r1", resolved: dict[str, Any] | None = None) -> Store:
    """A project whose current release `release` (running from `run`) has the given resolved compose config."""
    store = Store(root, project)
    store.ensure()
    target = store.release_dir(release)
    target.mkdir(parents=True)
    text = json.dumps(resolved or RESOLVED).replace('"data_', f'"{project}_')
    (target / "resolved.json").write_text(text)
    (target / "release.json").write_text(json.dumps({"id": release, "compose_files": ["docker-compose.yml"]}))
    store.point_run_at(release)
    store.set_pointer("current", release)
    return store
