"""Run the real __main__.py for the committed stacks (Pulumi.<stack>.yaml + Pulumi.yaml defaults) under mocks,
with the outputs other stacks would have exported."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.compose_services import SERVICES
from tests.ssh_test_keys import DEPLOY_FINGERPRINT
from tests.unit.components.program_harness import World, run_program
from tests.unit.components.stack_configs import (
    LOCAL_SECRETS,
    PROD_SECRETS,
    SSH_PRIVATE_KEY,
    stack_file_config,
    with_overrides,
)

DROPLET = "digitalocean:index/droplet:Droplet"
COLOR_DROPLET = "hosts-"
"""What the colors' droplets' resource names contain (`world.one(DROPLET, COLOR_DROPLET)`); the data droplet is
`data-host`."""
IMAGE = "docker-build:index:Image"
COMMAND = "command:remote:Command"
LB = "digitalocean:index/loadBalancer:LoadBalancer"
FIREWALL = "digitalocean:index/firewall:Firewall"
REGISTRY = "digitalocean:index/containerRegistry:ContainerRegistry"
CREDS = "digitalocean:index/containerRegistryDockerCredentials:ContainerRegistryDockerCredentials"
SNAPSHOT = "digitalocean:index/dropletSnapshot:DropletSnapshot"
LOCAL_COMMAND = "command:local:Command"


def images(release: str = "r1", changed: str | None = None) -> dict[str, str]:
    return {s: f"registry.digitalocean.com/devtools/{s}@sha256:{('b' if s == changed else 'a') * 64}"
            for s in SERVICES}


DATA_ENV = {"RAG_URL": "http://10.110.0.9:8007", "STATE_URL": "http://10.110.0.9:8008"}
"""The colors' addresses of prod's data tier, as prod exports them in `data.env`."""


def prod_outputs(release: str = "r1", changed: str | None = None) -> dict[str, Any]:
    """What prod exports for blue to follow."""
    record = {"id": release, "images": images(release, changed), "content": "c-prod", "commit": None}
    return {"release": record, "releases": {release: record}, "snapshotId": "snap-77", "vpcId": "vpc-prod",
            "registry": {"address": "registry.digitalocean.com/devtools", "name": "devtools"},
            "registryPullAuth": '{"auths": {"registry.digitalocean.com": {"auth": "cHVsbDpwdWxs"}}}',
            "sshKeyFingerprint": DEPLOY_FINGERPRINT, "data": {"address": "10.110.0.9", "env": dict(DATA_ENV)}}


def blue_outputs(validated: bool = True, content: str = "c-blue") -> dict[str, Any]:
    """What the blue stack exports for prod's traffic to point at it."""
    return {"hosts": {"names": ["devtools-blue-blue-1"], "dropletIds": [555001]},
            "release": {"id": "r1", "content": "c-blue"},
            "validation": {"release": "r1", "content": content, "passed": validated}}


COMMIT = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
SOURCE_ENV = ("DEVTOOLS_COMMIT", "GITHUB_SHA", "GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID", "BUILT_AT")


@contextmanager
def source_env(commit: str = COMMIT) -> Iterator[None]:
    """The program reads the commit and CI facts from the environment: pin them for the run."""
    saved = {k: os.environ.pop(k) for k in SOURCE_ENV if k in os.environ}
    os.environ["DEVTOOLS_COMMIT"] = commit
    try:
        yield
    finally:
        os.environ.pop("DEVTOOLS_COMMIT", None)
        os.environ.update(saved)


def run_stack(stack: str, overrides: dict[str, Any] | None = None, others: dict[str, dict[str, Any]] | None = None,
              key_file: Path | None = None) -> World:
    raw = with_overrides(stack_file_config(stack), overrides or {})
    secrets = set(PROD_SECRETS)
    if stack in ("local", "local-blue"):
        assert key_file is not None, "the local stack reads its key from a file"
        key_file.write_text(SSH_PRIVATE_KEY)
        raw = with_overrides(raw, {"sshPrivateKeyPath": str(key_file)})
        secrets = set(LOCAL_SECRETS)
    with source_env():
        return run_program(stack, raw, secrets, stack_outputs=others or {})
