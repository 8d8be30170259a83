"""The operator CLI's edges: the `pulumi` CLI (a subprocess) and the hosts (SSH to `agent.hostagent`).

Secrets: the SSH private key read from the stack (`pulumi config get`, stdout captured) is written only to a
0600 file in a private temporary directory that is removed afterwards; it never reaches argv or a log line.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from components.config_keys import NAMESPACE
from ops import operator_plan as plan
from ops.ship import SshTarget
from standin import lbctl, localenv

PULUMI_MISSING = ("the Pulumi CLI (`pulumi`) is not on PATH. Install it (https://www.pulumi.com/docs/install/, "
                  "the version in requirements.txt), or on this machine build it with `make pulumi-toolchain` and "
                  "run `eval \"$(scripts/pulumi-toolchain.sh env)\"`")


EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DECLINED = 0, 1, 2, 3


class CliError(Exception):
    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Pulumi:
    cwd: Path
    env: dict[str, str]

    @classmethod
    def find(cls, cwd: Path, env: dict[str, str]) -> Pulumi:
        if shutil.which("pulumi", path=env.get("PATH", os.defpath)) is None:
            raise CliError(PULUMI_MISSING, 2)
        if not (cwd / "Pulumi.yaml").is_file():
            raise CliError(f"{cwd}: no Pulumi.yaml here; pass --cwd <the project checkout>", 2)
        return cls(cwd, env)

    def capture(self, argv: Sequence[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), cwd=self.cwd, env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def feed(self, argv: Sequence[str], text: str) -> int:
        """Run a changing step with `text` on its stdin (a secret value: never in argv), output on this terminal."""
        return subprocess.run(list(argv), cwd=self.cwd, env=self.env, input=text, text=True, check=False).returncode

    def stream(self, argv: Sequence[str]) -> int:
        """Run a changing step with its output on this terminal (the engine's own progress and diff)."""
        return subprocess.run(list(argv), cwd=self.cwd, env=self.env, check=False).returncode

    def outputs(self, stack: str) -> dict[str, Any]:
        proc = self.capture(plan.stack_outputs(stack))
        if proc.returncode != 0:
            raise CliError(f"cannot read stack {stack}'s outputs: {proc.stderr.strip() or proc.stdout.strip()}", 2)
        try:
            data = json.loads(proc.stdout or "{}")
        except json.JSONDecodeError as exc:
            raise CliError(f"stack {stack}'s outputs are not JSON ({exc})", 2) from exc
        if not isinstance(data, dict):
            raise CliError(f"stack {stack}'s outputs are not a JSON object", 2)
        return data

    def export(self, stack: str) -> dict[str, Any]:
        """The stack's state (`pulumi stack export`: resources and URNs; secrets stay encrypted)."""
        proc = self.capture(plan.stack_export(stack))
        if proc.returncode != 0:
            raise CliError(f"cannot export stack {stack}: {proc.stderr.strip() or proc.stdout.strip()}", 2)
        try:
            data = json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            raise CliError(f"stack {stack}'s export is not JSON ({exc})", 2) from exc
        return data if isinstance(data, dict) else {}

    def config(self, stack: str, key: str) -> str:
        """One config value ("" when the key is not set). The value may be a secret: never log it."""
        return self.config_value(stack, key) or ""

    def config_value(self, stack: str, key: str) -> str | None:
        """One config value, None when the key is not set (an empty value set on purpose stays ""). The value may
        be a secret: never log it."""
        proc = self.capture(plan.config_get(stack, key), timeout=60)
        if proc.returncode == 0:
            return proc.stdout.rstrip("\n")
        if "not found" in proc.stderr:
            return None
        # Not "unset" but unreadable (no passphrase, no backend login, ...): say so rather than guess.
        raise CliError(f"cannot read {NAMESPACE}:{key} of stack {stack}: {proc.stderr.strip()}", 2)

    def changed_in_git(self, path: Path) -> bool:
        if not (self.cwd / ".git").exists() or shutil.which("git") is None:
            return False
        proc = subprocess.run(["git", "-C", str(self.cwd), "diff", "--quiet", "--", path.name],
                              capture_output=True, check=False)
        return proc.returncode == 1


def append_step_summary(markdown: str) -> None:
    """Append to the GitHub job summary when running in Actions (GITHUB_STEP_SUMMARY set); else nothing."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(markdown)


def confirm(question: str, assume_yes: bool, stdin: TextIO, out: TextIO) -> bool:
    if assume_yes:
        return True
    if not stdin.isatty():
        raise CliError("not a terminal, so nobody can answer the question: pass --yes to go ahead", EXIT_USAGE)
    out.write(f"{question} [y/N] ")
    out.flush()
    return stdin.readline().strip().lower() in ("y", "yes")


def run_plan(pulumi: Pulumi, title: str, steps: Sequence[plan.Step], args: argparse.Namespace) -> int:
    print(plan.render_plan(title, steps), flush=True)
    if not confirm("Go ahead?", args.yes, sys.stdin, sys.stdout):
        print("declined: nothing changed")
        return EXIT_DECLINED
    for i, step in enumerate(steps, start=1):
        print(f"==> {i}/{len(steps)} {step.what}", flush=True)
        code = pulumi.stream(step.argv)
        if code != 0:
            done = "; ".join(s.what for s in steps[:i - 1]) or "nothing"
            print(f"step {i} failed (exit {code}); already done: {done}. The engine's message above says why; "
                  f"fix it and run the same command again, or undo the config change with "
                  f"`git checkout Pulumi.{args.stack}.yaml`.", file=sys.stderr)
            return EXIT_FAILED
    stack_file = pulumi.cwd / f"Pulumi.{args.stack}.yaml"
    if pulumi.changed_in_git(stack_file):
        print(f"note: {stack_file.name} changed. Commit it, or the next deploy from main puts the old value back.")
    return EXIT_OK


def local_serving(pulumi: Pulumi, stack: str) -> list[str] | None:
    """What the stand-in's haproxy serves, for a stack whose traffic resource is the local proxy; else None."""
    if pulumi.config(stack, "traffic") != "localProxy":
        return None
    try:
        return lbctl.serving(localenv.load().lb_socket)
    except lbctl.LbError as exc:
        raise CliError(f"stack {stack} routes through the stand-in's haproxy, which does not answer ({exc}): "
                       "start it with `make env`", EXIT_FAILED) from exc


@contextmanager
def ssh_targets(pulumi: Pulumi, stack: str, hosts: Sequence[plan.HostAccess], key_file: Path | None
                ) -> Iterator[list[SshTarget]]:
    """SSH targets for the stack's hosts: its key, and its pinned host keys (else trust on first use)."""
    with tempfile.TemporaryDirectory(prefix="devtools-ops-") as tmp:
        private = Path(tmp)
        key = key_file or _stack_key(pulumi, stack, private)
        known = private / "known_hosts"
        known.write_text("".join(plan.known_hosts_line(h) for h in hosts if h.host_key))
        targets = [SshTarget(h.address, h.port, h.user, key, known, "yes" if h.host_key else "accept-new")
                   for h in hosts]
        yield targets


def _stack_key(pulumi: Pulumi, stack: str, private: Path) -> Path:
    path = pulumi.config(stack, "sshPrivateKeyPath")
    if path:
        return Path(path).expanduser()
    secret = pulumi.config(stack, "sshPrivateKey")
    if not secret:
        raise CliError(f"stack {stack} has neither devtools:sshPrivateKeyPath nor devtools:sshPrivateKey; "
                       f"pass --ssh-key FILE", 2)
    key = private / "id"
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret if secret.endswith("\n") else secret + "\n")
    return key


def generate_host_key(stack: str) -> str:
    """A new ed25519 host key (the private half, as ssh-keygen writes it), made in a private temporary directory
    that is removed before this returns."""
    if shutil.which("ssh-keygen") is None:
        raise CliError("ssh-keygen is not on PATH: install OpenSSH's client tools", 2)
    with tempfile.TemporaryDirectory(prefix="devtools-hostkey-") as tmp:
        path = Path(tmp) / "host_key"
        proc = subprocess.run(plan.keygen_argv(str(path), stack), capture_output=True, text=True, timeout=60,
                              check=False)
        if proc.returncode != 0:
            raise CliError(f"ssh-keygen failed (exit {proc.returncode}): {proc.stderr.strip()}", 1)
        return path.read_text()


def host_status(target: SshTarget, host: plan.HostAccess, timeout: float = 60) -> dict[str, Any]:
    """`hostagent status` of the stack's project on one host; an unreachable host becomes an `error` entry."""
    argv = target.argv(plan.status_command(host))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"ssh {host.address}:{host.port}: no answer in {timeout:.0f}s", "services": {}}
    if proc.returncode != 0:
        return {"error": f"ssh {host.address}:{host.port}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}",
                "services": {}}
    try:
        data: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        return {"error": f"{host.name}: hostagent status printed no JSON ({exc})", "services": {}}
    return data


def collect_from(target: SshTarget, host: plan.HostAccess, dest: Path, timeout: float = 120) -> str | None:
    """Copy reports/ and diagnostics/ of one host into dest; the error text, or None."""
    proc = subprocess.run(target.argv(plan.collect_command(host)), capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        return f"exit {proc.returncode}: {proc.stderr.decode(errors='replace').strip()[-300:]}"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "reports").mkdir(exist_ok=True)
    (dest / "diagnostics").mkdir(exist_ok=True)
    if proc.stdout:
        with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
            tar.extractall(dest, filter="data")
    return None


@contextmanager
def prometheus_tunnel(target: SshTarget, remote_port: int, timeout: float = 20) -> Iterator[str]:
    """The URL of a host's own Prometheus (127.0.0.1:remote_port there), through an SSH local forward for as long
    as the block runs."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        local_port = probe.getsockname()[1]
    proc = subprocess.Popen(plan.tunnel_argv(target.argv(":"), local_port, remote_port), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
                raise CliError(f"ssh tunnel to {target.host}:{remote_port} ended (exit {proc.returncode}): "
                               f"{err[-300:]}", EXIT_FAILED)
            try:
                socket.create_connection(("127.0.0.1", local_port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise CliError(f"ssh tunnel to {target.host}:{remote_port}: not up in {timeout:.0f}s",
                                   EXIT_FAILED) from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{local_port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
