"""Who can reach which credential (docs/ci.md, "Who can reach what"), read from the workflows' YAML: every secret
is known with what it can do, lives in an environment (never the repository, whose secrets reach a pull
request's own workflow), and a pull request's code meets one that decrypts only behind required reviewers."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.unit.test_workflows import ALL, ROOT, load, steps

# Every secret a workflow may name, with what it can do if it leaks: `decrypt` (every stack secret: the SSH key,
# the app secrets, the registry's push credentials), `write-state`, `read-state`, `write-cloud`, `read-cloud`,
# `firewall` (create and delete firewalls: open or close ports on the droplets), `snapshot` (create, list and
# delete volume snapshots: any in the account, not only the data tier's), `registry-delete` (delete any image
# manifest in the account's container registry and start its garbage collection).
SECRETS: dict[str, set[str]] = {
    "PULUMI_CONFIG_PASSPHRASE": {"decrypt"},
    "PULUMI_ACCESS_TOKEN": {"decrypt", "read-state", "write-state"},  # Pulumi Cloud, Stack Write
    "PULUMI_READ_TOKEN": {"decrypt", "read-state"},  # Pulumi Cloud, Stack Read (stack:decrypt is part of it)
    "SPACES_ACCESS_KEY_ID": {"read-state", "write-state"},
    "SPACES_SECRET_ACCESS_KEY": {"read-state", "write-state"},
    "SPACES_READ_ACCESS_KEY_ID": {"read-state"},
    "SPACES_READ_SECRET_ACCESS_KEY": {"read-state"},
    "DIGITALOCEAN_ACCESS_TOKEN": {"read-cloud", "write-cloud", "firewall"},
    "DIGITALOCEAN_READ_TOKEN": {"read-cloud"},
    "DIGITALOCEAN_LEASE_TOKEN": {"firewall"},
    "DIGITALOCEAN_SNAPSHOT_TOKEN": {"snapshot"},
    "DIGITALOCEAN_REGISTRY_TOKEN": {"registry-delete"},
}
# The environments the jobs use and their protection rules (set in the repository's settings; docs/ci.md).
ENVIRONMENTS = {"prod": "required reviewers, deployment branches: main",
                "preview": "required reviewers",
                "drift": "deployment branches: main",
                "backup": "deployment branches: main",
                "registry-gc": "deployment branches: main"}
REVIEWED = {"prod", "preview"}
SECRET_NAME = re.compile(r"\$\{\{\s*secrets\.([A-Za-z0-9_]+)\s*\}\}")


def job_secrets(job: dict[str, Any]) -> set[str]:
    return set(SECRET_NAME.findall(str({k: v for k, v in job.items() if k != "steps"}))
               + SECRET_NAME.findall(str(steps(job))))


def environment(job: dict[str, Any]) -> str | None:
    env = job.get("environment")
    return str(env["name"] if isinstance(env, dict) else env) if env else None


def triggers(name: str) -> set[str]:
    on = load(name)["on"]
    return set(on) if isinstance(on, dict) else set(on if isinstance(on, list) else [on])


def jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [(name, job_id, job) for name in ALL for job_id, job in load(name)["jobs"].items()]


def test_every_secret_is_known_with_what_it_can_do() -> None:
    """Rule: a workflow names only the secrets listed here (and in docs/ci.md). Risk: a new credential whose reach
    nobody weighed."""
    named = {s for name in ALL for s in SECRET_NAME.findall((ROOT / ".github" / "workflows" / name).read_text())}
    assert named <= set(SECRETS), named - set(SECRETS)


@pytest.mark.parametrize("name", ALL)
def test_no_secret_is_workflow_wide_or_outside_an_environment(name: str) -> None:
    """Rule: secrets are environment secrets, named only by jobs that declare their environment. Risk: a repository
    secret reaches any workflow run from any branch, a pull request's edited workflow included."""
    data = load(name)
    assert not SECRET_NAME.search(str(data.get("env") or {})), name
    for job_id, job in data["jobs"].items():
        if job_secrets(job):
            assert environment(job) in ENVIRONMENTS, (name, job_id, environment(job))


def test_pull_request_code_meets_no_decrypting_or_writing_secret_without_a_review() -> None:
    """Rule: a job a pull request starts (pull_request, never pull_request_target or workflow_run) holds a secret
    that can decrypt stack secrets only in an environment with required reviewers, and never one that writes.
    Risk: anyone who can push a branch prints sshPrivateKey, every app secret and the registry's push credentials,
    or changes prod's state."""
    for name in ALL:
        assert not triggers(name) & {"pull_request_target", "workflow_run"}, name
    pr_jobs = [(name, job_id, job) for name, job_id, job in jobs() if "pull_request" in triggers(name)]
    assert [(n, j) for n, j, _ in pr_jobs] == [("preview.yml", "tests"), ("preview.yml", "preview")]
    for name, job_id, job in pr_jobs:
        reach = set().union(*(SECRETS[s] for s in job_secrets(job)))
        assert not reach & {"write-state", "write-cloud", "firewall"}, (name, job_id, reach)
        if "decrypt" in reach:
            assert environment(job) in REVIEWED, (name, job_id)


def test_only_the_reviewed_prod_environment_holds_credentials_that_write() -> None:
    """Rule: state and cloud write credentials are prod's (reviewers, main only); preview and drift read.
    Risk: the unattended drift job or an approved preview changing prod's state or cloud."""
    for name, job_id, job in jobs():
        reach = set().union(set(), *(SECRETS[s] for s in job_secrets(job)))
        if reach & {"write-state", "write-cloud"}:
            assert environment(job) == "prod", (name, job_id)
    drift = load("drift.yml")["jobs"]["drift"]
    assert environment(drift) == "drift"
    assert job_secrets(drift) == {"PULUMI_CONFIG_PASSPHRASE", "PULUMI_READ_TOKEN", "SPACES_READ_ACCESS_KEY_ID",
                                  "SPACES_READ_SECRET_ACCESS_KEY", "DIGITALOCEAN_READ_TOKEN",
                                  "DIGITALOCEAN_LEASE_TOKEN"}
    lease_steps = [s for s in steps(drift) if "DIGITALOCEAN_LEASE_TOKEN" in str(s.get("env"))]
    assert all("ops.cli ssh-lease" in s["run"] for s in lease_steps) and len(lease_steps) == 2


def test_the_unattended_backup_reads_state_and_may_only_snapshot_and_lease() -> None:
    """Rule: the daily backup runs unattended (no reviewer), so its environment holds read-only state credentials,
    the lease token and a token limited to volume snapshots; never a credential that writes state or the cloud.
    Risk: a scheduled job on main holding the account-wide token every day."""
    job = load("backup.yml")["jobs"]["backup"]
    assert environment(job) == "backup"
    assert job_secrets(job) == {"PULUMI_CONFIG_PASSPHRASE", "PULUMI_READ_TOKEN", "SPACES_READ_ACCESS_KEY_ID",
                                "SPACES_READ_SECRET_ACCESS_KEY", "DIGITALOCEAN_LEASE_TOKEN",
                                "DIGITALOCEAN_SNAPSHOT_TOKEN"}
    assert job_secrets(load("backup.yml")["jobs"]["queued"]) == set()


def test_the_unattended_registry_gc_reads_state_and_may_only_delete_images_and_lease() -> None:
    """Rule: the weekly registry-gc runs unattended, so its environment holds read-only state credentials, the lease
    token and a token limited to the registry (delete manifests, start its garbage collection); never one that
    writes state or the rest of the cloud, and the registry token only in the step that deletes. Risk: a scheduled
    job on main holding the account-wide token every week, or the lease step able to delete images."""
    job = load("registry-gc.yml")["jobs"]["gc"]
    assert environment(job) == "registry-gc"
    assert job_secrets(job) == {"PULUMI_CONFIG_PASSPHRASE", "PULUMI_READ_TOKEN", "SPACES_READ_ACCESS_KEY_ID",
                                "SPACES_READ_SECRET_ACCESS_KEY", "DIGITALOCEAN_LEASE_TOKEN",
                                "DIGITALOCEAN_REGISTRY_TOKEN"}
    holders = [s for s in steps(job) if "DIGITALOCEAN_REGISTRY_TOKEN" in str(s.get("env"))]
    assert [s["name"] for s in holders] == [
        "Delete the images no stack or host can ask for, then the registry's garbage collection"]
    assert "DIGITALOCEAN_TOKEN" not in (job.get("env") or {})
    assert job_secrets(load("registry-gc.yml")["jobs"]["queued"]) == set()


def test_the_ci_doc_lists_every_secret_and_environment() -> None:
    """Rule: docs/ci.md's tables name each secret (with where it lives) and each environment's protection, as the
    workflows use them. Risk: someone sets the repository up from a page that no longer matches the YAML (a
    decrypting secret stored as a repository secret)."""
    text = (ROOT / "docs" / "ci.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([A-Z_]+)` \| ([^|]+) \|", text, re.M)}
    assert set(rows) == set(SECRETS), set(rows) ^ set(SECRETS)
    used_in = {s: sorted({environment(j) or "" for _, _, j in jobs() if s in job_secrets(j)}) for s in SECRETS}
    for secret, where in rows.items():
        assert where.strip() == ", ".join(f"`{e}`" for e in used_in[secret]), (secret, where, used_in[secret])
    envs = {m.group(1): m.group(2).strip() for m in re.finditer(r"^\| environment `([a-z-]+)` \| ([^|]+) \|", text,
                                                                 re.M)}
    assert envs == ENVIRONMENTS
