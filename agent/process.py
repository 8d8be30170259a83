"""The one seam through which the host agent runs a process (standard library only).

Every docker, compose and validator command of a rollout goes through a `Runner`, so the release state machine can
be driven step by step by a scripted fake in the fast unit tier (tests/unit/agent/test_rollout_steps.py) while the
host runs the real thing (`run_process`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol


class Runner(Protocol):
    """Run `argv` to completion and return its exit status and text output (never raises on a non-zero exit).

    May raise `subprocess.TimeoutExpired` (past `timeout` seconds) or `OSError` (the program cannot be started).
    """

    def __call__(self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> subprocess.CompletedProcess[str]: ...


def run_process(argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None,
                cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The host's runner: `subprocess.run` capturing text output, no exception on a non-zero exit."""
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False,
                          env=None if env is None else dict(env), cwd=cwd)
