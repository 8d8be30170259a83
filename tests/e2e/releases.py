"""Release fixtures for the e2e tests: a baseline release and variants of it (changed, broken, missing)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from standin import localenv
from tests.e2e.conftest import ROOT, Host, build_release, compose_exec

FAST = ("--validate-deadline", "20", "--wait-timeout", "40")
"""The short deadlines the e2e applies run with."""


def changed_app(tmp: Path, service: str, note: str) -> Path:
    """A copy of the example application with one service's source changed."""
    app = tmp / f"app-{service}-{note}"
    shutil.copytree(ROOT / "examples" / "app", app, ignore=shutil.ignore_patterns("vendor"))
    with open(app / "services" / service / "service.conf", "a", encoding="utf-8") as fh:
        fh.write(f"# change {note}\n")
    return app


def variant(env: localenv.LocalEnv, base: dict[str, Any], release_id: str, service: str, *build_args: str,
            app_root: Path | None = None) -> dict[str, Any]:
    """Base pins with one service rebuilt (from changed source, or broken with --broken SERVICE=VARIANT)."""
    built = build_release(env, release_id, "--services", service, *build_args, app_root=app_root)
    return {**base, "release": release_id, "images": {**base["images"], service: built["images"][service]}}


def drop_local_images(pins: dict[str, Any], services: list[str]) -> None:
    """Forget images locally so the host has to pull them (the builder and the stand-in share one engine)."""
    for service in services:
        ref = pins["images"][service]
        repo = ref.split("@", 1)[0]
        tags = subprocess.run(["docker", "image", "inspect", "--format", "{{json .RepoTags}}", ref],
                              capture_output=True, text=True, check=False).stdout.strip()
        refs = [ref, *[t for t in (tags.strip("[]").replace('"', "").split(",")) if t.startswith(repo)]]
        for r in refs:
            subprocess.run(["docker", "image", "rm", r], capture_output=True, check=False)


@dataclass
class Serving:
    """What the e2e project should be running right now (faults must leave it so)."""

    host: Host
    project: str
    prefix: str
    pins: dict[str, Any]
    marker: str = field(default_factory=lambda: f"marker-{uuid.uuid4().hex[:8]}")
    public_keys: tuple[Path, ...] = ()  # the cosign public keys every apply requires signatures by

    @classmethod
    def started(cls, env: localenv.LocalEnv, host: Host, project: str, prefix: str, base: str) -> Serving:
        """A baseline release `base` built, applied to `project` on ports `prefix`xx, a marker written into its
        data, serving."""
        pins = build_release(env, base)
        s = cls(host, project, prefix, pins)
        proc = s.ship(pins)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        s.write_marker()
        s.assert_serving()
        return s

    def ship(self, pins: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
        """Apply `pins` to this project (its port prefix, the short deadlines, then `args`)."""
        return self.host.ship(pins, self.project, *FAST, *args, env={"HOST_PORT_PREFIX": self.prefix},
                              public_keys=self.public_keys)

    def url(self, port_suffix: str = "00") -> str:
        return f"http://127.0.0.1:{self.prefix}{port_suffix}"

    def assert_serving(self) -> None:
        """The recorded release runs: every service healthy on its pinned digest, data intact, gateway up."""
        status = self.host.status(self.project)
        assert status["current"] == self.pins["release"], status
        assert status["pending"] is None
        assert status["active"] == self.pins["release"]
        for service, ref in self.pins["images"].items():
            running = status["services"][service]
            assert running["image"] == ref, (service, running)
            assert (running["state"], running["health"]) == ("running", "healthy"), (service, running)
        data = compose_exec(self.project, "state-persistence", "cat /data/marker")
        assert data.stdout.strip() == self.marker, data
        health = httpx.get(self.url() + "/health", timeout=5)
        assert health.status_code == 200, health.text

    def write_marker(self) -> None:
        proc = compose_exec(self.project, "state-persistence", f"echo {self.marker} > /data/marker")
        assert proc.returncode == 0, proc.stderr

    def last_events(self, since: int) -> list[str]:
        return [e["event"] for e in self.host.audit(self.project)[since:]]
