"""A bounded write load for the e2e tests: a few threads POST records to /state until stopped, LOAD_CAP requests
or LOAD_SECONDS, counting what was written and what failed."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import httpx

LOAD_CAP, LOAD_SECONDS, LOAD_WORKERS, LOAD_PAUSE_S = 300, 60.0, 3, 0.1


@dataclass
class WriteLoad:
    """Writes through haproxy from a few threads until stopped, LOAD_CAP requests or LOAD_SECONDS (bounded)."""

    url: str
    ok: int = 0
    failed: list[str] = field(default_factory=list)
    sent: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> WriteLoad:
        deadline = time.monotonic() + LOAD_SECONDS
        for worker in range(LOAD_WORKERS):
            thread = threading.Thread(target=self._work, args=(worker, deadline), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def _ticket(self) -> int | None:
        with self._lock:
            if self.sent >= LOAD_CAP:
                return None
            self.sent += 1
            return self.sent

    def _work(self, worker: int, deadline: float) -> None:
        with httpx.Client(timeout=10, trust_env=False) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                n = self._ticket()
                if n is None:
                    return
                try:
                    answer = client.post(f"{self.url}/state", content=json.dumps({"load": n, "worker": worker}),
                                         headers={"Content-Type": "application/json"})
                    outcome = None if answer.status_code == 201 else f"{answer.status_code} {answer.text[:200]}"
                except httpx.HTTPError as exc:
                    outcome = f"{type(exc).__name__}: {exc}"
                with self._lock:
                    if outcome is None:
                        self.ok += 1
                    else:
                        self.failed.append(outcome)
                self._stop.wait(LOAD_PAUSE_S)
