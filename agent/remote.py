"""Every command line that reaches a host from outside, and the upload that carries the agent there: one home
for the host agent's paths and module names, used by the Pulumi program (components/commands.py), the laptop's
`ops.ship` and the host agent itself (the validator's argv). Pure: strings and bytes from arguments.

Layout under the host root (default /opt/devtools):
    code/agent/              this package, replaced as a whole by each upload (compiled on arrival)
    venv/                    the python the agent runs with (stdlib + agent/requirements.txt)
    <project>/incoming/<id>/ what the project's last upload of <id> unpacked; `apply` reads it
"""

from __future__ import annotations

import io
import json
import shlex
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

AGENT_PACKAGE = Path(__file__).resolve().parent
"""The package shipped to hosts: this directory, nothing else."""
BUNDLE_FILES = ("docker-compose.yml", "caddy/Caddyfile", "prometheus/prometheus.yml", "prometheus/slo-rules.yml")
"""The compose files a release bundle carries, relative to the compose directory (slo-rules.yml there holds the
default targets' rules; the program ships the stack's own, components.slo)."""


def code_dir(host_root: str) -> str:
    """The directory holding the agent package on a host (the working directory of every agent command)."""
    return f"{host_root}/code"


def host_python(host_root: str) -> str:
    return f"{host_root}/venv/bin/python"


def incoming_dir(host_root: str, project: str, release_id: str) -> str:
    """Where an upload lands on the host: under its own project, so two projects on one host (two colors on the
    stand-in, a pool of colors, the data tier) can upload the same release id without touching each other's
    bundle, and an apply reads exactly what its own project uploaded."""
    return f"{host_root}/{project}/incoming/{release_id}"


def bundle_tar(manifest: Mapping[str, Any], compose_dir: Path, agent_dir: Path | None = AGENT_PACKAGE, *,
               compose: bytes | None = None, files: Mapping[str, bytes] | None = None) -> bytes:
    """One tar holding `bundle/` (compose files + release.json) and `code/agent/` (this package's modules; left
    out with agent_dir=None). `compose`: the docker-compose.yml to ship instead of compose_dir's (one tier's file,
    written by the program from it). `files`: other bundle files (by their BUNDLE_FILES name) to ship instead of
    compose_dir's, e.g. the stack's `prometheus/slo-rules.yml`.

    File times are fixed so the same release always produces the same bytes (the host compares content).
    """
    given = {**(files or {}), **({BUNDLE_FILES[0]: compose} if compose is not None else {})}
    unknown = sorted(set(given) - set(BUNDLE_FILES))
    if unknown:
        raise ValueError(f"not a bundle file: {', '.join(unknown)} (bundle files: {', '.join(BUNDLE_FILES)})")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))

        for rel in BUNDLE_FILES:
            add(f"bundle/{rel}", given[rel] if rel in given else (compose_dir / rel).read_bytes())
        add("bundle/release.json", (json.dumps(dict(manifest), indent=2, sort_keys=True) + "\n").encode())
        if agent_dir is not None:
            for path in agent_files(agent_dir):
                add(f"code/agent/{path.relative_to(agent_dir).as_posix()}", path.read_bytes())
    return buf.getvalue()


def agent_files(agent_dir: Path) -> list[Path]:
    """The package's modules and its requirements, sorted (no bytecode caches)."""
    return sorted(p for p in agent_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and p.suffix in (".py", ".txt"))


def upload_command(host_root: str, project: str, release_id: str, sha256: str, *, decode: str = "",
                   lock_timeout: int = 300) -> str:
    """Remote shell (bash, `set -euo pipefail`, umask 077): store stdin (through `decode`, e.g. `base64 -d | gzip
    -dc`) as the bundle tar in a fresh staging directory, refuse it unless its sha256 is `sha256` (a truncated or
    corrupted stdin must never unpack a partial tar), unpack it, compile the agent code with the venv's python, and
    only then, under the project's lock (the agent's own flock: never under a running job of the project), swap
    the code directory whole (a module removed here is gone there too) and move the bundle to
    <project>/incoming/<id>. Whatever fails, the staging directory goes and nothing was replaced: exit 1 for a bad
    payload, 3 when the lock stays held for `lock_timeout` seconds (the new agent code names the holder and audits
    `upload.lock_timeout`).
    """
    q = shlex.quote
    incoming, parent = incoming_dir(host_root, project, release_id), f"{host_root}/{project}/incoming"
    staging = incoming_dir(host_root, project, f".{release_id}.upload")
    code, tar = code_dir(host_root), f"{staging}/bundle.tar"
    refused = f"upload of {release_id} to project {project} refused"
    undecodable = f"{refused}: the payload does not decode (truncated or corrupted on the way); nothing was replaced"
    mismatch = f"{refused}: its sha256 is not {sha256} (truncated or corrupted on the way); nothing was replaced"
    refusal = _agent_argv(host_root, project, ["_upload-refused", "--release", release_id,
                                               "--waited", str(lock_timeout)])
    script = "\n".join([
        "set -euo pipefail",
        "umask 077",
        f"trap {_dq(f'rm -rf {q(staging)}')} EXIT",
        f"rm -rf {q(staging)}",
        f"mkdir -p {q(code)} {q(parent)}",
        f"chmod 700 {q(parent)}",
        f"mkdir {q(staging)}",
        f"if ! {decode or 'cat'} > {q(tar)}; then echo {_dq(undecodable)} >&2; exit 1; fi",
        f'if [ "$(sha256sum < {q(tar)} | cut -d " " -f 1)" != {q(sha256)} ]; then echo {_dq(mismatch)} >&2; exit 1; fi',
        f"tar -C {q(staging)} -xf {q(tar)}",
        f"{q(host_python(host_root))} -m compileall -q {q(staging + '/code/agent')}",
        f"exec 9>>{q(f'{host_root}/{project}/lock')}",
        # the lock's holder, said and audited by the agent code just unpacked (the live one may not exist yet)
        f"if ! flock -w {lock_timeout} 9; then cd {q(staging + '/code')} && {shlex.join(refusal)}; exit 3; fi",
        f"rm -rf {q(code + '/.agent.old')}",
        f"if [ -d {q(code + '/agent')} ]; then mv {q(code + '/agent')} {q(code + '/.agent.old')}; fi",
        f"mv {q(staging + '/code/agent')} {q(code + '/agent')}",
        f"rm -rf {q(code + '/.agent.old')} {q(incoming)}",
        f"mv {q(staging + '/bundle')} {q(incoming)}",
    ])
    return f"bash -c {q(script)}"


def _dq(text: str) -> str:
    """`text` in double quotes (it holds no character special there), so a script stays readable inside the
    single quotes of `bash -c '…'`."""
    if any(c in text for c in '"$`\\!'):
        raise ValueError(f"cannot double-quote {text!r}")
    return f'"{text}"'


def _agent_argv(host_root: str, project: str, args: Sequence[str]) -> list[str]:
    return [host_python(host_root), "-m", "agent.hostagent", "--root", host_root, "--project", project, *args]


def agent_command(host_root: str, project: str, args: Sequence[str]) -> str:
    """Remote shell: run the host agent from its own venv (which has the validator's dependencies)."""
    return f"cd {shlex.quote(code_dir(host_root))} && {shlex.join(_agent_argv(host_root, project, args))}"


def diagnose_command(host_root: str, project: str, name: str) -> str:
    """Remote shell: a debug bundle of every container of the project (agent.diagnose: state, health log, digests,
    last log lines, secrets masked) into <project>/diagnostics/<name>, as a failed rollout writes one."""
    out = f"{host_root}/{project}/diagnostics/{name}"
    argv = [host_python(host_root), "-m", "agent.diagnose", "all", "--project", project, "--root", host_root,
            "--out", out]
    return f"cd {shlex.quote(code_dir(host_root))} && umask 077 && {shlex.join(argv)}"


def apply_command(host_root: str, project: str, release_id: str, agent_args: Sequence[str]) -> str:
    """Remote shell: `hostagent apply` of the project's own upload of `release_id`."""
    return agent_command(host_root, project,
                         ["apply", "--bundle", incoming_dir(host_root, project, release_id), *agent_args])


def validate_argv(python: str, resolved: str, report: str, *, deadline: int, labels: Mapping[str, str],
                  extra: Sequence[str] = (), secrets_file: str = "") -> list[str]:
    """`python -m agent.validate` of one release's resolved config, writing its JSON report (host agent and the
    Pulumi ValidationGate alike). `secrets_file`: the project's secrets file, where the trace phase reads its
    Langfuse keys (the path only: the values never reach argv)."""
    argv = [python, "-m", "agent.validate", "--config", resolved, "--json", report, "--deadline", str(deadline),
            "--no-color", *(["--secrets-file", secrets_file] if secrets_file else []), *extra]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    return argv


def gate_summary_argv(python: str, release_id: str) -> list[str]:
    """`python -m agent.validate.gate`: the validator's exit status and report as one JSON line (the exit status
    and the report path follow as arguments)."""
    return [python, "-m", "agent.validate.gate", "--release", release_id, "--exit-code"]
