"""The small slices of the stack config that components take where a whole section would carry too much.

Each component's Args names what it reads (the frozen sections of StackConfig such as RegistryConfig, or one of
these), so components/program.py shows what flows where, and a component never holds what it must not use: the
hosts never see the private key, the validation gate never sees the application secrets.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.slo import SloSpec


def stack_tag(project: str, stack: str) -> str:
    """The tag every droplet of one stack carries (components.hosts), which an SSH lease's firewall targets (ops)."""
    return f"{project}-{stack}"


@dataclass(frozen=True)
class StackIdentity:
    """Who this stack is: resource names and droplet tags derive from these."""

    project: str
    stack: str
    color: str


@dataclass(frozen=True)
class AgentPlace:
    """Where the host agent keeps this stack's compose project on every host: `<root>/<project>`."""

    root: str
    project: str  # the color: one compose project per color


@dataclass(frozen=True)
class SshLogin:
    """How the rollout logs in to a host; the private key travels apart from it, as a Pulumi secret."""

    user: str
    host_key: str | None  # the expected host key; None: not pinned


@dataclass(frozen=True)
class ValidatorSettings:
    """What the validator on a host is told: its deadline, the Prometheus phase (no URL: phase skipped) and the
    trace phase (no Langfuse URL: skipped; its keys are the host's secrets file's, never told here)."""

    deadline: int
    prometheus_url: str | None
    prometheus_selector: str
    langfuse_host: str | None = None
    trace_coverage_min: float = SloSpec.trace_coverage_min  # the trace-coverage objective's target


@dataclass(frozen=True)
class AnalysisSettings:
    """The analysis of the live color after a promotion (ops.analysis_plan.spec_from_config reads the same keys as
    text from `pulumi config get`, with these checks): measurements every `interval` seconds, `count` of each
    metric, at most `failure_limit` failed ones per metric, and each metric's maximum (p95 0: not measured)."""

    interval: int
    count: int
    failure_limit: int
    max_error_ratio: float
    max_p95_seconds: float
    max_restarts: int
    prometheus_url: str | None  # None: the live color's first host's own Prometheus, through an SSH tunnel
