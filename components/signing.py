"""ImageSignatures: sign every image this update pushed, by its digest, with the stack's cosign key.

One local command per service (`<name>-<service>`) runs `cosign sign` of the service's digest pin after the push
(components.commands.sign_command). The pin is the command's trigger: an unchanged digest is never signed again, a
new one replaces the command, which signs it (the registry keeps the old digest's signature beside its image; there
is no delete command). The private key and its password reach cosign in the command's environment as secrets, never
in the command line; so do the push credentials of a registry that needs a login (a temporary DOCKER_CONFIG the
command writes from its environment and removes). A changed key or credential updates the commands, and an update
runs the signature again: the current images are then signed by the new key too (a key rotation,
docs/runbook.md). The rollouts depend on every signature command, so no host applies a release before all of its
images are signed.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_command import local

from components import commands


@dataclass(frozen=True)
class ImageSignaturesArgs:
    pins: Mapping[str, pulumi.Input[str]]  # service → repo@sha256:… (ServiceImages.pins)
    private_key: pulumi.Input[str]  # SECRET: the encrypted PEM private key (cosign.key)
    password: pulumi.Input[str]  # SECRET: its password, "" for none
    registry_server: pulumi.Input[str]  # what the push credentials log in to (Registry.server)
    push_username: pulumi.Input[str] | None = None  # None: the registry needs no login (loopback)
    push_password: pulumi.Input[str] | None = None


def _signed(triggers: Sequence[Any] | None) -> str:
    """The ref a signature command signed: its one trigger, the digest pin (read from the command's outputs, so
    whatever uses it waits for the signature)."""
    if not triggers:
        raise ValueError("a signature command without its digest pin as trigger")
    return str(triggers[0])


class ImageSignatures(pulumi.ComponentResource):
    commands: list[local.Command]
    """One `cosign sign` per service, in service order; rollouts depend on each."""
    signed: pulumi.Output[dict[str, str]]
    """service → the repo@sha256:… signed, known once its signature command ran."""

    def __init__(self, name: str, args: ImageSignaturesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("devtools:index:ImageSignatures", name, None, opts)
        if (args.push_username is None) != (args.push_password is None):
            raise ValueError("ImageSignatures: push_username and push_password are given together or not at all")
        environment: dict[str, pulumi.Input[str]] = {
            commands.COSIGN_KEY_ENV: pulumi.Output.secret(args.private_key),
            commands.COSIGN_PASSWORD_ENV: pulumi.Output.secret(args.password),
        }
        login = args.push_username is not None and args.push_password is not None
        if login:
            environment[commands.REGISTRY_AUTH_ENV] = pulumi.Output.secret(pulumi.Output.all(
                server=args.registry_server, user=args.push_username, password=args.push_password).apply(
                lambda v: commands.docker_config_json(v["server"], v["user"], v["password"])))
        script = functools.partial(commands.sign_command, registry_auth=login)
        self.commands = []
        signed: dict[str, pulumi.Output[str]] = {}
        for service in sorted(args.pins):
            pin = pulumi.Output.from_input(args.pins[service])
            command = local.Command(
                f"{name}-{service}", create=pin.apply(script), environment=environment, triggers=[pin],
                add_previous_output_in_env=False, logging=local.Logging.STDOUT_AND_STDERR,
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["environment"]))
            self.commands.append(command)
            signed[service] = command.triggers.apply(_signed)
        self.signed = (pulumi.Output.all(**signed).apply(lambda v: {k: str(s) for k, s in v.items()}) if signed
                       else pulumi.Output.from_input({}))
        self.register_outputs({"signed": self.signed})
