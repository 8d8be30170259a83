"""The program's edge: read the stack config from the Pulumi runtime once, the service catalog, and the source
facts (commit, CI run). Bad config stops the program here, before any resource is declared.
"""

from __future__ import annotations

import os
from pathlib import Path

import pulumi
from pulumi.runtime import config as runtime_config

from components.catalog import CatalogError, ServiceCatalog, load_service_catalog
from components.config import ConfigError, StackConfig, load_config
from components.config_keys import NAMESPACE
from components.program import ProgramEnv

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


def commit_sha(root: Path, environ: dict[str, str]) -> str | None:
    return environ.get("DEVTOOLS_COMMIT") or environ.get("GITHUB_SHA") or git_head(root)


def ci_run_url(environ: dict[str, str]) -> str | None:
    server, repo, run = (environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    return f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None


def load() -> tuple[StackConfig, ServiceCatalog, ProgramEnv]:
    """Everything the program reads, once: the stack config, the service catalog and the source facts."""
    raw, secret = raw_config()
    environ = dict(os.environ)
    sha = commit_sha(ROOT, environ)
    try:
        cfg = load_config({k: v for k, v in raw.items() if k.startswith(f"{NAMESPACE}:") or k == "digitalocean:token"},
                          secret, stack=pulumi.get_stack(), project=pulumi.get_project(),
                          commit=sha[:7] if sha else None, root=ROOT)
        catalog = load_service_catalog(ROOT / "compose", cfg.build.app_root)
    except (ConfigError, CatalogError) as exc:
        raise pulumi.RunError(str(exc)) from None
    return cfg, catalog, program_env(cfg, sha, environ)


def program_env(cfg: StackConfig, sha: str | None, environ: dict[str, str]) -> ProgramEnv:
    endpoint = ""
    if cfg.traffic.mode == "localProxy":
        from ops import localenv  # noqa: PLC0415 - only the local stack reads the stand-in's addresses

        endpoint = f"http://127.0.0.1:{localenv.load(environ).lb_port}/"
    return ProgramEnv(root=ROOT, organization=pulumi.get_organization() or "organization", commit=sha,
                      built_at=environ.get("BUILT_AT"), ci_run_url=ci_run_url(environ), local_endpoint=endpoint)
