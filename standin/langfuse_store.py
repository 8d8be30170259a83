"""What the Langfuse stand-in keeps and answers (pure, standard library only): traces from ingestion events and the
list query of `GET /api/public/traces`.

Field names follow Langfuse's public API definition (fern/apis/server/definition: ingestion.yml `IngestionEvent`,
`TraceBody`, `IngestionResponse`; trace.yml `GetTracesRequest`, `Traces`; commons.yml `TraceWithDetails`;
utils/pagination.yml `MetaResponse`), checked at langfuse/langfuse v4.16.0 (commit 62751446).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

# Every event type the ingestion union names; only trace-create is kept (the others are acknowledged).
EVENT_TYPES = ("trace-create", "score-create", "span-create", "span-update", "generation-create",
               "generation-update", "event-create", "sdk-log", "observation-create", "observation-update")
DEFAULT_LIMIT = 50
ORDER_FIELDS = ("id", "timestamp", "name", "userId", "release", "version", "public", "bookmarked", "sessionId")
TRACE_FIELDS = ("name", "userId", "input", "output", "sessionId", "release", "version", "metadata")


class QueryError(ValueError):
    """A list query Langfuse answers 400 to; the message names the parameter."""


def parse_time(text: str) -> datetime:
    """ISO 8601, `Z` or an offset; a time without one is UTC."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise QueryError(f"not an ISO 8601 datetime: {text!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _trace_json(trace: Mapping[str, Any]) -> dict[str, Any]:
    """A trace as `GET /api/public/traces` lists it (commons.TraceWithDetails)."""
    shown = {key: value for key, value in trace.items() if key != "_at"}
    return {**shown, "timestamp": format_time(trace["_at"]), "htmlPath": f"/trace/{trace['id']}",
            "latency": 0.0, "totalCost": 0.0, "observations": [], "scores": []}


class TraceStore:
    """Traces by id, upserted by trace-create events (a later event with the same body id updates the trace)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._traces: dict[str, dict[str, Any]] = {}

    def ingest(self, batch: Any, now: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
        """One ingestion request's batch → the 207 body: {"successes": [{id, status}], "errors": [{id, status,
        message, error}]}. An event that is not well formed is an error of its own, never the whole batch's."""
        successes: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for event in batch:
            event_id = str(event.get("id", "")) if isinstance(event, Mapping) else ""
            problem = self._event(event, now or datetime.now(UTC))
            if problem:
                errors.append({"id": event_id, "status": 400, "message": "Invalid request data", "error": problem})
            else:
                successes.append({"id": event_id, "status": 201})
        return {"successes": successes, "errors": errors}

    def _event(self, event: Any, now: datetime) -> str:
        problem = _envelope_problem(event)
        if problem or event["type"] != "trace-create":
            return problem
        return self._trace(event["body"], event["timestamp"], now)

    def _trace(self, body: Mapping[str, Any], event_time: str, now: datetime) -> str:
        tags = body.get("tags")
        if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
            return "body.tags: a list of strings is required"
        try:
            at = parse_time(str(body.get("timestamp") or event_time))
        except QueryError as exc:
            return f"body.timestamp: {exc}"
        trace_id = str(body.get("id") or uuid.uuid4())
        with self._lock:
            trace = self._traces.setdefault(trace_id, {
                "id": trace_id, "_at": at, "name": None, "userId": None, "sessionId": None, "release": None,
                "version": None, "metadata": None, "input": None, "output": None, "tags": [], "public": False,
                "environment": "default"})
            trace.update({key: body[key] for key in TRACE_FIELDS if key in body})
            if body.get("timestamp"):
                trace["_at"] = at
            if tags is not None:
                trace["tags"] = sorted(set(trace["tags"]) | set(tags))
            if "public" in body:
                trace["public"] = bool(body["public"])
            if body.get("environment"):
                trace["environment"] = str(body["environment"])
        return ""

    def list(self, query: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        """`GET /api/public/traces` with its query parameters (each a list, as urllib.parse.parse_qs gives them):
        page (from 1), limit, name, userId, sessionId, tags (all must match), fromTimestamp (on or after),
        toTimestamp (before), version, release, environment (any of), orderBy `field.asc|desc`."""
        page = _positive(query, "page", 1)
        limit = _positive(query, "limit", DEFAULT_LIMIT)
        since = _time(query, "fromTimestamp")
        until = _time(query, "toTimestamp")
        wanted_tags = set(query.get("tags", []))
        environments = set(query.get("environment", []))
        exact = {key: query[key][-1] for key in ("name", "userId", "sessionId", "version", "release") if key in query}
        field, descending = _order(query)
        with self._lock:
            traces = [dict(t) for t in self._traces.values()]
        chosen = [t for t in traces
                  if (since is None or t["_at"] >= since) and (until is None or t["_at"] < until)
                  and wanted_tags <= set(t["tags"]) and (not environments or t["environment"] in environments)
                  and all(t.get(key) == value for key, value in exact.items())]
        chosen.sort(key=lambda t: (t["_at"] if field == "timestamp" else str(t.get(field) or ""), t["id"]),
                    reverse=descending)
        total = len(chosen)
        shown = chosen[(page - 1) * limit: page * limit]
        return {"data": [_trace_json(t) for t in shown],
                "meta": {"page": page, "limit": limit, "totalItems": total, "totalPages": -(-total // limit)}}


def _envelope_problem(event: Any) -> str:
    """What is wrong with an event's envelope (id, timestamp, type, body), "" when nothing."""
    if not isinstance(event, Mapping):
        return "an event is not a JSON object"
    kind = event.get("type")
    checks = (
        (isinstance(event.get("id"), str) and bool(event["id"]), "id: a string is required"),
        (isinstance(event.get("timestamp"), str), "timestamp: a string is required"),
        (kind in EVENT_TYPES, f"type: {kind!r} is not one of {', '.join(EVENT_TYPES)}"),
        (isinstance(event.get("body"), Mapping), "body: an object is required"),
    )
    return next((problem for ok, problem in checks if not ok), "")


def _positive(query: Mapping[str, Sequence[str]], key: str, default: int) -> int:
    if key not in query:
        return default
    text = query[key][-1]
    if not text.isdigit() or int(text) < 1:
        raise QueryError(f"{key}: a positive integer is required, got {text!r}")
    return int(text)


def _time(query: Mapping[str, Sequence[str]], key: str) -> datetime | None:
    if key not in query:
        return None
    try:
        return parse_time(query[key][-1])
    except QueryError as exc:
        raise QueryError(f"{key}: {exc}") from exc


def _order(query: Mapping[str, Sequence[str]]) -> tuple[str, bool]:
    text = query.get("orderBy", ["timestamp.desc"])[-1]
    field, _, direction = text.partition(".")
    if field not in ORDER_FIELDS or direction not in ("asc", "desc"):
        raise QueryError(f"orderBy: expected [field].[asc/desc] with a field of {', '.join(ORDER_FIELDS)}, "
                         f"got {text!r}")
    return field, direction == "desc"
