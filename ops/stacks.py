"""The stacks as the release flow drives them: Pulumi's Automation API (`pulumi.automation`), the one module of
`ops` that loads the Pulumi SDK (docs/architecture.md, refinement 48).

Select a stack, read and write its config, `up` it with the engine's events turned into one progress line per
resource step, read its outputs. The Automation API runs the same `pulumi` CLI the other commands call (it must be
on PATH), with this process's environment (passphrase, backend) plus what a step adds (the run record's file).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pulumi import automation as auto
from pulumi.automation import events

from components.config_keys import NAMESPACE


class StackError(Exception):
    """An update failed, or a stack could not be read: the message says which stack and the engine's reason."""


def progress_line(event: events.EngineEvent, started: float, now: float) -> str | None:
    """One line for an engine event worth showing (a resource step that does something, a failure, an error or
    a warning); None for the rest (same-steps, debug output)."""
    if event.resource_pre_event is not None:
        meta = event.resource_pre_event.metadata
        if meta.op in (events.OpType.SAME, events.OpType.READ):
            return None
        return f"    {now - started:6.1f}s  {meta.op.value!s:<8} {meta.urn.rsplit('::', 1)[-1]}"
    if event.res_op_failed_event is not None:
        meta = event.res_op_failed_event.metadata
        return f"    {now - started:6.1f}s  FAILED   {meta.urn.rsplit('::', 1)[-1]}"
    if event.diagnostic_event is not None:
        diag = event.diagnostic_event
        if diag.severity in ("error", "warning") and not diag.ephemeral:
            return f"    {diag.severity}: {diag.message.strip()}"
    return None


@dataclass
class Stacks:
    """Every stack of one Pulumi project (the checkout at `root`)."""

    root: Path
    env: Mapping[str, str] = field(default_factory=dict)
    out: TextIO = sys.stdout
    _selected: dict[str, auto.Stack] = field(default_factory=dict)

    def stack(self, name: str) -> auto.Stack:
        if name not in self._selected:
            try:
                self._selected[name] = auto.select_stack(
                    stack_name=name, work_dir=str(self.root),
                    opts=auto.LocalWorkspaceOptions(work_dir=str(self.root), env_vars=dict(self.env)))
            except auto.errors.StackNotFoundError as exc:
                raise StackError(f"stack {name} does not exist: create it (`pulumi stack init {name}`) and run "
                                 f"`pulumi up --stack {name}` once") from exc
            except auto.errors.CommandError as exc:
                raise StackError(f"cannot select stack {name}: {exc}") from exc
        return self._selected[name]

    def outputs(self, name: str) -> dict[str, Any]:
        try:
            return {k: v.value for k, v in self.stack(name).outputs().items()}
        except auto.errors.CommandError as exc:
            raise StackError(f"cannot read stack {name}'s outputs: {exc}") from exc

    def config(self, name: str) -> dict[str, str]:
        """The stack file's `devtools:` values as the CLI prints them (objects as JSON text); secrets are left
        out: the flow never needs them."""
        values = self.stack(name).get_all_config()
        prefix = f"{NAMESPACE}:"
        return {k.removeprefix(prefix): v.value for k, v in values.items() if k.startswith(prefix) and not v.secret}

    def set_config(self, name: str, changes: Mapping[str, str | Mapping[str, str] | None]) -> None:
        """Write `changes` into the stack file: a string sets the key, a mapping sets an object key field by
        field, None removes the key."""
        stack = self.stack(name)
        for key, value in changes.items():
            full = f"{NAMESPACE}:{key}"
            if value is None or isinstance(value, Mapping):
                if full in stack.get_all_config():
                    stack.remove_config(full)
                for field_name, field_value in (value or {}).items():
                    stack.set_config(f"{full}.{field_name}", auto.ConfigValue(field_value), path=True)
            else:
                stack.set_config(full, auto.ConfigValue(value))

    def up(self, name: str, message: str, extra_env: Mapping[str, str] | None = None,
           clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
        """`pulumi up` of the stack, one line per resource step as the engine takes it; the stack's outputs after
        it. A failed update raises StackError with the engine's last error lines."""
        stack = self.stack(name)
        started = clock()
        errors: list[str] = []

        def on_event(event: events.EngineEvent) -> None:
            line = progress_line(event, started, clock())
            if line is not None:
                print(line, file=self.out, flush=True)
                if line.lstrip().startswith("error:"):
                    errors.append(line.strip())

        workspace = stack.workspace
        assert isinstance(workspace, auto.LocalWorkspace)
        saved = dict(workspace.env_vars)
        workspace.env_vars = {**saved, **(extra_env or {})}
        try:
            result = stack.up(message=message, on_event=on_event, color="never", suppress_outputs=True)
        except auto.errors.CommandError as exc:
            why = "; ".join(errors[-3:]) or str(exc).strip().splitlines()[-1]
            raise StackError(f"pulumi up --stack {name} failed after {clock() - started:.0f}s: {why}") from exc
        finally:
            workspace.env_vars = saved
        return {k: v.value for k, v in result.outputs.items()}
