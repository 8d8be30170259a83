"""The project's own pulumi-resource-command (tools/pulumi-resource-command: the subset of pulumi-command 1.2.1 that
the program uses) on the real engine: a tiny Pulumi project of its own, the pinned pulumi_command SDK, and the SSH
stand-in of scripts/local-env.sh as the remote host (the same machine, so the tests read what the commands wrote)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from standin import localenv
from tests.engine.conftest import ROOT, Workspace, file_backend, toolchain_env

STACK = "test"
# The program: every resource comes from spec.json, which each test rewrites between runs (keyword arguments as
# the SDK spells them, plus: export (default true), secret_stdin, secret_outputs).
PROGRAM = '''\
import json
import pathlib

import pulumi
from pulumi_command import local, remote

spec = json.loads(pathlib.Path("spec.json").read_text())
for kind, module in (("remote", remote), ("local", local)):
    for name, args in spec.get(kind, {}).items():
        if kind == "remote":
            conn = {**spec["connection"], **args.pop("connection", {})}
            conn["private_key"] = pathlib.Path(conn.pop("private_key_file")).read_text()  # plain text on purpose
            args["connection"] = remote.ConnectionArgs(**conn)
        if args.pop("secret_stdin", False):
            args["stdin"] = pulumi.Output.secret(args["stdin"])
        opts = pulumi.ResourceOptions(additional_secret_outputs=args.pop("secret_outputs", []))
        export = args.pop("export", True)
        cmd = module.Command(name, **args, opts=opts)
        if export:
            pulumi.export(name, cmd.stdout)
'''


@dataclass
class Project:
    ws: Workspace
    host_dir: Path
    """Where the commands write (on the SSH stand-in, which is this machine)."""
    connection: dict[str, Any]

    def apply(self, spec: dict[str, Any]) -> None:
        (self.ws.dir / "spec.json").write_text(json.dumps({"connection": self.connection, **spec}))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.ws.pulumi(*args, stack=STACK)

    def up(self, spec: dict[str, Any] | None = None) -> str:
        if spec is not None:
            self.apply(spec)
        proc = self.run("up", "--yes")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def ops(self) -> dict[str, str]:
        """What a preview of the current spec would do, per resource name."""
        proc = self.run("preview", "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return {s["urn"].rsplit("::", 1)[1]: s["op"] for s in json.loads(proc.stdout)["steps"]}

    def outputs(self) -> dict[str, Any]:
        proc = self.run("stack", "output", "--json", "--show-secrets")
        assert proc.returncode == 0, proc.stderr
        return dict(json.loads(proc.stdout))

    def export(self) -> str:
        proc = self.run("stack", "export")
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def state(self, name: str) -> dict[str, Any]:
        for r in json.loads(self.export())["deployment"]["resources"]:
            if r["urn"].endswith(f"::{name}"):
                return dict(r)
        raise AssertionError(f"{name} is not in the state")

    def lines(self, name: str) -> list[str]:
        path = self.host_dir / name
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture(scope="module")
def stand_in() -> dict[str, Any]:
    """The SSH stand-in (started if needed) and the plugin under test, registered at the SDK pin's version."""
    up = subprocess.run(["bash", str(ROOT / "scripts" / "local-env.sh"), "up"], capture_output=True, text=True,
                        timeout=600, check=False)
    if up.returncode != 0:
        pytest.fail(f"scripts/local-env.sh up failed: {up.stdout}{up.stderr}")
    plugins = subprocess.run(["pulumi", "plugin", "ls", "--json"], env=toolchain_env(), capture_output=True,
                             text=True, timeout=60, check=True)
    if not any(p["name"] == "command" and p["version"] == "1.2.1" for p in json.loads(plugins.stdout)):
        pytest.fail("plugin resource command 1.2.1 is not installed: run scripts/pulumi-toolchain.sh install")
    env = localenv.load()
    host_key = env.known_hosts.read_text().split(None, 1)[1].strip()  # "[host]:port <type> <key>"
    return {"host": env.ssh_host, "port": env.ssh_port, "user": env.ssh_user,
            "private_key_file": str(env.ssh_key), "host_key": host_key, "dial_error_limit": 2}


@pytest.fixture
def project(stand_in: dict[str, Any], tmp_path: Path) -> Iterator[Project]:
    """A tiny project of its own (the project's .venv, a file backend in tmp_path), one stack."""
    for name in ("project", "state", "host"):
        (tmp_path / name).mkdir()
    (tmp_path / "project" / "Pulumi.yaml").write_text(
        f"name: command-provider-test\nruntime:\n  name: python\n  options:\n    toolchain: pip\n"
        f"    virtualenv: {ROOT / '.venv'}\n")
    (tmp_path / "project" / "__main__.py").write_text(PROGRAM)
    env = {**toolchain_env(), "PULUMI_BACKEND_URL": file_backend(tmp_path / "state"),
           "PULUMI_HOME": os.environ.get("PULUMI_HOME", str(Path.home() / ".pulumi"))}
    ws = Workspace(tmp_path / "project", env)
    init = ws.pulumi("stack", "init", stack=STACK)
    assert init.returncode == 0, init.stderr
    yield Project(ws, tmp_path / "host", stand_in)


def test_create_runs_once_and_identical_inputs_are_a_no_op(project: Project) -> None:
    """create runs once and its stdout is captured; a second `up` with the same inputs runs nothing. The logging
    input decides which streams reach the engine's output."""
    log = project.host_dir / "create.log"
    spec = {"remote": {
        "r": {"create": f"echo run >> {log}; echo out-$((40+2)); echo err-line >&2"},
        "loud": {"create": "echo loud-out; echo loud-err >&2", "export": False},
        "quiet": {"create": "echo quiet-out; echo quiet-err >&2", "logging": "none", "export": False},
        "outonly": {"create": "echo only-out; echo only-err >&2", "logging": "stdout", "export": False},
    }}
    out = project.up(spec)
    assert project.lines("create.log") == ["run"]
    assert project.outputs() == {"r": "out-42"}  # stdout, without its trailing newline
    assert "loud-out" in out and "loud-err" in out  # logging unset: both streams
    assert "quiet-out" not in out and "quiet-err" not in out
    assert "only-out" in out and "only-err" not in out
    assert project.run("preview", "--expect-no-changes").returncode == 0
    again = project.up()
    assert project.lines("create.log") == ["run"]
    assert "loud-out" not in again and "err-line" not in again


def test_stdin_reaches_the_command(project: Project) -> None:
    copy = project.host_dir / "stdin.copy"
    text = "line one\nline 'two' $HOME\n"
    project.up({"remote": {"s": {"create": f"cat > {copy}; wc -c < {copy}", "stdin": text}}})
    assert copy.read_text() == text
    assert project.outputs()["s"].strip() == str(len(text.encode()))


def test_changing_create_is_an_update_not_a_replace(project: Project) -> None:
    """A changed create re-runs create in place (same id, no delete); with `update` set, update runs instead."""
    log = project.host_dir / "log"

    def spec(version: int) -> dict[str, Any]:
        return {"remote": {
            "plain": {"create": f"echo create-v{version} >> {log}; echo v{version}", "delete": f"echo delete >> {log}"},
            "withupdate": {"create": f"echo wu-create-v{version} >> {log}",
                           "update": f"echo wu-update >> {log}; echo updated"},
        }}

    project.up(spec(1))
    first_id = project.state("plain")["id"]
    project.apply(spec(2))
    ops = project.ops()
    assert (ops["plain"], ops["withupdate"]) == ("update", "update")
    project.up()
    assert sorted(project.lines("log")) == sorted(["create-v1", "wu-create-v1", "create-v2", "wu-update"])
    assert project.state("plain")["id"] == first_id
    assert project.outputs() == {"plain": "v2", "withupdate": "updated"}


def test_changing_triggers_replaces_creating_first(project: Project) -> None:
    """A changed trigger replaces the resource: as upstream (no delete-before-replace in its diff), the new one is
    created first and the old one's delete runs after. `destroy` runs delete too."""
    log = project.host_dir / "log"

    def spec(generation: int) -> dict[str, Any]:
        return {"remote": {"t": {"create": f"echo create-{generation} >> {log}",
                                 "delete": f"echo delete-{generation} >> {log}", "triggers": [generation, "x"]}}}

    project.up(spec(1))
    first_id = project.state("t")["id"]
    project.apply(spec(2))
    assert project.ops()["t"] == "replace"
    project.up()
    assert project.lines("log") == ["create-1", "create-2", "delete-1"]
    assert project.state("t")["id"] != first_id
    assert project.run("destroy", "--yes").returncode == 0
    assert project.lines("log")[-1] == "delete-2"


def test_failing_command_fails_up_with_its_output(project: Project) -> None:
    project.apply({"remote": {"f": {"create": "echo partial-out; echo disk-full-on-host >&2; exit 3"}}})
    up = project.run("up", "--yes")
    out = up.stdout + up.stderr
    assert up.returncode != 0
    assert "disk-full-on-host" in out and "partial-out" in out
    assert "Process exited with status 3" in out
    assert "::f" not in project.export()  # a failed create records nothing


def test_wrong_host_key_is_refused(project: Project, tmp_path: Path) -> None:
    """hostKey pins the server's key: any other key fails the dial and the command never runs."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other = (tmp_path / "other.pub").read_text().strip()
    marker = project.host_dir / "ran"
    project.apply({"remote": {"h": {"create": f"touch {marker}",
                                    "connection": {"host_key": other, "dial_error_limit": 0}}}})
    up = project.run("up", "--yes")
    assert up.returncode != 0
    assert "host key mismatch" in up.stdout + up.stderr
    assert not marker.exists()


def test_secrets_stay_out_of_the_state(project: Project) -> None:
    """The private key (given in plain text by the program) and a secret stdin are encrypted in the state; stdout
    is secret when the program asks for it (additionalSecretOutputs), and, as upstream since its regression fix
    for issue 256, not merely because the connection is."""
    key_body = Path(project.connection["private_key_file"]).read_text().splitlines()[1]
    project.up({"remote": {
        "sec": {"create": "tr a-z A-Z", "stdin": "stdin-secret-value", "secret_stdin": True,
                "secret_outputs": ["stdout"]},
        "pub": {"create": "echo public-stdout"},
    }})
    assert project.outputs()["sec"] == "STDIN-SECRET-VALUE"
    exported = project.export()
    assert key_body not in exported
    assert "PRIVATE KEY" not in exported
    assert "stdin-secret-value" not in exported
    assert "STDIN-SECRET-VALUE" not in exported
    sec, pub = project.state("sec"), project.state("pub")
    secret_sig = "4dabf18193072939515e22adb298388d"
    for state in (sec, pub):
        assert secret_sig in json.dumps(state["inputs"]["connection"])
        assert secret_sig in json.dumps(state["outputs"]["connection"])
    assert secret_sig in json.dumps(sec["outputs"]["stdout"])
    assert pub["outputs"]["stdout"] == "public-stdout"


def test_local_command(project: Project) -> None:
    """local.Command: interpreter, dir, environment and stdin reach the process; an update re-runs create with the
    previous stdout in PULUMI_COMMAND_STDOUT, and delete gets it too."""
    log = project.host_dir / "local.log"

    def spec(version: int) -> dict[str, Any]:
        return {"local": {"l": {
            "create": f"echo v{version} $GREETING $(pwd) $(cat) prev=$PULUMI_COMMAND_STDOUT | tee -a {log}",
            "delete": f"echo deleted prev=$PULUMI_COMMAND_STDOUT >> {log}",
            "interpreter": ["/bin/bash", "-c"], "dir": str(project.host_dir), "environment": {"GREETING": "hi"},
            "stdin": "from-stdin",
        }}}

    project.up(spec(1))
    assert project.outputs()["l"] == f"v1 hi {project.host_dir} from-stdin prev="
    project.up(spec(2))
    assert project.lines("local.log")[-1] == f"v2 hi {project.host_dir} from-stdin prev=v1 hi {project.host_dir} " \
                                             "from-stdin prev="
    assert project.run("destroy", "--yes").returncode == 0
    assert project.lines("local.log")[-1].startswith(f"deleted prev=v2 hi {project.host_dir}")


def test_unimplemented_inputs_are_refused(project: Project) -> None:
    """What this build does not implement fails the preview by name instead of being ignored."""
    for name, spec in (("connection.password", {"remote": {"p": {"create": "true", "connection": {"password": "pw"}}}}),
                       ("assetPaths", {"local": {"a": {"create": "true", "asset_paths": ["*.txt"]}}})):
        project.apply(spec)
        preview = project.run("preview")
        assert preview.returncode != 0
        assert f"{name} is not supported by this project's own pulumi-resource-command" in preview.stdout
