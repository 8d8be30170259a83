"""A scripted host for the rollout's state machine: a fake `Runner` that answers docker, compose and validator
commands from a script (no process, no socket), a fake clock whose sleep only moves time, and a fake debug bundle.

Every command is recorded as (step, release): `info`, `config`, `pull`, `run` (a migration), `up`, `ps`, `logs`,
`validate`, `rm`, `net-inspect`, `net-create`, `stop` (a container), `cosign` (a signature verified).
The release is the one the command addresses: the directory compose is pointed at (the `run` link resolves to
the release it points at when the command runs), the validator's `release=` label, the image cosign verifies,
or None.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.rollout import Options, Outcome, Rollout
from agent.store import Store

DIGEST = "sha256:" + "a" * 64


def bundle(tmp: Path, release_id: str, services: Sequence[str] = ("api", "web"),
           signing: Mapping[str, object] | None = None) -> Path:
    """A release bundle as the upload leaves it: release.json pinning every service by digest + compose file
    (+ the `signing` section when given)."""
    path = tmp / "incoming" / release_id
    path.mkdir(parents=True)
    (path / "docker-compose.yml").write_text("services: {}\n")
    images = {s: f"registry.example/{s}-{release_id}@{DIGEST}" for s in services}
    manifest = {"id": release_id, "images": images, "compose_files": ["docker-compose.yml"]}
    (path / "release.json").write_text(json.dumps({**manifest, **({"signing": signing} if signing else {})}))
    return path


Reply = int | BaseException | Callable[[list[str]], "subprocess.CompletedProcess[str]"]
"""An exit status (stdout from `Host.stdout`), an exception to raise, or a function of the argv."""


def exited(code: int, stdout: str = "", stderr: str = "") -> Callable[[list[str]], subprocess.CompletedProcess[str]]:
    return lambda argv: subprocess.CompletedProcess(argv, code, stdout, stderr)


def timeout(argv: str = "docker", seconds: float = 1.0) -> subprocess.TimeoutExpired:
    return subprocess.TimeoutExpired([argv], seconds)


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Host:
    """The fake runner. `script[(step, release)]` (or `(step, None)` for any release) lists replies consumed in
    order; when it is empty or absent, `always[step]` answers, else the command succeeds with `stdout[step]`."""

    store: Store
    script: dict[tuple[str, str | None], list[Reply]] = field(default_factory=dict)
    stdout: Mapping[str, str] = field(default_factory=lambda: {"config": '{"services": {}}\n', "info": "27.5.1\n"})
    always: dict[str, Reply] = field(default_factory=dict)
    calls: list[tuple[str, str | None]] = field(default_factory=list)
    argvs: list[list[str]] = field(default_factory=list)
    envs: list[Mapping[str, str] | None] = field(default_factory=list)
    timeouts: list[float] = field(default_factory=list)

    def on(self, step: str, release: str | None, *replies: Reply) -> Host:
        self.script.setdefault((step, release), []).extend(replies)
        return self

    def __call__(self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        step, release = self.classify(argv)
        self.calls.append((step, release))
        self.argvs.append(argv)
        self.envs.append(env)
        self.timeouts.append(timeout)
        queue = self.script.get((step, release)) or self.script.get((step, None)) or []
        reply: Reply = queue.pop(0) if queue else self.always.get(step, 0)
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, int):
            return subprocess.CompletedProcess(argv, reply, self.stdout.get(step, ""), "")
        return reply(argv)

    def classify(self, argv: list[str]) -> tuple[str, str | None]:
        plain = {("docker", "info"): "info", ("docker", "image", "rm"): "rm", ("docker", "container", "stop"): "stop",
                 ("docker", "network", "inspect"): "net-inspect", ("docker", "network", "create"): "net-create"}
        step = plain.get(tuple(argv[:2])) or plain.get(tuple(argv[:3]))
        if step is not None:
            return step, None
        if argv[0].endswith("cosign"):
            return "cosign", argv[-1]  # the image reference verified
        if argv[1:3] == ["-m", "agent.validate"]:
            labels = [argv[i + 1] for i, a in enumerate(argv) if a == "--label"]
            return "validate", next(v.split("=", 1)[1] for v in labels if v.startswith("release="))
        assert argv[:2] == ["docker", "compose"], argv
        directory = Path(argv[argv.index("--project-directory") + 1])
        verb = argv[argv.index("--env-file") + 2]
        release = self.store.run_target() if directory == self.store.run_link else directory.name
        return verb, release


@dataclass
class Rig:
    """One project on a fake host: the store, the runner, the clock, the operator log and the debug bundles."""

    tmp: Path
    store: Store
    host: Host
    clock: Clock = field(default_factory=Clock)
    logged: list[str] = field(default_factory=list)
    bundles: list[tuple[str, list[str] | None]] = field(default_factory=list)
    bundle_secrets: list[dict[str, str]] = field(default_factory=list)
    seen: int = 0

    def rollout(self, opts: Options | None = None, job: str = "j1") -> Rollout:
        return Rollout(self.store, opts or Options(), self.logged.append, job=job, runner=self.host,
                       clock=self.clock, sleep=self.clock.sleep, now=self.clock, diagnose=self.diagnose)

    def diagnose(self, project: str, out: Path, services: list[str] | None, lines: int,
                 secrets: Mapping[str, str]) -> Path:
        self.bundles.append((out.name, services))
        self.bundle_secrets.append(dict(secrets))
        return out

    def apply(self, release_id: str, opts: Options | None = None) -> str:
        return self.rollout(opts).apply(bundle(self.tmp, release_id))

    def events(self) -> list[str]:
        return [e["event"] for e in self.store.audit_entries()]

    def forget(self) -> None:
        """Start a fresh record of calls, log lines and audit events (the audit file itself is kept)."""
        self.host.calls.clear()
        self.host.argvs.clear()
        self.host.envs.clear()
        self.logged.clear()
        self.bundles.clear()
        self.seen = len(self.store.audit_entries())

    def new_events(self) -> list[str]:
        return self.events()[self.seen:]


def rig(tmp: Path, store: Store | None = None) -> Rig:
    store = store or Store(tmp / "root", "green")
    store.ensure()
    return Rig(tmp, store, Host(store))


UNHEALTHY_PS = '{"Service":"api","State":"running","Health":"unhealthy"}\n{"Service":"web","State":"running"}\n'


def serving(tmp: Path, *releases: str) -> Rig:
    """A host that applied `releases` one after another; records start afresh."""
    r = rig(tmp)
    for release_id in releases:
        r.apply(release_id)
    r.forget()
    return r


def state(r: Rig) -> tuple[str | None, str | None, str | None, object]:
    """current, previous, where `run` points, pending.json."""
    s = r.store
    return s.pointer("current"), s.pointer("previous"), s.run_target(), s.read_pending()


def failing(r: Rig, release_id: str, code: int) -> str:
    """Apply `release_id`, expecting it to end with exit `code`; returns the operator's message."""
    with pytest.raises(Outcome) as caught:
        r.apply(release_id)
    assert caught.value.code == code, caught.value.message
    return caught.value.message
