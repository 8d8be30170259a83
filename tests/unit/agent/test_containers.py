"""agent.containers: the one way to list and inspect a compose project's containers, exact argv and outcomes, and
proof that `hostagent status` and `agent.diagnose` both go through it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent import containers, status
from agent.diagnose import collect as diagnose
from agent.store import Store

CONTAINER = {
    "Id": "c0ffee" * 10 + "abcd", "Name": "/green-cicd-1", "Image": "sha256:" + "c" * 64,
    "Config": {"Image": "reg/cicd@sha256:" + "d" * 64, "Labels": {containers.SERVICE_LABEL: "cicd"}},
    "State": {"Status": "exited", "Running": False},
}  # fmt: skip


def test_compose_label_names():
    """Docker compose's own label names: a typo here lists no container at all, in status and in diagnose."""
    assert containers.PROJECT_LABEL == "com.docker.compose.project"
    assert containers.SERVICE_LABEL == "com.docker.compose.service"


def test_argv_builders():
    assert containers.ps_argv("devtools") == [
        "docker", "ps", "--all", "--quiet", "--no-trunc", "--filter", "label=com.docker.compose.project=devtools",
    ]  # fmt: skip
    assert containers.inspect_argv(["a1", "b2"]) == ["docker", "container", "inspect", "a1", "b2"]


def test_service_of_reads_the_compose_service_label():
    assert containers.service_of(CONTAINER) == "cicd"
    assert containers.service_of({"Config": {"Labels": None}}) == ""
    assert containers.service_of({}) == ""


class Docker:
    """A scripted `run`: answers by the argv's first words and records every call."""

    def __init__(self, **answers: tuple[int, str, str]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        self.calls.append(argv)
        return self.answers[argv[1] if argv[1] != "container" else argv[2]]


def test_inspect_project_lists_then_inspects_every_id():
    docker = Docker(ps=(0, "id1\nid2\n", ""), inspect=(0, json.dumps([CONTAINER, "junk"]), ""))
    assert containers.inspect_project("green", docker) == ([CONTAINER], [])
    assert docker.calls == [containers.ps_argv("green"), containers.inspect_argv(["id1", "id2"])]


def test_inspect_project_without_containers_inspects_nothing():
    docker = Docker(ps=(0, "\n", ""))
    assert containers.inspect_project("green", docker) == ([], [])
    assert docker.calls == [containers.ps_argv("green")]


def test_inspect_project_raises_only_when_docker_cannot_list():
    """No daemon: the caller must say so (status: an `error`; diagnose: exit 1), not report an empty project."""
    with pytest.raises(containers.ContainersError, match=r"^Cannot connect to the Docker daemon$"):
        containers.inspect_project("green", Docker(ps=(1, "", "Cannot connect to the Docker daemon")))


@pytest.mark.parametrize(("inspect", "expected"), [
    # a container removed since `ps`: docker prints the others and exits 1
    ((1, json.dumps([CONTAINER]), "Error: No such container: id2"), ([CONTAINER], ["Error: No such container: id2"])),
    ((0, "{not json", ""), ([], ["cannot read docker container inspect output: Expecting property name enclosed in "
                                 "double quotes: line 1 column 2 (char 1)"])),
    ((0, "7", ""), ([], ["cannot read docker container inspect output: 'int' object is not iterable"])),
])
def test_inspect_project_keeps_what_it_could_read(inspect, expected):
    assert containers.inspect_project("green", Docker(ps=(0, "id1 id2", ""), inspect=inspect)) == expected


def _docker_binary(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """subprocess.run answering like docker for one exited container; no process is started."""
    calls: list[list[str]] = []
    out = {"ps": b"id1\n", "container": json.dumps([CONTAINER]).encode(), "image": b"[]", "logs": b""}

    def run(argv: list[str], **_kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, out[argv[1]], b"")

    monkeypatch.setattr(subprocess, "run", run)
    return calls


def test_status_and_diagnose_list_a_project_the_same_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Both read the project's containers through agent.containers: had either its own `docker ps`, a filter
    or flag changed in one would make `hostagent status` and a diagnostics bundle disagree about what runs."""
    calls = _docker_binary(monkeypatch)
    report = status.status(Store(tmp_path, "green"))
    assert list(report["services"]) == ["cicd"] and "error" not in report
    from_status, calls[:] = calls[:], []
    bundle = diagnose.collect("green")
    assert [c.service for c in bundle.containers] == ["cicd"]
    assert from_status == calls[:2] == [containers.ps_argv("green"), containers.inspect_argv(["id1"])]


def test_status_names_what_it_could_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def run(argv: list[str], **_kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        return subprocess.CompletedProcess(argv, 1, b"", b"Cannot connect to the Docker daemon")

    monkeypatch.setattr(subprocess, "run", run)
    report = status.status(Store(tmp_path, "green"))
    assert (report["services"], report["error"]) == ({}, "cannot read containers: Cannot connect to the Docker daemon")


def test_status_says_which_services_the_current_release_declares(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A tier's release declares only its tier's services (what ops.drift compares the project with); unknown
    (None) without a current release or its resolved config."""
    _docker_binary(monkeypatch)
    store = Store(tmp_path, "data")
    store.ensure()
    assert status.status(store)["declared"] is None
    store.release_dir("r1").mkdir(parents=True)
    (store.release_dir("r1") / "release.json").write_text('{"id": "r1", "images": {}}')
    store.set_pointer("current", "r1")
    assert status.status(store)["declared"] is None
    (store.release_dir("r1") / "resolved.json").write_text(json.dumps({"services": {"state-persistence": {},
                                                                                    "rag-context": {}}}))
    assert status.status(store)["declared"] == ["rag-context", "state-persistence"]


def test_status_reports_the_images_of_every_release_the_host_may_switch_to(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch):
    """ops.cli registry-gc keeps these in the registry: current and previous (a `rollback` pulls nothing only while
    the images are still on the host), the active run and a pending one; an older kept release is not asked for."""
    _docker_binary(monkeypatch)
    store = Store(tmp_path, "green")
    store.ensure()
    for rid in ("r1", "r2", "r3", "r4"):
        store.release_dir(rid).mkdir(parents=True)
        (store.release_dir(rid) / "release.json").write_text(json.dumps(
            {"id": rid, "images": {"cicd": f"reg/cicd@sha256:{rid[-1] * 64}", "api": f"reg/api@sha256:{'a' * 64}"}}))
    store.set_pointer("previous", "r2")
    store.set_pointer("current", "r3")
    store.write_pending({"release": "r4"})
    report = status.status(store)
    assert report["release_images"] == {
        rid: {"api": f"reg/api@sha256:{'a' * 64}", "cicd": f"reg/cicd@sha256:{rid[-1] * 64}"}
        for rid in ("r2", "r3", "r4")}
    assert list(report["release_images"]["r3"]) == ["api", "cicd"]
