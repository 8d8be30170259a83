"""A bounded open-loop HTTP load: requests go out on a fixed schedule (rate per second), whatever the answers.

Bounded twice: at most `rate * max_seconds` requests, and no request starts after `max_seconds`. It runs in a
thread of its own (its own event loop) so the caller can run a release meanwhile and stop it when done.
A request fails when it gets no HTTP 200 (status, refused or reset connection, timeout); the longest gap is
the longest time without a successful answer, from the start of the load to its end.

At most `max_in_flight` requests are outstanding: when a server stops keeping up, a request due while that
many wait is counted as failed without being sent. Without that bound, connections abandoned at the client's
timeout pile up in docker's userland proxy (its dials to a full listen queue linger for minutes) until the
proxy runs out of file descriptors and stops forwarding the port for good; the load would then measure that.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

MAX_RESPONSE = 1 << 20
SKIPPED = "not sent: in-flight limit"



@dataclass
class Sample:
    sent: float  # monotonic seconds
    done: float
    ok: bool
    error: str  # "" when ok; "HTTP 503", "ConnectError", …
    served_by: str


@dataclass
class LoadResult:
    url: str
    rate: float
    planned: int
    scheduled: int  # requests due on the schedule while the load ran (sent, or counted as not sent)
    ok: int
    failed: int
    down: int  # of the failed: refused, reset, cut short or not 200 (nothing serving, or a proxy said so)
    timed_out: int  # of the failed: no answer in time (an overloaded server)
    not_sent: int  # of the failed: due while max_in_flight requests were waiting (an overloaded server)
    errors: dict[str, int]
    longest_gap_s: float
    gap_from_s: float  # seconds after the start of the load
    seconds: float
    achieved_rate: float
    latency_p50_ms: float
    latency_p99_ms: float
    first_failure_s: float | None
    last_failure_s: float | None
    cpu_busy_pct: float  # the whole machine's CPU use while the load ran (every process, not only ours)
    loadavg: tuple[float, float]  # 1-minute load average when the load started and when it ended
    served_by: dict[str, int] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)  # named moments, seconds after the start
    timeline: list[tuple[int, int, int]] = field(default_factory=list)  # (second, due, failed)
    started_at: float = 0.0  # unix time of the start (the other times here are seconds after it)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def request_bytes(host: str, port: int, path: str, body: bytes | None = None) -> bytes:
    """`GET path`, or with a body a `POST path` of JSON (an MCP call), on a connection closed after the answer."""
    if body is None:
        return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
    return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def get(host: str, port: int, path: str, body: bytes | None = None) -> tuple[int, dict[str, str]]:
    """One `GET path` (or a POST of `body`) on a fresh connection (`Connection: close`); the status code and the
    response headers.

    Plain asyncio streams rather than an HTTP library: on a 2-core machine the client's own CPU time must stay
    well below the server's, or the load measures the client.
    """
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request_bytes(host, port, path, body))
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.read(MAX_RESPONSE)
    finally:
        writer.close()
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {lines[0][:80]!r}")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    return int(parts[1]), headers


def longest_gap(successes: list[float], start: float, end: float) -> tuple[float, float]:
    """The longest stretch of [start, end] without a success time in it, and where it began."""
    edges = [start, *sorted(t for t in successes if start <= t <= end), end]
    best, at = 0.0, start
    for a, b in itertools.pairwise(edges):
        if b - a > best:
            best, at = b - a, a
    return best, at - start


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat; (0, 0) where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def loadavg() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return 0.0


def timeline(samples: list[Sample], t0: float) -> list[tuple[int, int, int]]:
    sent: Counter[int] = Counter(int(s.sent - t0) for s in samples)
    bad: Counter[int] = Counter(int(s.sent - t0) for s in samples if not s.ok)
    return [(second, sent[second], bad[second]) for second in sorted(sent)]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Load:
    """`load.start()` … `load.stop()` (returns the result), or `with Load(…) as load: …` then `load.result()`."""

    def __init__(self, url: str, rate: float, max_seconds: float, timeout: float = 5.0,
                 max_in_flight: int = 100, *, body: bytes | None = None) -> None:
        if rate <= 0 or max_seconds <= 0:
            raise ValueError("rate and max_seconds must be positive")
        self.url, self.rate, self.max_seconds, self.timeout = url, rate, max_seconds, timeout
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"{url}: expected http://HOST:PORT/PATH")
        self.host, self.port, self.path = parts.hostname, parts.port or 80, parts.path or "/"
        self.body = body  # None: GET; else every request POSTs it
        self.planned = int(rate * max_seconds)
        self.max_in_flight = max_in_flight
        self.samples: list[Sample] = []
        self.marks: dict[str, float] = {}
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="load", daemon=True)
        self._t0 = 0.0
        self._wall0 = 0.0
        self._t_end = 0.0
        self._cpu0 = self._cpu1 = (0, 0)
        self._load0 = self._load1 = 0.0

    def __enter__(self) -> Load:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._cpu0, self._load0 = cpu_times(), loadavg()
        self._thread.start()
        self._started.wait(10)

    def mark(self, name: str) -> None:
        self.marks[name] = round(time.monotonic() - self._t0, 3)

    def stop(self) -> LoadResult:
        self._stop.set()
        self._thread.join(self.max_seconds + self.timeout + 10)
        self._cpu1, self._load1 = cpu_times(), loadavg()
        return self.result()

    async def _one(self) -> None:
        sent = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                status, headers = await get(self.host, self.port, self.path, self.body)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            self.samples.append(Sample(sent, time.monotonic(), False, type(exc).__name__, ""))
            return
        ok = status == 200
        self.samples.append(Sample(sent, time.monotonic(), ok, "" if ok else f"HTTP {status}",
                                   headers.get("x-served-by", "")))

    async def _main(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        self._t0, self._wall0 = time.monotonic(), time.time()
        self._started.set()
        for i in range(self.planned):
            if self._stop.is_set():
                break
            delay = self._t0 + i / self.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.monotonic() - self._t0 >= self.max_seconds:
                break
            if len(tasks) >= self.max_in_flight:  # the server is not keeping up: count it, do not pile on
                now = time.monotonic()
                self.samples.append(Sample(now, now, False, SKIPPED, ""))
                continue
            task = asyncio.create_task(self._one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        self._t_end = time.monotonic()
        if tasks:
            await asyncio.wait(tasks, timeout=self.timeout + 5)

    def result(self) -> LoadResult:
        samples = list(self.samples)
        ok = [s for s in samples if s.ok]
        bad = [s for s in samples if not s.ok]
        end = self._t_end or time.monotonic()
        gap, gap_at = longest_gap([s.done for s in ok], self._t0, end)
        seconds = max(end - self._t0, 1e-9)
        latencies = [(s.done - s.sent) * 1000 for s in ok]
        return LoadResult(
            url=self.url, rate=self.rate, planned=self.planned, scheduled=len(samples), ok=len(ok), failed=len(bad),
            errors=dict(Counter(s.error for s in bad).most_common()), longest_gap_s=round(gap, 3),
            gap_from_s=round(gap_at, 3), seconds=round(seconds, 2), achieved_rate=round(len(samples) / seconds, 1),
            latency_p50_ms=round(percentile(latencies, 0.5), 1), latency_p99_ms=round(percentile(latencies, 0.99), 1),
            first_failure_s=round(min(s.sent for s in bad) - self._t0, 3) if bad else None,
            last_failure_s=round(max(s.sent for s in bad) - self._t0, 3) if bad else None,
            cpu_busy_pct=round(100 * (self._cpu1[0] - self._cpu0[0]) / max(self._cpu1[1] - self._cpu0[1], 1), 1),
            loadavg=(self._load0, self._load1), timed_out=sum(s.error == "TimeoutError" for s in bad),
            not_sent=sum(s.error == SKIPPED for s in bad),
            down=sum(s.error not in ("TimeoutError", SKIPPED) for s in bad),
            served_by=dict(Counter(s.served_by for s in samples if s.served_by)), marks=dict(self.marks),
            timeline=timeline(samples, self._t0), started_at=round(self._wall0, 3),
        )
