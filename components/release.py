"""ReleaseRollout: put one release on every host of this color, one host after another, each validated.

Per host, in order: upload the bundle (compose files + release.json + agent code, on stdin), hand over the app
secrets (stdin, to the host's 0600 file) and, for a DigitalOcean registry, this release's read-only pull
credential (stdin, `hostagent registry-auth`: the docker config, 0600), `hostagent apply` (lock, pull, up --wait,
validate, roll back on failure), then a ValidationGate (which restores the previous release when it fails). The
next host starts only after the previous host's gate passed, so a bad release stops `pulumi up` with the previous
release on every host after the failing one.

With a signing policy (agent.signing.Policy) release.json carries it, and the host verifies every
image against its public keys before anything changes; every host command waits for every image's signature
(`signatures`, components.signing), so nothing is applied before all the images are signed.

A pool (two hosts or more) never stays mixed: each host's apply is provisional (`--confirm-within`, longer for
earlier hosts), and once every gate passed a `-confirm` step per host makes it final. When a host fails, no confirm
runs and the hosts before it put the previous release back at their deadline (agent.pool); re-running the update
retries the release on every host (a gate or confirm activates it again where the host went back).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_digitalocean as digitalocean
from pulumi_command import remote

from agent.secretfile import render_secrets
from agent.signing import Policy
from components import commands
from components.config import ReleaseConfig
from components.config_slices import AgentPlace, SshLogin
from components.validation import ValidationGate, ValidationGateArgs

PULL_CREDENTIAL_SECONDS = 7 * 24 * 3600
"""How long a release's pull credential lives: the rollout, and a retry of a failed one within the week. Later
pulls need none (the agent pulls missing images only, and keeps the images of the releases it keeps)."""


@dataclass(frozen=True)
class RolloutHost:
    name: str  # short and stable, part of child names (e.g. "green-1")
    address: pulumi.Input[str]
    port: int
    trigger: pulumi.Input[str]  # the host's identity (droplet id, existing address): a new one re-runs everything


@dataclass(frozen=True)
class ReleaseRolloutArgs:
    place: AgentPlace  # this stack's project on every host
    release: ReleaseConfig  # keep, validator settings, compose env, app secrets
    login: SshLogin  # SSH user and pinned host key
    hosts: Sequence[RolloutHost]
    release_id: pulumi.Input[str]
    images: pulumi.Input[Mapping[str, str]]  # service → repo@sha256:…
    commit: pulumi.Input[str | None]
    private_key: pulumi.Input[str]  # secret
    wait_for: Sequence[pulumi.Resource] = ()  # e.g. the droplets
    registry_name: pulumi.Input[str] | None = None  # the DOCR to mint pull credentials for; None: no login needed
    compose: bytes | None = None  # the tier's compose file (components.tiers.tier_compose); None: compose/'s own
    slo_rules: bytes | None = None  # the stack's SLO rule file (components.slo); None: compose/'s own (defaults)
    extra_env: pulumi.Input[Mapping[str, str]] | None = None
    """Merged over the release env (commands.release_env): the data tier's addresses, its port prefix."""
    signing: Policy | None = None
    """The signatures the hosts verify before anything changes (release.json's `signing`); None: none."""
    signatures: Sequence[pulumi.Resource] = ()
    """The signature of every image this update pushed (components.signing): every host command waits for all."""


class ReleaseRollout(pulumi.ComponentResource):
    manifest: pulumi.Output[dict[str, Any]]
    """release.json as shipped: id, images, env, compose files, source commit (no secrets)."""
    content: pulumi.Output[str]
    """Content hash of the release (manifest without source + compose files + agent code)."""
    validation: pulumi.Output[dict[str, Any]]
    """{"release": id, "content": hash, "passed": bool, "hosts": {host name: gate summary}}."""
    gates: list[ValidationGate]
    """One gate per host, in rollout order; traffic depends on these."""
    applies: list[remote.Command]
    """One `hostagent apply` per host, in rollout order."""
    confirms: list[remote.Command]
    """A pool's (two hosts or more) `hostagent confirm` per host, after every gate; empty for one host."""

    def __init__(self, name: str, args: ReleaseRolloutArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("devtools:index:ReleaseRollout", name, None, opts)
        place, release, env, compose = args.place, args.release, commands.release_env(args.release), args.compose
        rules, signed = args.slo_rules, list(args.signatures)
        signing = args.signing.manifest_section() if args.signing is not None else None
        release_id = pulumi.Output.from_input(args.release_id)
        self.manifest = pulumi.Output.all(rid=release_id, images=args.images, commit=args.commit,
                                          extra=args.extra_env or {}).apply(
            lambda v: commands.manifest(v["rid"], v["images"], {**env, **v["extra"]}, v["commit"], signing))
        self.content = self.manifest.apply(lambda m: commands.content_hash(m, compose, rules))
        # The bundle (base64 of a gzipped tar, the agent's code in it: over 100 KB of text no person reads) is kept
        # secret so that the engine shows it as [secret]: `pulumi up --diff` computes a character diff of a changed
        # string, which for two such payloads ran for many minutes at full CPU before a rollback's update began.
        payload: pulumi.Output[str] = pulumi.Output.secret(
            self.manifest.apply(lambda m: commands.bundle_payload(m, compose, rules)))
        upload_create = pulumi.Output.all(rid=release_id, release=self.manifest).apply(
            lambda v: commands.upload_script(place.root, place.project, v["rid"],
                                             commands.bundle_sha256(v["release"], compose, rules)))

        def apply_create(confirm_within: int) -> pulumi.Output[str]:
            return pulumi.Output.all(rid=release_id, content=self.content).apply(
                lambda v: commands.apply_script(place, v["rid"], v["content"], keep=release.keep,
                                                validator=release.validator, confirm_within=confirm_within))

        rendered = render_secrets({k: s.value for k, s in release.secrets.items()})
        secrets_stdin = pulumi.Output.secret(rendered)
        secrets_fingerprint = pulumi.Output.secret(hashlib.sha256(rendered.encode()).hexdigest())

        pull_auth = self._pull_credential(name, args)
        self.gates, self.applies, self.confirms = [], [], []
        previous: list[pulumi.Resource] = []
        connections: list[remote.ConnectionArgs] = []
        for index, host in enumerate(args.hosts):
            prefix = f"{name}-{host.name}"
            window = commands.confirm_window(index, len(args.hosts))
            conn = commands.connection_args(host.address, host.port, args.login, args.private_key)
            # No command reads PULUMI_COMMAND_STDOUT/STDERR: not sending them spares sshd's AcceptEnv refusals.
            upload = remote.Command(
                f"{prefix}-upload", connection=conn, add_previous_output_in_env=False, create=upload_create,
                stdin=payload, triggers=[host.trigger], logging=remote.Logging.STDERR,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*args.wait_for, *previous, *signed]),
            )
            # Owns the project on this host: destroying the stack runs `hostagent stop` here (containers down,
            # volumes kept). It is replaced only with the host itself, never by a new release or new secrets, so
            # a rollout never stops what it just started.
            lifecycle = remote.Command(
                f"{prefix}-project", connection=conn, add_previous_output_in_env=False,
                create=commands.presence_script(place.root, place.project),
                delete=commands.stop_script(place.root, place.project), triggers=[host.trigger],
                logging=remote.Logging.STDERR, opts=pulumi.ResourceOptions(parent=self, depends_on=[upload, *signed]),
            )
            # Always there, empty included: the host's secrets file is exactly the stack's appSecrets, so a key
            # removed from the config is gone from the host (and, by the trigger below, from the containers) before
            # the apply runs again. A removed resource would be deleted only after every update had run.
            secrets = remote.Command(
                f"{prefix}-secrets", connection=conn, add_previous_output_in_env=False,
                create=commands.secrets_script(place.root, place.project),
                stdin=secrets_stdin, triggers=[host.trigger], logging=remote.Logging.NONE,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[upload, *signed],
                                            additional_secret_outputs=["stdout", "stderr"]),
            )
            before_apply: list[pulumi.Resource] = [upload, lifecycle, secrets]
            if pull_auth is not None:
                # The credential on stdin (a secret, output not logged); the command line names no secret.
                before_apply.append(remote.Command(
                    f"{prefix}-registry-auth", connection=conn, add_previous_output_in_env=False,
                    create=commands.registry_auth_script(place.root, place.project), stdin=pull_auth,
                    triggers=[host.trigger], logging=remote.Logging.NONE,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[upload, *signed],
                                                additional_secret_outputs=["stdout", "stderr"])))
            triggers: list[pulumi.Input[str]] = [host.trigger, secrets_fingerprint]
            # The release (id, digests, compose content via the content hash) lives in `create`: a changed release
            # is an in-place UPDATE that re-runs create, so this host's one rollout slot moves to the new release
            # (never a create-before-delete of a second rollout on the same host). `triggers` holds what the
            # release is applied TO: the host's identity and a fingerprint of the secrets. A new host or rotated
            # secrets REPLACE this resource, which runs the same release again (compose recreates only the
            # services whose environment changed). Identical inputs on two runs are a no-op.
            apply = remote.Command(
                f"{prefix}-apply", connection=conn, add_previous_output_in_env=False, create=apply_create(window),
                triggers=triggers, logging=remote.Logging.STDOUT_AND_STDERR,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*before_apply, *signed]),
            )
            gate = ValidationGate(
                f"{prefix}-validate",
                ValidationGateArgs(place=place, validator=release.validator, connection=conn, release_id=release_id,
                                   content=self.content, host_name=host.name, rerun_on=[apply.id],
                                   confirm_within=window),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[apply, *signed]),
            )
            self.applies.append(apply)
            self.gates.append(gate)
            connections.append(conn)
            previous = [gate]
        # A pool's verdict: once every host's gate passed, each host's provisional release becomes final. A failure
        # anywhere means no confirm, and the hosts already moved put the previous release back by themselves.
        if len(args.hosts) > 1:
            confirm_create = release_id.apply(lambda rid: commands.confirm_script(place, rid))
            for host, conn, apply in zip(args.hosts, connections, self.applies, strict=True):
                self.confirms.append(remote.Command(
                    f"{name}-{host.name}-confirm", connection=conn, add_previous_output_in_env=False,
                    create=confirm_create, triggers=[self.content, apply.id], logging=remote.Logging.STDOUT_AND_STDERR,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[*self.gates, *signed]),
                ))

        summaries: pulumi.Output[dict[str, Any]] = (
            pulumi.Output.all(**{g.host_name: g.summary for g in self.gates}) if self.gates
            else pulumi.Output.from_input({}))
        self.validation = pulumi.Output.all(rid=release_id, content=self.content, hosts=summaries).apply(
            lambda v: {"release": v["rid"], "content": v["content"],
                       "passed": bool(v["hosts"]) and all(s["passed"] for s in v["hosts"].values()),
                       "hosts": v["hosts"]})
        self.register_outputs({"manifest": self.manifest, "content": self.content, "validation": self.validation})

    def _pull_credential(self, name: str, args: ReleaseRolloutArgs) -> pulumi.Output[str] | None:
        """SECRET: a read-only docker config for the registry, minted again for every release and every new host
        (replacement_trigger), expiring after PULL_CREDENTIAL_SECONDS; the provider revokes the one it replaces."""
        if args.registry_name is None:
            return None
        hosts = pulumi.Output.all(*[h.trigger for h in args.hosts])
        creds = digitalocean.ContainerRegistryDockerCredentials(
            f"{name}-pull", registry_name=args.registry_name, write=False, expiry_seconds=PULL_CREDENTIAL_SECONDS,
            opts=pulumi.ResourceOptions(parent=self, replacement_trigger=pulumi.Output.all(content=self.content,
                                                                                          hosts=hosts)))
        return pulumi.Output.secret(creds.docker_credentials)
