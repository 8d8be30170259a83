"""The unit tier's two speeds. A test that starts a process or opens a network socket (a real peer: the MCP SDK's
servers, Prometheus, an HTTP server, a shell running a command builder's output) carries the `live` marker; every
other test runs with both refused, so the fast tier (`make unit`: `-m "not live"`) stays fast by construction."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest.mark.expression import Expression


class LiveTierError(AssertionError):
    """A test without the `live` marker tried to start a process or open a socket."""


def _refuse(what: str) -> Any:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise LiveTierError(f"this test {what}: mark it @pytest.mark.live (tests/unit/conftest.py)")
    return refuse


@pytest.fixture(autouse=True)
def _fast_tier_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if request.node.get_closest_marker("live") is None:
        monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("starts a process"))
        for method in ("connect", "connect_ex", "bind"):
            original = getattr(socket.socket, method)

            def guarded(self: socket.socket, address: Any, _original: Any = original) -> Any:
                if self.family in (socket.AF_INET, socket.AF_INET6):
                    raise LiveTierError("this test opens a network socket: mark it @pytest.mark.live "
                                        "(tests/unit/conftest.py)")
                return _original(self, address)

            monkeypatch.setattr(socket.socket, method, guarded)
    yield


UNIT = Path(__file__).resolve().parent


def _is_live_module(path: Path) -> bool:
    """Unit modules whose every test is live say so in their name (test_validate_live_*.py)."""
    return path.resolve().is_relative_to(UNIT) and path.name.startswith("test_") and "_live" in path.stem


def _only_live(name: str, /, **_kwargs: str | int | bool | None) -> bool:
    return name == "live"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The fast tier does not even import the live-only modules (the MCP SDK, uvicorn and starlette alone take
    a second and a half): when `-m` would deselect a test marked `live`, they are skipped at collection."""
    expr = config.getoption("markexpr")
    if expr and _is_live_module(collection_path) and not Expression.compile(expr).evaluate(_only_live):
        return True
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Hold the naming rule: a module named live holds live tests only."""
    wrong = [i.nodeid for i in items if _is_live_module(Path(str(i.fspath))) and i.get_closest_marker("live") is None]
    if wrong:
        raise pytest.UsageError(f"tests in a *_live* module without the live marker: {', '.join(wrong)}")
