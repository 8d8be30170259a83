"""A snapshot of the primary droplet: the image standby droplets (blue) are created from.

    snap = Snapshot("snapshot", SnapshotArgs(droplet_id=hosts.droplet_ids[0],
                                             name=snapshot_name(cfg.identity, cfg.snapshot_generation)))

Bumping devtools:snapshotGeneration changes the name, which replaces the snapshot; the old image is retained
(blue droplets were created from it) until someone deletes it deliberately.
"""

from __future__ import annotations

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


class Snapshot(pulumi.ComponentResource):
    snapshot_id: pulumi.Output[str]
    """The snapshot's image id (what a standby's droplets take as `image`)."""
    name: str
    """The snapshot's name."""

    def __init__(self, name: str, args: SnapshotArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("devtools:index:Snapshot", name, None, opts)
        self.name = args.name
        droplet_id = pulumi.Output.from_input(args.droplet_id).apply(str)
        # retain_on_delete: droplets were created from this image; removing the config must not delete it.
        snap = digitalocean.DropletSnapshot(f"{name}-image", droplet_id=droplet_id, name=args.name,
                                            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True))
        self.snapshot_id = snap.id
        self.register_outputs({"snapshot_id": self.snapshot_id, "name": self.name})
