"""The example agents' trace (examples/app/common/trace.sh) reaches the Langfuse stand-in: the real handler.sh run
by busybox on one request, as `nc -e` runs it in the image; BROKEN=notrace sends none; an outage costs the probe's
answer nothing."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from standin.langfuse import serve
from tests.prometheus_process import free_port

pytestmark = pytest.mark.live  # real processes and sockets (tests/unit/conftest.py)

APP = Path(__file__).resolve().parents[3] / "examples" / "app"
BUSYBOX = Path("/bin/busybox")
KEYS = ("pk-lf-example", "sk-lf-example")
REQUEST = b"POST /e2e HTTP/1.1\r\nHost: agent\r\nContent-Length: 2\r\n\r\n{}"


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """An APP_HOME and a PATH of busybox applets laid out as the image has them."""
    if not BUSYBOX.exists():
        pytest.skip("busybox-static is not installed (scripts/local-env.sh installs it)")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "common").symlink_to(APP / "common")
    (tmp_path / "app" / "service").symlink_to(APP / "services" / "cicd")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        (bin_dir / applet).symlink_to(BUSYBOX)
    return tmp_path


@pytest.fixture
def langfuse() -> Iterator[str]:
    servers = serve(["127.0.0.1"], 0, KEYS)
    yield f"http://127.0.0.1:{servers[0].server_address[1]}"
    servers[0].shutdown()
    servers[0].server_close()


def probe(image: Path, host: str, broken: str = "none") -> tuple[str, float]:
    env = {"PATH": str(image / "bin"), "APP_HOME": str(image / "app"), "SERVICE_NAME": "cicd",
           "DEVTOOLS_BROKEN": broken, "LANGFUSE_HOST": host, "LANGFUSE_PUBLIC_KEY": KEYS[0],
           "LANGFUSE_SECRET_KEY": KEYS[1], "STATE_URL": f"http://127.0.0.1:{free_port()}"}
    started = time.monotonic()
    proc = subprocess.run([str(image / "bin" / "sh"), str(image / "app" / "common" / "handler.sh")], input=REQUEST,
                          env=env, capture_output=True, timeout=20, check=False)
    return proc.stdout.decode(errors="replace"), time.monotonic() - started


def traces(host: str) -> list[dict[str, object]]:
    answer = httpx.get(f"{host}/api/public/traces", params={"tags": ["devtools-e2e", "agent:cicd"]}, auth=KEYS)
    assert answer.status_code == 200
    return list(answer.json()["data"])


def test_a_probe_sends_one_trace_tagged_with_its_agent(image: Path, langfuse: str) -> None:
    answer, _ = probe(image, langfuse)
    assert answer.startswith("HTTP/1.1 503")  # no state service here: the answer is the probe's own
    [trace] = traces(langfuse)
    assert trace["name"] == "e2e-probe"
    assert trace["tags"] == ["agent:cicd", "devtools-e2e"]


def test_notrace_sends_none(image: Path, langfuse: str) -> None:
    answer, _ = probe(image, langfuse, broken="notrace")
    assert answer.startswith("HTTP/1.1 503")
    assert traces(langfuse) == []


def test_langfuse_down_does_not_change_the_answer(image: Path) -> None:
    answer, took = probe(image, f"http://127.0.0.1:{free_port()}")
    assert answer.startswith("HTTP/1.1 503") and '"agent":"cicd"' in answer
    assert took < 10
