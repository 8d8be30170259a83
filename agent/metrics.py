"""What each rollout did, as Prometheus metrics in node_exporter's textfile-collector format (standard library only).

State: `<root>/<project>/metrics.json` (counters persist across runs). Rendered into `<root>/metrics/<project>.prom`
(mode 0644, directory 0755), replaced in one rename from a temp name that does not end in `.prom`, so the
collector never reads half a file. Every update happens under the project's lock (the job holds it).

`render` is pure (exact-string tests in tests/unit/agent/test_metrics.py); `Metrics.update` loads, changes, writes
and renders, and never raises: a disk that refuses is logged, and the release goes on (as an audit write does).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.installs import write_atomic

BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
"""Upper bounds of the image pull histogram (seconds); +Inf is implied."""
STEPS = ("pull", "up", "validate", "total")
OUTCOMES = ("succeeded", "rolled_back", "failed")

State = dict[str, Any]
Sample = tuple[dict[str, str], float]

HELP = {
    "devtools_image_pull_duration_seconds": ("histogram", "Seconds each image pull of an activation took."),
    "devtools_image_pull_last_seconds": ("gauge", "Seconds the last pull of each service's image took."),
    "devtools_rollout_failures_total": ("counter", "Applies that failed (restored or not), failed gates and "
                                                   "unconfirmed pool applies, by failing step."),
    "devtools_rollout_last_timestamp_seconds": ("gauge", "Unix time of the last rollout ending with each outcome."),
    "devtools_rollout_step_seconds": ("gauge", "Seconds each step of the last apply took."),
    "devtools_rollouts_total": ("counter", "Apply attempts (every hostagent apply)."),
    "devtools_trace_probes_total": ("counter", "Agents whose end-to-end probe ran in a validation with the trace "
                                               "phase on."),
    "devtools_trace_probes_traced_total": ("counter", "Agents whose end-to-end probe's trace was found."),
}


def empty_state() -> State:
    return {"rollouts": 0, "failures": {}, "steps": {}, "last": {}, "pull": {"buckets": [0] * len(BUCKETS),
            "sum": 0.0, "count": 0}, "pull_last": {}, "probes": {}, "traced": {}}


FAILURE_STAGES = ("prepare", "docker", "pull", "network", "migrate", "switch", "up", "validate", "confirm")
"""The stages an apply fails at (agent.steps' StepFailed stages, a refused bundle, an unconfirmed pool apply): each
series is written at 0 before an apply runs, since increase() cannot see a counter's first sample."""


# changes of the state (pure) ------------------------------------------------------------------------------------
def seed(state: State) -> None:
    """Before an apply: the attempt and failure counters exist (at 0 the first time), so the scrapes taken while it
    runs hold the sample that its outcome's increment is measured from."""
    state["rollouts"] = int(state.get("rollouts", 0))
    failures = state.setdefault("failures", {})
    for stage in FAILURE_STAGES:
        failures[stage] = int(failures.get(stage, 0))


def count_attempt(state: State) -> None:
    """An apply ended (counted with its outcome, once, so a first apply is seen going from 0 to 1)."""
    state["rollouts"] = int(state.get("rollouts", 0)) + 1


def count_failure(state: State, stage: str) -> None:
    failures = state.setdefault("failures", {})
    failures[stage] = int(failures.get(stage, 0)) + 1


def set_steps(state: State, seconds: Mapping[str, float]) -> None:
    """The last apply's step durations replace the ones before (a step it never reached has none)."""
    state["steps"] = {step: float(s) for step, s in seconds.items() if step in STEPS}


def set_outcome(state: State, outcome: str, unix_time: float) -> None:
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    state.setdefault("last", {})[outcome] = float(unix_time)


def observe_pull(state: State, services: Iterable[str], seconds: float) -> None:
    """One image pulled in `seconds` (the image of `services`): one histogram observation, and the last pull of
    each of those services."""
    pull = state.setdefault("pull", {"buckets": [0] * len(BUCKETS), "sum": 0.0, "count": 0})
    for i, bound in enumerate(BUCKETS):
        if seconds <= bound:
            pull["buckets"][i] = int(pull["buckets"][i]) + 1
    pull["sum"] = float(pull.get("sum", 0.0)) + seconds
    pull["count"] = int(pull.get("count", 0)) + 1
    last = state.setdefault("pull_last", {})
    for service in services:
        last[service] = float(seconds)


def count_traces(state: State, agents: Mapping[str, bool]) -> None:
    """A validation with the trace phase on: each agent's probe ran; those whose trace was found are traced."""
    probes, traced = state.setdefault("probes", {}), state.setdefault("traced", {})
    for agent, found in agents.items():
        probes[agent] = int(probes.get(agent, 0)) + 1
        traced[agent] = int(traced.get(agent, 0)) + (1 if found is True else 0)


def valid_state(data: Any) -> State:
    """A state read from disk, with whatever it lacks filled in (an older or damaged file never stops a release)."""
    state = empty_state()
    if not isinstance(data, dict):
        return state
    for key, value in data.items():
        if key in state and type(value) is type(state[key]):
            state[key] = value
    pull = state["pull"]
    if not (isinstance(pull.get("buckets"), list) and len(pull["buckets"]) == len(BUCKETS)):
        state["pull"] = empty_state()["pull"]
    return state


# rendering (pure) -------------------------------------------------------------------------------------------------
def escape_label(value: str) -> str:
    """A label value as the text exposition format quotes it: backslash, double quote and line feed escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def number(value: float) -> str:
    """Integers without a fraction, everything else rounded to the millisecond (deterministic text)."""
    if isinstance(value, int) or (math.isfinite(value) and float(value).is_integer()):
        return str(int(value))
    return repr(round(float(value), 3))


def bound(value: float) -> str:
    return number(value)


def _line(name: str, labels: Mapping[str, str], value: float) -> str:
    inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
    return f"{name}{{{inner}}} {number(value)}"


def _family(name: str, lines: list[str]) -> list[str]:
    if not lines:
        return []
    kind, text = HELP[name]
    return [f"# HELP {name} {escape_help(text)}", f"# TYPE {name} {kind}", *lines]


def _per(name: str, project: str, key: str, values: Mapping[str, Any]) -> list[str]:
    return [_line(name, {"project": project, key: k}, float(values[k])) for k in sorted(values)]


def render(project: str, state: State) -> str:
    """The .prom file of one project: families sorted by name, series by label values; families without a series
    are left out. The attempt counter and the pull histogram are always there (at 0 before the first apply or
    pull): increase() measures from a counter's first sample."""
    s = valid_state(state)
    p = project
    pull = s["pull"]
    name = "devtools_image_pull_duration_seconds"
    hist = [_line(f"{name}_bucket", {"project": p, "le": bound(b)}, int(c))
            for b, c in zip(BUCKETS, pull["buckets"], strict=True)]
    hist += [_line(f"{name}_bucket", {"project": p, "le": "+Inf"}, int(pull["count"])),
             _line(f"{name}_sum", {"project": p}, float(pull["sum"])),
             _line(f"{name}_count", {"project": p}, int(pull["count"]))]
    families = {
        "devtools_image_pull_duration_seconds": hist,
        "devtools_image_pull_last_seconds": _per("devtools_image_pull_last_seconds", p, "service", s["pull_last"]),
        "devtools_rollout_failures_total": [_line("devtools_rollout_failures_total", {"project": p, "stage": k},
                                                  int(v)) for k, v in sorted(s["failures"].items())],
        "devtools_rollout_last_timestamp_seconds": _per("devtools_rollout_last_timestamp_seconds", p, "outcome",
                                                        s["last"]),
        "devtools_rollout_step_seconds": _per("devtools_rollout_step_seconds", p, "step", s["steps"]),
        "devtools_rollouts_total": [_line("devtools_rollouts_total", {"project": p}, int(s["rollouts"]))],
        "devtools_trace_probes_total": [_line("devtools_trace_probes_total", {"project": p, "agent": k}, int(v))
                                        for k, v in sorted(s["probes"].items())],
        "devtools_trace_probes_traced_total": [_line("devtools_trace_probes_traced_total",
                                                     {"project": p, "agent": k}, int(v))
                                               for k, v in sorted(s["traced"].items())],
    }
    lines = [line for name in sorted(families) for line in _family(name, families[name])]
    return "\n".join(lines) + "\n"


# on disk -----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Metrics:
    """One project's metrics on this host: `update` changes the persisted state and renders the .prom file."""

    root: Path
    project: str
    log: Callable[[str], None]

    @property
    def state_file(self) -> Path:
        return self.root / self.project / "metrics.json"

    @property
    def prom_file(self) -> Path:
        return self.root / "metrics" / f"{self.project}.prom"

    def load(self) -> State:
        try:
            return valid_state(json.loads(self.state_file.read_text()))
        except FileNotFoundError:
            return empty_state()
        except (OSError, ValueError) as exc:
            self.log(f"metrics: {self.state_file} unreadable ({exc}); counting from zero")
            return empty_state()

    def update(self, *changes: Callable[[State], None]) -> bool:
        """Apply `changes` to the state, persist it, render the .prom file. A disk that refuses is logged, never
        raised: no release fails because its metrics could not be written. True when both files were written."""
        try:
            state = self.load()
            for change in changes:
                change(state)
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.state_file, json.dumps(state, sort_keys=True) + "\n")
            directory = self.prom_file.parent
            directory.mkdir(mode=0o755, parents=True, exist_ok=True)
            if directory.stat().st_mode & 0o777 != 0o755:
                with contextlib.suppress(OSError):  # the umask's mode: the collector (another user) reads it
                    os.chmod(directory, 0o755)  # noqa: S103 - the contract: world-readable metrics
            write_atomic(self.prom_file, render(self.project, state), 0o644)
        except (OSError, ValueError) as exc:
            self.log(f"metrics: not recorded ({exc})")
            return False
        return True
