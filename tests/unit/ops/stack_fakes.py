"""A Pulumi CLI in memory for the operator commands' fast tests: each stack's outputs, config and whether it exists
answer from dicts; `stream` (a changing step) records its argv and answers 0; nothing else may run."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ops.operator_host import CliError, Pulumi


@dataclass(frozen=True)
class StackPulumi(Pulumi):
    stacks: dict[str, dict[str, Any]] = field(default_factory=dict)  # stack → outputs
    settings: dict[str, dict[str, str]] = field(default_factory=dict)  # stack → key → value
    ran: list[tuple[str, ...]] = field(default_factory=list)

    def outputs(self, stack: str) -> dict[str, Any]:
        if stack not in self.stacks:
            raise CliError(f"cannot read stack {stack}'s outputs: error: no stack named '{stack}' found", 2)
        copied: dict[str, Any] = json.loads(json.dumps(self.stacks[stack]))
        return copied

    def config_value(self, stack: str, key: str) -> str | None:
        if stack not in self.stacks:
            raise CliError(f"cannot read devtools:{key} of stack {stack}: error: no stack named '{stack}' found", 2)
        return self.settings.get(stack, {}).get(key)

    def capture(self, argv: Sequence[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
        assert list(argv) == ["pulumi", "stack", "ls", "--json", "--non-interactive"], argv
        listed = [{"name": f"acme/devtools/{s}", "current": False} for s in self.stacks]
        return subprocess.CompletedProcess(list(argv), 0, json.dumps(listed), "")

    def stream(self, argv: Sequence[str]) -> int:
        self.ran.append(tuple(argv))
        return 0

    def changed_in_git(self, path: Any) -> bool:
        return False
