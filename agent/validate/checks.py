"""How a check runs: attempts with a per-attempt timeout, exponential backoff, one shared deadline.

A check is a named probe. A probe returns what it saw (`Seen`) on a pass and raises on anything else; `NotYet`
carries a readable reason. Every check runs concurrently with the others until it passes or the deadline
comes, and then reports the last thing it saw.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from agent.validate.report import CheckResult

FINAL_ATTEMPT_S = 0.25
EXCERPT_CHARS = 120


class NotYet(Exception):
    """The probe got an answer, but not a passing one; `data` keeps what it measured."""

    def __init__(self, reason: str, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.data: Mapping[str, Any] = data or {}


@dataclass(frozen=True)
class Seen:
    detail: str
    data: Mapping[str, Any] = field(default_factory=dict)


Probe = Callable[[], Awaitable[Seen]]


@dataclass(frozen=True)
class Check:
    name: str
    service: str
    phase: str
    target: str
    probe: Probe


@dataclass(frozen=True)
class Backoff:
    first_s: float = 0.25
    factor: float = 2.0
    cap_s: float = 2.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return min(self.cap_s, self.first_s * self.factor ** (attempt - 1))


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _root_os_error(exc: BaseException) -> str:
    """The innermost OS error's text (e.g. "Connection refused") behind a wrapped connect error."""
    found = ""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            found = os.strerror(current.errno)
        current = current.__cause__ or current.__context__
    return found


def describe(exc: BaseException, limit_s: float, at_deadline: bool = False) -> str:
    """A one-line reason for a failed attempt."""
    if isinstance(exc, NotYet):
        return str(exc)
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"timed out after {limit_s:.2f}s" + (" at the deadline" if at_deadline else "")
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {_root_os_error(exc) or exc or 'connection failed'}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def run_check(check: Check, *, timeout: float, deadline: float, backoff: Backoff) -> CheckResult:
    """Attempt `check` until it passes or the monotonic `deadline` comes.

    A retry happens only when at least `min(timeout, FINAL_ATTEMPT_S)` remains after the pause, so the last
    reason reported is a real answer rather than an attempt cut to a few milliseconds.
    """
    started = time.monotonic()
    floor = min(timeout, FINAL_ATTEMPT_S)
    attempts = 0
    last = "not attempted: the deadline had already passed"
    data: Mapping[str, Any] = {}
    answered = False  # an attempt ended with a real answer (not cut short by the deadline)
    while (remaining := deadline - time.monotonic()) > 0:
        attempts += 1
        limit = min(timeout, remaining)
        try:
            async with asyncio.timeout(limit):
                seen = await check.probe()
        except Exception as exc:
            cut = isinstance(exc, TimeoutError) and limit < timeout
            if cut and answered:
                continue  # the deadline cut a retry short (a busy host): the earlier real answer is the reason
            last = describe(exc, limit, at_deadline=cut)
            data = exc.data if isinstance(exc, NotYet) else {}
            answered = answered or not cut
        else:
            return _result(check, attempts, started, seen.detail, seen.data, passed=True)
        pause = min(backoff.delay(attempts), deadline - time.monotonic() - floor)
        if pause < 0:
            break
        await asyncio.sleep(pause)
    return _result(check, attempts, started, last, data, passed=False)


def _result(
    check: Check, attempts: int, started: float, detail: str, data: Mapping[str, Any], *, passed: bool
) -> CheckResult:
    return CheckResult(
        name=check.name,
        service=check.service,
        phase=check.phase,
        passed=passed,
        attempts=attempts,
        duration_s=time.monotonic() - started,
        target=check.target,
        detail=detail,
        data=dict(data),
    )


async def run_checks(
    checks: Sequence[Check], *, timeout: float, deadline_s: float, backoff: Backoff
) -> list[CheckResult]:
    """Run every check concurrently under one deadline `deadline_s` seconds from now; results in input order."""
    deadline = time.monotonic() + deadline_s
    return list(
        await asyncio.gather(*(run_check(c, timeout=timeout, deadline=deadline, backoff=backoff) for c in checks))
    )
