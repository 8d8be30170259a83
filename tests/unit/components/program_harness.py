"""Run components or the whole program under Pulumi's mocks and record every registration as the engine sees it.

    world = run_program("prod", config={...}, secret_keys={...}, stack_outputs={"blue": {...}})
    world.one("digitalocean:index/droplet:Droplet").inputs["size"]

Each run gets an empty contextvars.Context and its own event loop, so runs never share runtime state. The
monitor records the raw RegisterResource request (secret markers, protect, retainOnDelete, ignoreChanges,
dependencies, parent), which the SDK's MockResourceArgs leaves out; fake outputs per resource type stand in for
what a provider would return.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import json
import runpy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format  # type: ignore[import-untyped]
from pulumi.runtime import mocks as pmocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import run_in_stack

from components.ssh_keys import md5_fingerprint

ROOT = Path(__file__).resolve().parents[3]
SECRET_SIG = rpc._special_sig_key
SECRET_VALUE = rpc._special_secret_sig
PROJECT = "devtools"


def unwrap(value: Any) -> Any:
    """The plain value with every secret marker removed."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE:
            return unwrap(value.get("value"))
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def plain_strings(value: Any) -> Iterable[str]:
    """Every string in `value` that is NOT inside a secret marker (what a log or a diff would show)."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE:
            return
        for k, v in value.items():
            yield str(k)
            yield from plain_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from plain_strings(v)
    elif isinstance(value, str):
        yield value
    elif value is not None:
        yield json.dumps(value)


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    raw: dict[str, Any]  # inputs as sent, secret markers kept
    protect: bool
    retain_on_delete: bool
    ignore_changes: list[str]
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    additional_secret_outputs: list[str]
    delete_before_replace: bool
    outputs: dict[str, Any] = field(default_factory=dict)
    read_id: str = ""
    """The id of an existing resource this registration reads (`Resource.get`); "" for a managed resource."""
    replacement_trigger: Any = None
    """The `replacement_trigger` option as sent (a change of it replaces the resource); None when not set."""

    @property
    def inputs(self) -> dict[str, Any]:
        value: dict[str, Any] = unwrap(self.raw)
        return value

    def secret_input(self, name: str) -> bool:
        return is_secret(self.raw.get(name))


@dataclass
class World:
    registrations: list[Registration]
    exports: dict[str, Any]  # stack outputs, secret markers kept
    exports_plain: dict[str, Any]

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]

    def one(self, type_: str, name_contains: str = "") -> Registration:
        found = [r for r in self.of_type(type_) if name_contains in r.name]
        assert len(found) == 1, f"expected one {type_} named *{name_contains}*, got {[r.name for r in found]}"
        return found[0]

    def by_urn(self, urn: str) -> Registration:
        for r in self.registrations:
            if r.urn == urn:
                return r
        raise KeyError(urn)

    def depends_on(self, res: Registration, other: Registration) -> bool:
        """Whether `res` waits for `other`, directly or through any chain of dependencies or parents."""
        seen: set[str] = set()
        todo = [res.urn]
        while todo:
            urn = todo.pop()
            if urn in seen:
                continue
            seen.add(urn)
            reg = next((r for r in self.registrations if r.urn == urn), None)
            if reg is None:
                continue
            deps = list(reg.dependencies) + [u for us in reg.property_dependencies.values() for u in us]
            if other.urn in deps:
                return True
            todo += deps
            # a dependency on a component means a dependency on all of its children
            todo += [r.urn for r in self.registrations if r.parent in deps]
        return False


def fake_outputs(  # noqa: PLR0911, PLR0912 - one branch per resource type
    args: pmocks.MockResourceArgs, stack_outputs: Mapping[str, Mapping[str, Any]]
) -> tuple[str, dict[str, Any]]:
    """What a provider would return for each resource type this program uses."""
    t, inputs = args.typ, dict(args.inputs)
    # ids derive from the resource's type and name, never from registration order (which varies between runs),
    # so two runs of the same program get the same fake outputs
    n = int(hashlib.sha256(f"{t}::{args.name}".encode()).hexdigest()[:6], 16) % 9000 + 1000
    if t == "pulumi:pulumi:StackReference":
        name = str(inputs.get("name") or args.name)
        short = name.rsplit("/", 1)[-1]
        if short not in stack_outputs:
            return name, {"name": name, "outputs": {}, "secretOutputNames": []}
        outs = dict(stack_outputs[short])
        return name, {"name": name, "outputs": outs, "secretOutputNames": []}
    if t == "digitalocean:index/droplet:Droplet":
        return str(400000 + n), {**inputs, "ipv4Address": f"203.0.113.{n % 250 + 1}",
                                 "ipv4AddressPrivate": f"10.110.0.{n % 250 + 2}", "urn": "", "status": "active"}
    if t == "digitalocean:index/vpc:Vpc":
        return f"vpc-{n:04d}", {**inputs}
    if t == "digitalocean:index/containerRegistry:ContainerRegistry":
        # A read (an adopted registry) has only its id, the name; one named *-basic reads as a basic-tier registry.
        name = inputs.get("name") or args.resource_id or "devtools"
        tier = inputs.get("subscriptionTierSlug") or ("basic" if name.endswith("-basic") else "professional")
        return name, {**inputs, "name": name, "subscriptionTierSlug": tier,
                      "endpoint": f"registry.digitalocean.com/{name}", "serverUrl": "registry.digitalocean.com"}
    if t == "digitalocean:index/containerRegistryDockerCredentials:ContainerRegistryDockerCredentials":
        kind = "write" if inputs.get("write") else "read"
        auth = base64.b64encode(f"do-{kind}-token-{n}:do-{kind}-token-{n}".encode()).decode()
        creds = json.dumps({"auths": {"registry.digitalocean.com": {"auth": auth}}})
        return f"creds-{n}", {**inputs, "dockerCredentials": creds}
    if t == "docker-build:index:Image":
        tags = inputs.get("tags") or [args.name]
        digest = "sha256:" + hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
        return f"img-{n}", {**inputs, "digest": digest, "ref": f"{tags[0]}@{digest}"}
    if t == "command:remote:Command":
        create = str(inputs.get("create", ""))
        stdout = ""
        if " gate --release " in create:  # `hostagent gate` (components.commands.validate_script)
            stdout = json.dumps({"passed": True, "checks": 16, "failed": [], "duration_s": 1.2})
        return f"cmd-{n}", {**inputs, "stdout": stdout, "stderr": ""}
    if t == "command:local:Command":
        return f"cmd-{n}", {**inputs, "stdout": "", "stderr": ""}
    if t == "digitalocean:index/loadBalancer:LoadBalancer":
        return f"lb-{n}", {**inputs, "ip": "198.51.100.10", "urn": ""}
    if t == "digitalocean:index/reservedIp:ReservedIp":
        return "198.51.100.20", {**inputs, "ipAddress": "198.51.100.20"}
    if t == "digitalocean:index/sshKey:SshKey":  # DigitalOcean names a key by its MD5 fingerprint
        return f"{n}", {**inputs, "fingerprint": md5_fingerprint(str(inputs.get("publicKey")))}
    if t == "digitalocean:index/dropletSnapshot:DropletSnapshot":
        return f"snap-{n}", {**inputs}
    return f"{args.name}-{n}", dict(inputs)


class Recorder(pmocks.Mocks):
    def __init__(self, stack_outputs: Mapping[str, Mapping[str, Any]]) -> None:
        self.stack_outputs = stack_outputs
        self.outputs: dict[str, dict[str, Any]] = {}  # name → outputs

    def new_resource(self, args: pmocks.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        id_, outs = fake_outputs(args, self.stack_outputs)
        self.outputs[f"{args.typ}::{args.name}"] = {**outs, "id": id_}
        return id_, outs

    def call(self, args: pmocks.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        return {}, None


class RecordingMonitor(pmocks.MockMonitor):
    def __init__(self, mocks: Recorder) -> None:
        super().__init__(mocks)
        self.recorder = mocks
        self.registrations: list[Registration] = []
        self.stack_outputs: dict[str, Any] = {}

    def _record(self, request: Any, custom: bool) -> None:
        raw = rpc.deserialize_properties(request.object, keep_unknowns=True, keep_internal=True)
        urn = self.make_urn(request.parent, request.type, request.name)
        self.registrations.append(Registration(
            type=request.type, name=request.name, urn=urn, parent=request.parent, custom=custom,
            raw=_json_safe(raw), protect=bool(getattr(request, "protect", False)),
            retain_on_delete=bool(getattr(request, "retainOnDelete", False)),
            ignore_changes=list(getattr(request, "ignoreChanges", [])),
            dependencies=list(getattr(request, "dependencies", [])),
            property_dependencies={k: list(v.urns) for k, v in getattr(request, "propertyDependencies", {}).items()},
            additional_secret_outputs=list(getattr(request, "additionalSecretOutputs", [])),
            delete_before_replace=bool(getattr(request, "deleteBeforeReplace", False)),
            replacement_trigger=(unwrap(json_format.MessageToDict(request.replacement_trigger))
                                 if request.HasField("replacement_trigger") else None),
        ))

    def RegisterResource(self, request: Any) -> Any:
        if request.type != "pulumi:pulumi:Stack":
            self._record(request, bool(request.custom))
        return super().RegisterResource(request)

    def ReadResource(self, request: Any) -> Any:
        urn = self.make_urn(request.parent, request.type, request.name)
        self.registrations.append(Registration(request.type, request.name, urn, request.parent, True, {}, False,
                                               False, [], list(request.dependencies), {}, [], False,
                                               read_id=request.id))
        return super().ReadResource(request)

    def RegisterResourceOutputs(self, request: Any) -> Any:
        if "pulumi:pulumi:Stack" in request.urn:
            self.stack_outputs = _json_safe(rpc.deserialize_properties(request.outputs, keep_internal=True))
        return super().RegisterResourceOutputs(request)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def run_components(fn: Callable[[], None], *, stack: str = "test", config: Mapping[str, Any] | None = None,
                   secret_keys: Iterable[str] = (), stack_outputs: Mapping[str, Mapping[str, Any]] | None = None,
                   preview: bool = False) -> World:
    """Run `fn` (which declares resources) as a whole Pulumi program under mocks; return what it registered."""

    def go() -> World:
        recorder = Recorder(stack_outputs or {})
        monitor = RecordingMonitor(recorder)
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_quiet_unretrieved)
        asyncio.set_event_loop(loop)
        try:
            pmocks.set_mocks(recorder, project=PROJECT, stack=stack, preview=preview, monitor=monitor,
                             organization="organization")
            settings.ROOT.set(None)  # set_mocks made a finished root stack; run_in_stack makes the real one
            set_all_config({str(k): _config_text(v) for k, v in (config or {}).items()}, list(secret_keys))
            loop.run_until_complete(run_in_stack(fn))
            # The stack's outputs are registered by a task the SDK schedules last and does not always wait for
            # (the engine would, through its shutdown signal): let what is still running finish, or a loaded
            # machine records the stack without its outputs now and then.
            if pending := asyncio.all_tasks(loop):
                loop.run_until_complete(asyncio.wait(pending, timeout=10))
        except Exception as exc:
            exc.registrations = list(monitor.registrations)  # type: ignore[attr-defined]
            raise
        finally:
            # A failed program leaves output tasks behind; cancel them on this loop and forget them, so the next
            # run (its own loop) does not wait for tasks of a closed loop.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            settings.SETTINGS.outputs.clear()
            asyncio.set_event_loop(None)
            loop.close()
        for reg in monitor.registrations:
            reg.outputs = recorder.outputs.get(f"{reg.type}::{reg.name}", {})
        return World(monitor.registrations, monitor.stack_outputs, unwrap(monitor.stack_outputs))

    return contextvars.Context().run(go)


def _quiet_unretrieved(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A failed program leaves Outputs' futures holding its exception, never awaited. Their finalizer would log it
    whenever the garbage collector runs, possibly inside another test's ast.parse, where formatting the traceback
    (Python 3.11 parses source for its carets) breaks the parser's recursion count: `SystemError: AST constructor
    recursion depth mismatch`. The test has already seen that exception; anything else is reported as usual."""
    if context.get("message") != "Future exception was never retrieved":
        loop.default_exception_handler(context)


def _config_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def run_program(stack: str, config: Mapping[str, Any], secret_keys: Iterable[str] = (),
                stack_outputs: Mapping[str, Mapping[str, Any]] | None = None, preview: bool = False) -> World:
    """Run the project's __main__.py for `stack` under mocks."""
    def main() -> None:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__pulumi_main__")

    return run_components(main, stack=stack, config=config, secret_keys=secret_keys, stack_outputs=stack_outputs,
                          preview=preview)


def secret_leaks(world: World, secrets: Iterable[str]) -> list[str]:
    """Where any of `secrets` appears in plain text: a resource input or a stack output outside a secret marker."""
    needles = [s for s in secrets if s]
    leaks: list[str] = []
    for reg in world.registrations:
        for text in plain_strings(reg.raw):
            leaks += [f"{reg.type} {reg.name}: input" for s in needles if s in text]
    for name, value in world.exports.items():
        for text in plain_strings(value):
            leaks += [f"stack output {name}" for s in needles if s in text]
    return leaks
