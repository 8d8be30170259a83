"""The program's edge: read the stack config from the Pulumi runtime once, the service catalog, and the source
facts (commit, CI run). Bad config stops the program here, before any resource is declared.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pulumi
from pulumi.runtime import config as runtime_config

from components.catalog import CatalogError, ServiceCatalog, load_service_catalog
from components.config import ConfigError, StackConfig, load_config
from components.config_keys import NAMESPACE
from components.program import ProgramEnv
from components.sources import RELEASE_RUN_ENV

ROOT = Path(__file__).resolve().parent.parent


def raw_config() -> tuple[dict[str, object], set[str]]:
    """Every config value Pulumi holds for this stack (the engine's and any set in-process), and the secret keys."""
    raw: dict[str, object] = dict(runtime_config.get_config_env())
    raw.update(runtime_config.CONFIG.get())
    secret = set(runtime_config.get_config_secret_keys_env()) | set(runtime_config._SECRET_KEYS.get())
    return raw, secret


def git_head(root: Path) -> str | None:
    """The checked-out commit, read from .git (no process): HEAD → ref → loose or packed ref."""
    git = root / ".git"
    try:
        if git.is_file():  # a worktree: "gitdir: <path>"
            git = Path(git.read_text().split(":", 1)[1].strip())
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head or None
        ref = head[5:]
        common = Path((git / "commondir").read_text().strip()) if (git / "commondir").exists() else Path()
        for base in (git, git / common):
            if (base / ref).exists():
                return (base / ref).read_text().strip()
            packed = base / "packed-refs"
            if packed.exists():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split(" ", 1)[0]
    except OSError:
        return None
    return None


COMMIT_ENV = ("DEVTOOLS_COMMIT", "GITHUB_SHA")  # the commit, when the caller names it (before .git is read)


def commit_from_env(environ: dict[str, str]) -> str | None:
    return next((environ[k] for k in COMMIT_ENV if environ.get(k)), None)


def commit_source(environ: dict[str, str]) -> str:
    """Where the commit came from, as a config problem names it: the environment variable, or the checkout."""
    return next((k for k in COMMIT_ENV if environ.get(k)), "the checkout's HEAD commit")


def commit_sha(root: Path, environ: dict[str, str]) -> str | None:
    return commit_from_env(environ) or git_head(root)


def porcelain_paths(out: bytes) -> list[str]:
    """The paths in `git status --porcelain=v1 -z` output (a rename or copy counts its old path too)."""
    fields = out.decode("utf-8", "surrogateescape").split("\0")
    paths: list[str] = []
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC" and i < len(fields):
            paths.append(fields[i])
            i += 1
    return paths


def dirty_suffix(changed: Sequence[tuple[str, bytes | None]]) -> str:
    """"-dirty-<8 hex>" from the changed files' paths and contents (None: deleted); "" when nothing changed."""
    if not changed:
        return ""
    digest = hashlib.sha256()
    for path, content in sorted(changed, key=lambda item: item[0]):
        digest.update(path.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(b"deleted\0" if content is None else hashlib.sha256(content).digest())
    return "-dirty-" + digest.hexdigest()[:8]


def changed_files(root: Path, paths: Sequence[str]) -> list[tuple[str, bytes | None]] | None:
    """Files under `paths` that differ from HEAD (changed, staged, deleted or untracked), with their contents
    (None when deleted). None when git cannot tell (no git, not a checkout, another owner's checkout)."""
    argv = ["git", "-C", str(root), "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *paths]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return [(p, (root / p).read_bytes() if (root / p).is_file() else None) for p in porcelain_paths(proc.stdout)]


def release_inputs(root: Path, app_root: Path) -> list[str]:
    """What a release is made of, relative to the checkout: the compose files and the app (when inside). The agent
    code is not part of a release (hosts compare the bundle without it; the next upload carries it), so a changed
    agent/ keeps the commit's id."""
    inputs = ["compose"]
    if app_root.resolve().is_relative_to(root.resolve()):
        inputs.append(str(app_root.resolve().relative_to(root.resolve())) or ".")
    return inputs


def with_dirty_release_id(cfg: StackConfig, raw: dict[str, object], root: Path) -> StackConfig:
    """The default release id (the short sha read from .git) gets -dirty-<hash> when the release's inputs differ
    from that commit: the same id with other content would be refused by the hosts. Left as it is when the id
    was set (releaseId, DEVTOOLS_COMMIT, GITHUB_SHA) or nothing is built."""
    if not cfg.builds_images or raw.get(f"{NAMESPACE}:releaseId"):
        return cfg
    inputs = release_inputs(root, cfg.build.app_root)
    changed = changed_files(root, inputs)
    if changed is None:
        pulumi.log.warn(f"git cannot tell whether {', '.join(inputs)} differ "
                        f"from {cfg.release.release_id}: if they do, set {NAMESPACE}:releaseId")
        return cfg
    suffix = dirty_suffix(changed)
    if not suffix:
        return cfg
    return dataclasses.replace(cfg, release=dataclasses.replace(cfg.release,
                                                                release_id=cfg.release.release_id + suffix))


def ci_run_url(environ: dict[str, str]) -> str | None:
    server, repo, run = (environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    return f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None


def load() -> tuple[StackConfig, ServiceCatalog, ProgramEnv]:
    """Everything the program reads, once: the stack config, the service catalog and the source facts."""
    raw, secret = raw_config()
    environ = dict(os.environ)
    sha = commit_sha(ROOT, environ)
    from_git = sha is not None and commit_from_env(environ) is None
    try:
        cfg = load_config({k: v for k, v in raw.items() if k.startswith(f"{NAMESPACE}:") or k == "digitalocean:token"},
                          secret, stack=pulumi.get_stack(), project=pulumi.get_project(),
                          commit=sha[:7] if sha else None, root=ROOT, commit_source=commit_source(environ))
        catalog = load_service_catalog(ROOT / "compose", cfg.build.app_root)
    except (ConfigError, CatalogError) as exc:
        raise pulumi.RunError(str(exc)) from None
    if from_git:
        cfg = with_dirty_release_id(cfg, raw, ROOT)
    return cfg, catalog, program_env(cfg, sha, environ)


def program_env(cfg: StackConfig, sha: str | None, environ: dict[str, str]) -> ProgramEnv:
    endpoint = ""
    if cfg.traffic.mode == "localProxy":
        from standin import localenv  # noqa: PLC0415 - only the local stack reads the stand-in's addresses

        endpoint = f"http://127.0.0.1:{localenv.load(environ).lb_port}/"
    return ProgramEnv(root=ROOT, organization=pulumi.get_organization() or "organization", commit=sha,
                      built_at=environ.get("BUILT_AT"), ci_run_url=ci_run_url(environ), local_endpoint=endpoint,
                      release_run=release_run(environ))


def release_run(environ: dict[str, str]) -> dict[str, object] | None:
    """The run record `ops.cli release` hands the traffic owner's last update (None when not set)."""
    path = environ.get(RELEASE_RUN_ENV)
    if not path:
        return None
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise pulumi.RunError(f"{RELEASE_RUN_ENV}={path}: cannot read the release run record ({exc}); unset it, "
                              "it is written by `python -m ops.cli release`") from None
    if not isinstance(record, dict) or not isinstance(record.get("run"), str):
        raise pulumi.RunError(f"{RELEASE_RUN_ENV}={path}: not a release run record (an object with `run`)")
    return record
