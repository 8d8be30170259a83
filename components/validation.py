"""ValidationGate: validate the release running on one host and record the verdict; traffic waits for it.

The gate runs `hostagent gate` on the host: `agent.validate` against the release's resolved config, then one JSON
line that becomes `summary`. When a check failed it restores the previous release and writes a debug bundle (the
same path as a failed apply), then exits non-zero, so `pulumi up` stops here, before any traffic resource that
depends on the gate, with the host back on the release it ran before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_command import remote

from components import commands
from components.config_slices import AgentPlace, ValidatorSettings


@dataclass(frozen=True)
class ValidationGateArgs:
    place: AgentPlace  # this stack's project on the host (where the release and its reports are)
    validator: ValidatorSettings  # deadline and the Prometheus phase
    connection: remote.ConnectionArgs
    release_id: pulumi.Input[str]
    content: pulumi.Input[str]  # the release's content hash: a new content re-runs the gate
    host_name: str
    rerun_on: Sequence[pulumi.Input[str]] = ()  # more triggers, e.g. the apply's id (a replaced apply re-validates)
    confirm_within: int = 0  # in a pool: a release the gate activates again stays provisional this long


class ValidationGate(pulumi.ComponentResource):
    command: remote.Command
    """The remote command that validates (its stdout ends with the JSON summary line)."""
    summary: pulumi.Output[dict[str, Any]]
    """{"passed", "release", "checks", "failed", "duration_s"} as the host printed it."""
    passed: pulumi.Output[bool]
    """Whether every check passed (false never happens after a successful up: the command fails instead, after
    restoring the previous release on its host)."""
    host_name: str
    """The host this gate validates (RolloutHost.name)."""

    def __init__(self, name: str, args: ValidationGateArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("devtools:index:ValidationGate", name, None, opts)
        self.host_name = args.host_name
        script = pulumi.Output.from_input(args.release_id).apply(
            lambda rid: commands.validate_script(args.place, args.validator, rid, args.confirm_within))
        # The validator prints check names, timings and URLs on 127.0.0.1, and the host agent masks the values of
        # the project's secrets file in everything it prints: the output may be logged.
        self.command = remote.Command(
            f"{name}-run",
            connection=args.connection,
            add_previous_output_in_env=False,
            create=script,
            triggers=[args.content, *args.rerun_on],
            logging=remote.Logging.STDOUT_AND_STDERR,
            # A component's depends_on does not hold back its children by itself: the command waits for it too.
            opts=pulumi.ResourceOptions(parent=self, depends_on=opts.depends_on if opts else None),
        )
        self.summary = self.command.stdout.apply(commands.parse_gate_summary)
        self.passed = self.summary.apply(lambda s: bool(s["passed"]))
        self.register_outputs({"summary": self.summary, "passed": self.passed})
