"""A backup image of the primary droplet, taken once the release on it is validated.

    snap = Snapshot("snapshot", SnapshotArgs(droplet_id=hosts.droplet_ids[0],
                                             name=snapshot_name(cfg.identity, cfg.snapshot_generation),
                                             wait_for=rollout.gates))

It holds the primary's data and secrets file: it is a backup, never what a standby is built from (standbys boot
the base image with cloud-init). It waits for the validation gates, so it is never taken while cloud-init still
installs packages or a release is half applied. Bumping devtools:snapshotGeneration changes the name, which
replaces the snapshot; the old image is retained until someone deletes it deliberately.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as digitalocean

from components.config_slices import StackIdentity


def snapshot_name(identity: StackIdentity, generation: int) -> str:
    """The snapshot's name: project, stack and generation (a new generation is a new snapshot)."""
    return f"{identity.project}-{identity.stack}-primary-g{generation}"


@dataclass(frozen=True)
class SnapshotArgs:
    droplet_id: pulumi.Input[int | str]  # the primary droplet
    name: str  # snapshot_name(identity, generation)
    wait_for: Sequence[pulumi.Resource] = ()  # the primary's validation gate(s): image a validated host only


class Snapshot(pulumi.ComponentResource):
    snapshot_id: pulumi.Output[str]
    """The snapshot's image id (what a standby's droplets take as `image`)."""
    name: str
    """The snapshot's name."""

    def __init__(self, name: str, args: SnapshotArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("devtools:index:Snapshot", name, None, opts)
        self.name = args.name
        droplet_id = pulumi.Output.from_input(args.droplet_id).apply(str)
        # retain_on_delete: a backup; removing the config must not delete it.
        snap = digitalocean.DropletSnapshot(f"{name}-image", droplet_id=droplet_id, name=args.name,
                                            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True,
                                                                        depends_on=list(args.wait_for)))
        self.snapshot_id = snap.id
        self.register_outputs({"snapshot_id": self.snapshot_id, "name": self.name})
