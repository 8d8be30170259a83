"""The GitHub workflows: actionlint (with shellcheck on every `run:` block), then their safety properties read
from the parsed YAML: least permissions, timeouts, one deploy at a time, no secret echoed, pinned actions, a
preview that cannot push, a drift job that fails on a mismatch."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.cloud_init import COSIGN_VERSION

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONS = ROOT / ".github" / "actions"
DEPLOY_GROUP = "deploy-prod"


def load(name: str) -> dict[str, Any]:
    raw: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    data: dict[str, Any] = {str(k): v for k, v in raw.items() if k is not True}
    data["on"] = raw.get(True, raw.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


ALL = sorted(p.name for p in WORKFLOWS.glob("*.yml"))


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps") or [])


def runs(data: dict[str, Any]) -> list[str]:
    return [s["run"] for job in data["jobs"].values() for s in steps(job) if "run" in s]


@pytest.fixture(scope="module")
def actionlint() -> str:
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "actionlint.sh"), "path"], capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def shellcheck() -> str:
    path = shutil.which("shellcheck")
    assert path, "shellcheck is not installed (apt-get install shellcheck)"
    return path


def test_the_workflows_exist() -> None:
    assert ALL == ["backup.yml", "deploy.yml", "drift.yml", "operate.yml", "preview.yml", "registry-gc.yml", "slo.yml",
                   "tests.yml"]


@pytest.mark.live
def test_actionlint_and_shellcheck_pass(actionlint: str, shellcheck: str) -> None:
    proc = subprocess.run([actionlint, "-shellcheck", shellcheck, "-pyflakes=", *map(str, sorted(WORKFLOWS.glob(
        "*.yml")))], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


@pytest.mark.live
def test_actionlint_runs_shellcheck_on_run_blocks(actionlint: str, shellcheck: str, tmp_path: Path) -> None:
    """The check above can fail: an unquoted variable in a run: block is reported through shellcheck."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text("on: push\npermissions: {}\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    timeout-minutes: 5\n"
                   "    steps:\n      - run: rm -rf $TARGET/build\n")
    proc = subprocess.run([actionlint, "-shellcheck", shellcheck, "-pyflakes=", str(bad)], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120, check=False)
    assert proc.returncode == 1
    assert "SC2086" in proc.stdout


@pytest.mark.live
def test_composite_action_and_helper_scripts_pass_shellcheck(shellcheck: str) -> None:
    for action in ACTIONS.glob("*/action.yml"):
        for step in yaml.safe_load(action.read_text())["runs"]["steps"]:
            if "run" in step:
                proc = subprocess.run([shellcheck, "-s", "bash", "-"], input=step["run"], capture_output=True,
                                      text=True, timeout=60, check=False)
                assert proc.returncode == 0, f"{action}: {proc.stdout}"
    scripts = sorted(map(str, (ROOT / ".github" / "scripts").glob("*.sh")))
    assert scripts
    proc = subprocess.run([shellcheck, *scripts], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("name", ALL)
def test_every_job_has_a_timeout(name: str) -> None:
    for job_id, job in load(name)["jobs"].items():
        if "uses" in job:  # a reusable workflow: its own jobs carry the timeouts (checked in that file)
            assert job["uses"].startswith("./.github/workflows/"), (name, job_id)
            continue
        assert 0 < int(job["timeout-minutes"]) <= 60, (name, job_id)


# The only write scopes anywhere: the preview comment, and the operate job committing the stack file.
ALLOWED_WRITES = {("preview.yml", "preview"): {"pull-requests"}, ("operate.yml", "operate"): {"contents"},
                  ("deploy.yml", "deploy"): {"contents"}}


@pytest.mark.parametrize("name", ALL)
def test_least_permissions(name: str) -> None:
    data = load(name)
    assert data["permissions"] == {"contents": "read"}, name
    for job_id, job in data["jobs"].items():
        writes = {k for k, v in (job.get("permissions") or {}).items() if v == "write"}
        assert writes == ALLOWED_WRITES.get((name, job_id), set()), (name, job_id, writes)
        assert job.get("permissions") != "write-all"


def test_one_deploy_at_a_time() -> None:
    for name in ("deploy.yml", "operate.yml"):
        assert load(name)["concurrency"] == {"group": DEPLOY_GROUP, "cancel-in-progress": False}, name
    assert load("deploy.yml")["on"] == {"push": {"branches": ["main"]}}
    for name, job in (("deploy.yml", "deploy"), ("operate.yml", "operate")):
        assert load(name)["jobs"][job]["environment"] == "prod", name  # the protection rule


def concurrency_groups(data: dict[str, Any]) -> list[str]:
    """Every concurrency group a workflow joins: its own and its jobs'."""
    found = [data.get("concurrency")] + [job.get("concurrency") for job in data["jobs"].values()]
    return [str(c["group"] if isinstance(c, dict) else c) for c in found if c]


def test_drift_cannot_displace_a_pending_deploy_or_rollback() -> None:
    """Rule: only deploy, operate, backup and registry-gc (their backup and gc jobs, once nothing waits there) join
    the deploy group; drift queues in its own group. Risk: GitHub keeps one pending run per group and cancels the
    older pending one, so a drift run queued behind a deploy would cancel a rollback (operate) waiting there."""
    users = {name for name in ALL if DEPLOY_GROUP in concurrency_groups(load(name))}
    assert users == {"deploy.yml", "operate.yml", "backup.yml", "registry-gc.yml"}
    assert load("drift.yml")["concurrency"] == {"group": "drift", "cancel-in-progress": False}


def test_drift_skips_while_a_deploy_or_rollback_runs() -> None:
    """Rule: out of the deploy group, drift first asks whether a deploy or operate run is in progress and checks
    nothing then. Risk: a host half-way through a rollout reported as drift (red for no reason)."""
    job = load("drift.yml")["jobs"]["drift"]
    assert job["permissions"] == {"contents": "read", "actions": "read"}
    first = steps(job)[2]  # after checkout and setup
    assert first["id"] == "busy"
    assert first["run"] == "bash .github/scripts/deploy-running.sh deploy.yml operate.yml"
    assert first["env"] == {"GH_TOKEN": "${{ github.token }}"}
    for step in steps(job)[3:]:
        assert "steps.busy.outputs.running == 'false'" in step["if"], step


SECRET_REF = re.compile(r"\$\{\{\s*secrets\.")


@pytest.mark.parametrize("name", ALL)
def test_no_secret_reaches_a_script_or_a_log(name: str) -> None:
    data = load(name)
    text = (WORKFLOWS / name).read_text()
    secret_vars = {k for job in data["jobs"].values() for k, v in (job.get("env") or {}).items()
                   if SECRET_REF.search(str(v))}
    secret_vars |= {k for job in data["jobs"].values() for s in steps(job) for k, v in (s.get("env") or {}).items()
                    if SECRET_REF.search(str(v))}
    for script in runs(data):
        assert not SECRET_REF.search(script), script  # secrets only through env:, never pasted into a script
        assert "${{" not in script, script  # no expression in a script at all (injection): env: instead
        assert not re.search(r"set -[a-z]*x|--show-secrets|pulumi config get|printenv|\benv\b\s*$", script, re.M)
        for var in secret_vars:
            assert not re.search(rf"(echo|printf|cat)\b[^\n]*\$\{{?{var}\b", script), (var, script)
    for job in data["jobs"].values():
        for s in steps(job):
            for value in (s.get("with") or {}).values():
                assert not SECRET_REF.search(str(value)), (name, s)
    assert "ACTIONS_STEP_DEBUG" not in text


@pytest.mark.parametrize("name", [*ALL, "../actions/setup/action.yml"])
def test_actions_are_pinned_to_a_commit(name: str) -> None:
    for line in (WORKFLOWS / name).read_text().splitlines():
        match = re.search(r"uses:\s*(\S+)(.*)$", line)
        if not match or match.group(1).startswith("./"):
            continue
        ref, comment = match.groups()
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), line
        assert re.fullmatch(r"\s*# v\d+\.\d+\.\d+", comment), line


def test_setup_installs_the_cli_the_sdk_is_pinned_to() -> None:
    pin = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert pin
    action = yaml.safe_load((ACTIONS / "setup" / "action.yml").read_text())
    cli = [s for s in action["runs"]["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert [s["with"]["pulumi-version"] for s in cli] == [pin.group(1)]


COSIGN_INSTALLER = "sigstore/cosign-installer@6f9f17788090df1f26f669e9d70d6ae9567deba6 # v4.1.2"
# The jobs that get cosign from the setup action: deploy signs (the program's signing step), the others verify or
# show signatures; tests' unit job runs the live unit tests against the real cosign.
COSIGN_JOBS = {("deploy.yml", "deploy"), ("preview.yml", "preview"), ("drift.yml", "drift"),
               ("operate.yml", "operate"), ("tests.yml", "unit")}


def test_setup_installs_the_pinned_cosign_only_on_request() -> None:
    text = (ACTIONS / "setup" / "action.yml").read_text()
    action = yaml.safe_load(text)
    assert action["inputs"]["cosign"]["default"] == "false"
    assert f"      uses: {COSIGN_INSTALLER}" in text.splitlines()
    installer = [s for s in action["runs"]["steps"] if str(s.get("uses", "")).startswith("sigstore/cosign-installer@")]
    assert [(s["if"], s["with"]) for s in installer] == [("inputs.cosign == 'true'", {"cosign-release": "v3.1.3"})]


def test_the_jobs_that_sign_or_verify_get_cosign() -> None:
    got = set()
    for name in ALL:
        for job_id, job in load(name)["jobs"].items():
            for step in steps(job):
                if step.get("uses") == "./.github/actions/setup":
                    cosign = (step.get("with") or {}).get("cosign", "false")
                    assert cosign in ("true", "false"), (name, job_id, cosign)  # a string input: "true", not true
                    if cosign == "true":
                        got.add((name, job_id))
    assert got == COSIGN_JOBS


def test_one_cosign_release_everywhere() -> None:
    """CI signs and verifies with the release the droplets install (cloud-init) and the stand-in builds (the
    toolchain script, from tools/cosign's go.mod)."""
    action = yaml.safe_load((ACTIONS / "setup" / "action.yml").read_text())
    installer = [s for s in action["runs"]["steps"] if str(s.get("uses", "")).startswith("sigstore/cosign-installer@")]
    script = (ROOT / "scripts" / "pulumi-toolchain.sh").read_text()
    go_mod = (ROOT / "tools" / "cosign" / "go.mod").read_text()
    toolchain = re.search(r"^COSIGN_VERSION=(\S+)$", script, re.M)
    required = re.search(r"^\s*github\.com/sigstore/cosign/v3 (\S+)", go_mod, re.M)
    assert toolchain and required
    assert {installer[0]["with"]["cosign-release"], COSIGN_VERSION, "v" + toolchain.group(1), required.group(1)} == {
        "v3.1.3"}


def test_preview_cannot_change_or_push_anything() -> None:
    data = load("preview.yml")
    assert set(data["on"]) == {"pull_request"}
    job = data["jobs"]["preview"]
    pulumi_steps = [s for s in steps(job) if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert [s["with"]["command"] for s in pulumi_steps] == ["preview"]
    assert pulumi_steps[0]["with"]["comment-on-pr"] is True and pulumi_steps[0]["with"]["edit-pr-comment"] is True
    assert job["strategy"]["matrix"]["stack"] == ["prod", "blue"]
    assert job["environment"] == "preview"  # never the prod environment's read/write token
    assert job["env"]["DIGITALOCEAN_TOKEN"] == "${{ secrets.DIGITALOCEAN_READ_TOKEN }}"
    for script in runs(data):
        assert not re.search(r"docker (push|login|build)|buildx|ops\.build|pulumi (up|destroy|config set)", script)
    # Builds during preview only when the PR carries the label; docker-build never pushes in a preview.
    config_map = pulumi_steps[0]["with"]["config-map"]
    assert "contains(github.event.pull_request.labels.*.name, 'preview-builds')" in config_map
    for stack in ("prod", "blue"):
        stack_config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        assert stack_config.get("devtools:buildOnPreview", False) in (False, "false")
    schema = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]["buildOnPreview"]
    assert schema["default"] is False


def test_drift_job_fails_on_a_mismatch() -> None:
    data = load("drift.yml")
    assert "schedule" in data["on"] and "workflow_dispatch" in data["on"]
    job = data["jobs"]["drift"]
    assert "continue-on-error" not in job
    preview = [s for s in steps(job) if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert [(s["with"]["command"], s["with"]["expect-no-changes"]) for s in preview] == [("preview", True)]
    check = [s for s in steps(job) if "ops.cli drift" in s.get("run", "")]
    assert len(check) == 1
    assert "continue-on-error" not in check[0] and "continue-on-error" not in preview[0]
    assert check[0]["if"].startswith("always()")  # runs even when the preview already found a change
    assert not re.search(r"\|\|\s*(true|:)|set \+e|; *exit 0", check[0]["run"])


def test_backup_runs_daily_in_the_deploy_group_and_never_displaces_a_waiting_run() -> None:
    """Rule: the daily backup job joins the deploy group (never beside a deploy or operate run), only after a job
    outside the group found no deploy or operate run waiting to start, and runs `ops.cli data backup --stack prod`
    unconditionally otherwise. Risk: GitHub cancels the older pending run of a group, so a scheduled backup
    queued behind a deploy would cancel a rollback waiting there; a backup that silently does nothing."""
    data = load("backup.yml")
    assert set(data["on"]) == {"schedule", "workflow_dispatch"}
    assert "concurrency" not in data
    queued, backup = data["jobs"]["queued"], data["jobs"]["backup"]
    assert "concurrency" not in queued and queued["permissions"] == {"contents": "read", "actions": "read"}
    check = [s for s in steps(queued) if "run" in s]
    assert [(s["id"], s["run"], s["env"]) for s in check] == [
        ("queued", "bash .github/scripts/deploy-queued.sh deploy.yml operate.yml", {"GH_TOKEN": "${{ github.token }}"})]
    assert queued["outputs"] == {"waiting": "${{ steps.queued.outputs.waiting }}"}
    assert (backup["needs"], backup["if"]) == ("queued", "needs.queued.outputs.waiting == 'false'")
    assert backup["concurrency"] == {"group": DEPLOY_GROUP, "cancel-in-progress": False}
    assert backup["environment"] == "backup"
    run = [s for s in steps(backup) if "ops.cli data" in str(s.get("run", ""))]
    assert [s["run"] for s in run] == [
        '.venv/bin/python -m ops.cli data backup --stack prod --label "daily-$GITHUB_RUN_ID"']
    assert "if" not in run[0] and "continue-on-error" not in run[0] and "continue-on-error" not in backup
    assert run[0]["env"] == {"DIGITALOCEAN_TOKEN": "${{ secrets.DIGITALOCEAN_SNAPSHOT_TOKEN }}"}


def test_registry_gc_runs_weekly_in_the_deploy_group_and_never_displaces_a_waiting_run() -> None:
    """Rule: the weekly gc job joins the deploy group (DigitalOcean's collection holds the registry read-only, so
    never beside a deploy's push), only after a job outside the group found no deploy, operate or backup run waiting
    to start, and runs `ops.cli registry-gc --stack prod --yes` unconditionally otherwise, `--dry-run` only when the
    dispatch input asks. Risk: GitHub cancels the older pending run of a group, so a gc queued behind a deploy
    would cancel a rollback or a backup waiting there; a scheduled run that silently deletes nothing, or one that
    deletes when a dry run was asked for."""
    data = load("registry-gc.yml")
    assert set(data["on"]) == {"schedule", "workflow_dispatch"}
    assert [c["cron"] for c in data["on"]["schedule"]] == ["41 4 * * 0"]  # weekly, Sunday at a quiet hour
    assert data["on"]["workflow_dispatch"]["inputs"] == {"dry_run": {
        "description": "print what would be deleted, delete nothing", "type": "boolean", "default": False}}
    assert "concurrency" not in data
    queued, gc = data["jobs"]["queued"], data["jobs"]["gc"]
    assert "concurrency" not in queued and queued["permissions"] == {"contents": "read", "actions": "read"}
    check = [s for s in steps(queued) if "run" in s]
    assert [(s["id"], s["run"], s["env"]) for s in check] == [
        ("queued", "bash .github/scripts/deploy-queued.sh deploy.yml operate.yml backup.yml",
         {"GH_TOKEN": "${{ github.token }}"})]
    assert queued["outputs"] == {"waiting": "${{ steps.queued.outputs.waiting }}"}
    assert (gc["needs"], gc["if"]) == ("queued", "needs.queued.outputs.waiting == 'false'")
    assert gc["concurrency"] == {"group": DEPLOY_GROUP, "cancel-in-progress": False}
    assert gc["environment"] == "registry-gc"
    run = [s for s in steps(gc) if "ops.cli registry-gc" in str(s.get("run", ""))]
    assert [s["run"] for s in run] == [
        "args=(--stack prod --yes)\n"
        "if [[ $DRY_RUN == true ]]; then args+=(--dry-run); fi\n"
        '.venv/bin/python -m ops.cli registry-gc "${args[@]}"\n']
    assert "if" not in run[0] and "continue-on-error" not in run[0] and "continue-on-error" not in gc
    assert run[0]["env"] == {"DIGITALOCEAN_TOKEN": "${{ secrets.DIGITALOCEAN_REGISTRY_TOKEN }}",
                             "DRY_RUN": "${{ inputs.dry_run }}"}
    assert {"uses": "./.github/actions/setup"} in steps(gc)


@pytest.mark.live
@pytest.mark.parametrize(("dry_run", "expected"), [("true", ["--stack", "prod", "--yes", "--dry-run"]),
                                                   ("false", ["--stack", "prod", "--yes"]),
                                                   ("", ["--stack", "prod", "--yes"])])
def test_registry_gc_passes_dry_run_only_when_asked(dry_run: str, expected: list[str], tmp_path: Path) -> None:
    """The gc step's script under bash, its python a stand-in that prints its argv: the dispatch input `true` adds
    --dry-run; `false` and the schedule's empty input run the real collection."""
    script = next(s["run"] for s in steps(load("registry-gc.yml")["jobs"]["gc"]) if "ops.cli registry-gc" in
                  str(s.get("run", "")))
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text('#!/bin/bash\nprintf "%s\\n" "$@"\n')
    python.chmod(0o755)
    proc = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=30,
                          check=False, env={"PATH": "/usr/bin:/bin", "DRY_RUN": dry_run})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["-m", "ops.cli", "registry-gc", *expected]


def test_deploy_is_one_release_command_and_keeps_what_it_changed() -> None:
    """Rule: the deploy runs exactly `ops.cli release` (the same command an operator runs; no `pulumi up` of its
    own), then always commits the stack files it changed (a flip back changes them too), writes the history to
    the job summary and uploads the reports and the bad color's diagnostics. Risk: a deploy that flips prod and
    leaves Pulumi.prod.yaml behind, so the next deploy from main moves traffic back."""
    job = load("deploy.yml")["jobs"]["deploy"]
    assert not [s for s in steps(job) if (s.get("with") or {}).get("command") in ("up", "destroy")]
    runs = [str(s.get("run", "")) for s in steps(job)]
    release = [r for r in runs if "ops.cli release" in r]
    assert release == [".venv/bin/python -m ops.cli release --stack prod --yes --collect reports/release"]
    after = steps(job)[runs.index(release[0]) + 1:]
    commit = [s for s in after if "commit-stack-file.sh" in str(s.get("run", ""))]
    assert commit and commit[0]["if"] == "always()"
    assert [line.split()[2] for line in commit[0]["run"].splitlines()] == ["Pulumi.prod.yaml", "Pulumi.blue.yaml"]
    history = [s for s in after if "ops.cli history" in str(s.get("run", ""))]
    assert history and history[0]["if"] == "always()" and "--summary" in history[0]["run"]
    uploads = {s["with"]["name"]: s for s in after if str(s.get("uses", "")).startswith("actions/upload-artifact")}
    assert uploads["release-reports"]["if"] == "always()" and uploads["release-reports"]["with"]["path"] == \
        "reports/"
    collect = [s for s in after if "ops.cli collect" in s.get("run", "")]
    assert collect and collect[0]["if"] == "always()" and "--summary" in collect[0]["run"]
    assert job["needs"] == "tests"


def test_operate_changes_the_standby_only_through_the_guarded_commands() -> None:
    """Rule: standby-up and standby-destroy run `ops.cli standby up|destroy --stack blue`, which refuse while blue
    serves traffic (tests/unit/ops/test_standby.py); no step runs pulumi up or destroy on its own. Risk: a shell
    check beside the command that drifts from it, or a step that skips it."""
    data = load("operate.yml")
    inputs = data["on"]["workflow_dispatch"]["inputs"]
    assert inputs["action"]["options"] == ["flip", "rollback", "rollback-flip", "standby-up", "standby-destroy"]
    job = data["jobs"]["operate"]
    standby = [(s["if"], s["run"]) for s in steps(job) if "standby" in str(s.get("run", ""))]
    assert standby == [("inputs.action == 'standby-up'", ".venv/bin/python -m ops.cli standby up --stack blue --yes"),
                       ("inputs.action == 'standby-destroy'",
                        ".venv/bin/python -m ops.cli standby destroy --stack blue --yes")]
    assert not [s for s in steps(job) if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert not [r for r in runs(data) if re.search(r"(^|\s)pulumi (up|destroy|stack output)", r)]
    names = [s.get("name", "") for s in steps(job)]
    assert names.index("Flip or roll back prod (ops.cli)") < names.index("Commit the changed stack file")


# Jobs that reach the droplets over SSH (pulumi up/destroy's rollout commands, ops.cli's host commands), and the
# stack whose droplets each reaches.
LEASED = {("deploy.yml", "deploy"): ("prod", "blue"), ("operate.yml", "operate"): ('"$TARGET"',),
          ("drift.yml", "drift"): ('"$STACK"',), ("backup.yml", "backup"): ("prod",), ("slo.yml", "slo"): ("prod",),
          ("registry-gc.yml", "gc"): ("prod", "blue")}
REACHES_HOSTS = re.compile(
    r"ops\.cli (drift|collect|flip|rollback|reapply|status|standby|data|release|slo|registry-gc)\b")


def reaches_hosts(step: dict[str, Any]) -> bool:
    pulumi_change = str(step.get("uses", "")).startswith("pulumi/actions@") and \
        (step.get("with") or {}).get("command") in ("up", "destroy")
    return pulumi_change or bool(REACHES_HOSTS.search(str(step.get("run", ""))))


@pytest.mark.parametrize(("name", "job_id"), sorted(LEASED))
def test_every_job_that_reaches_hosts_holds_an_ssh_lease_and_closes_it(name: str, job_id: str) -> None:
    """Rule: a job that reaches the droplets opens an SSH lease for its runner before the first step that does,
    with a TTL longer than the job may run, and closes it in its last step, always(). Risk: GitHub-hosted runners
    have no fixed address, so without a lease the allowlist must be 0.0.0.0/0; a lease that outlives its job
    leaves port 22 open to an address GitHub hands to someone else next."""
    job = load(name)["jobs"][job_id]
    all_steps = steps(job)
    runs_of = [str(s.get("run", "")) for s in all_steps]
    opens = [i for i, r in enumerate(runs_of) if "ops.cli ssh-lease open" in r]
    closes = [i for i, r in enumerate(runs_of) if "ops.cli ssh-lease close" in r]
    reach = [i for i, s in enumerate(all_steps) if reaches_hosts(s)]
    assert len(opens) == 1 and closes == [len(all_steps) - 1] and reach, (opens, closes, reach)
    assert opens[0] < min(reach) and max(reach) < closes[0]
    stacks = LEASED[(name, job_id)]
    # one stack: its lease in $RUNNER_TEMP/ssh-lease.json; several (a release reaches both colors): one each
    records = ["ssh-lease.json"] if len(stacks) == 1 else [f"ssh-lease-{s}.json" for s in stacks]
    opened_lines, closed_lines = runs_of[opens[0]].strip().splitlines(), runs_of[closes[0]].strip().splitlines()
    assert len(opened_lines) == len(closed_lines) == len(stacks), (opened_lines, closed_lines)
    for stack, record, line, close in zip(stacks, records, opened_lines, closed_lines, strict=True):
        opened = re.fullmatch(rf'\.venv/bin/python -m ops\.cli ssh-lease open --stack {re.escape(stack)} --ttl (\d+) '
                              rf'--record "\$RUNNER_TEMP/{re.escape(record)}"', line)
        assert opened, line
        assert int(opened.group(1)) > int(job["timeout-minutes"])
        assert close == f'.venv/bin/python -m ops.cli ssh-lease close --stack {stack} --record "$RUNNER_TEMP/{record}"'
    assert str(all_steps[closes[0]]["if"]).startswith("always()")


def test_the_stacks_never_admit_ssh_from_everywhere() -> None:
    """Rule: the committed stacks list fixed addresses (a self-hosted runner, a bastion) in sshAllowlist, never a
    /0. Risk: port 22 of every droplet open to the internet as the price of GitHub-hosted runners."""
    for stack in ("prod", "blue"):
        allowlist = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]["devtools:sshAllowlist"]
        assert allowlist and not [a for a in allowlist if a.endswith("/0")], (stack, allowlist)
