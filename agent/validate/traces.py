"""Phase 5 (optional): trace coverage. Every agent whose end-to-end probe ran sends one trace to Langfuse (tags
`devtools-e2e` and `agent:<service>`); after the probes this phase asks Langfuse's public API
(`GET /api/public/traces`, basic auth with the project's LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY, read from the
secrets file on the host) until every probed agent has a trace since the probes began, or its deadline comes.

coverage = agents with a trace / agents probed; the phase fails below the minimum, naming the agents without one.
The report's `traces` section: {"agents": {agent: bool}, "coverage": 0.83, "min": 0.9, "host": url}.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from agent.secretfile import read_secrets_file
from agent.validate.checks import describe, excerpt
from agent.validate.report import CheckResult

PHASE = "traces"
CHECK = "traces/coverage"
TAG = "devtools-e2e"
TRACE_NAME = "e2e-probe"
PUBLIC, SECRET = "LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY"
POLL_S = 1.0


def agent_tag(agent: str) -> str:
    return f"agent:{agent}"


def since_text(moment: datetime) -> str:
    """fromTimestamp: the probes' start, to the whole second (an agent stamps its trace to the second)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def query_params(agent: str, since: datetime) -> list[tuple[str, str | int | float | bool | None]]:
    return [("tags", TAG), ("tags", agent_tag(agent)), ("name", TRACE_NAME), ("fromTimestamp", since_text(since)),
            ("limit", "1"), ("page", "1")]


class KeysRefused(Exception):
    """Langfuse answered 401/403, or the secrets file lacks a key; the message names the keys, never values."""


def read_keys(secrets_file: str | None) -> tuple[str, str]:
    """(public, secret) from the project's secrets file; KeysRefused naming what is missing."""
    if not secrets_file:
        raise KeysRefused(f"no secrets file given (--secrets-file): {PUBLIC} and {SECRET} are read from it")
    try:
        values = read_secrets_file(Path(secrets_file).read_text())
    except (OSError, ValueError) as exc:
        raise KeysRefused(f"cannot read {PUBLIC} / {SECRET} from the secrets file {secrets_file}: "
                          f"{type(exc).__name__}") from exc
    missing = [key for key in (PUBLIC, SECRET) if not values.get(key)]
    if missing:
        raise KeysRefused(f"{' and '.join(missing)} not in the secrets file {secrets_file} (stack appSecrets)")
    return values[PUBLIC], values[SECRET]


@dataclass(frozen=True)
class Coverage:
    agents: Mapping[str, bool]
    minimum: float
    host: str

    @property
    def coverage(self) -> float:
        return round(sum(self.agents.values()) / len(self.agents), 4) if self.agents else 1.0

    @property
    def missing(self) -> list[str]:
        return sorted(a for a, traced in self.agents.items() if not traced)

    @property
    def passed(self) -> bool:
        return self.coverage >= self.minimum

    def section(self) -> dict[str, Any]:
        """The report's `traces` section (the shared contract's exact keys)."""
        return {"agents": dict(sorted(self.agents.items())), "coverage": self.coverage, "min": self.minimum,
                "host": self.host}

    def detail(self) -> str:
        count = sum(self.agents.values())
        text = f"{count} of {len(self.agents)} agents traced (coverage {self.coverage:g}, minimum {self.minimum:g})"
        return f"{text}; no trace from {', '.join(self.missing)}" if self.missing else text


async def traced(client: httpx.AsyncClient, host: str, keys: tuple[str, str], agent: str, since: datetime) -> bool:
    response = await client.get(f"{host.rstrip('/')}/api/public/traces", params=query_params(agent, since),
                                auth=keys)
    if response.status_code in (401, 403):
        raise KeysRefused(f"Langfuse at {host} refused the keys (HTTP {response.status_code}): check "
                          f"{PUBLIC} and {SECRET} in the stack's appSecrets")
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {excerpt(response.text)}")
    data = response.json().get("data")
    return isinstance(data, list) and len(data) > 0


async def coverage_check(client: httpx.AsyncClient, host: str, agents: Sequence[str], since: datetime, *,
                         secrets_file: str | None, minimum: float, deadline_s: float,
                         timeout: float) -> tuple[CheckResult, Coverage]:
    """Poll until every agent has a trace since `since` or `deadline_s` passes; one check for the phase."""
    started = time.monotonic()
    found = dict.fromkeys(agents, False)
    attempts, last_error, refused = 0, "", ""
    try:
        keys = read_keys(secrets_file)
        while True:
            attempts += 1
            last_error = ""
            for agent in [a for a, seen in found.items() if not seen]:
                try:
                    async with asyncio.timeout(timeout):
                        found[agent] = await traced(client, host, keys, agent, since)
                except KeysRefused:
                    raise
                except Exception as exc:  # an outage is a missing trace, reported with its reason
                    last_error = f"{agent}: {describe(exc, timeout)}"
            if all(found.values()) or time.monotonic() - started + POLL_S > deadline_s:
                break
            await asyncio.sleep(POLL_S)
    except KeysRefused as exc:
        refused = str(exc)
    result = Coverage(found, minimum, host)
    if refused:
        detail = f"{refused}; {result.detail()}"
    else:
        detail = result.detail() + (f"; last error: {last_error}" if last_error and not result.passed else "")
    check = CheckResult(name=CHECK, service="", phase=PHASE, passed=result.passed and not refused, attempts=attempts,
                        duration_s=time.monotonic() - started, target=f"GET {host.rstrip('/')}/api/public/traces",
                        detail=detail, data=result.section())
    return check, result
