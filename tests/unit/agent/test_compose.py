"""Every docker command the host agent can run, as exact argv lists."""

from pathlib import Path

from agent import compose as cc
from agent import containers
from agent.compose_output import image_groups

PROJECT = cc.ComposeProject("green", Path("/opt/devtools/green/run"), ("docker-compose.yml",))
BASE = [
    "docker", "compose", "--project-name", "green", "--project-directory", "/opt/devtools/green/run",
    "--file", "/opt/devtools/green/run/docker-compose.yml", "--env-file", "/opt/devtools/green/run/release.env",
]
DIGEST = "sha256:" + "a" * 64


def test_up_waits_removes_orphans_and_never_pulls():
    """up must wait for health and must not pull: pulling happens before containers change, once."""
    assert cc.up(PROJECT, 90) == [
        *BASE, "up", "--detach", "--wait", "--wait-timeout", "90", "--remove-orphans", "--pull", "never",
    ]


def test_pull_only_fetches_missing_images():
    assert cc.pull(PROJECT) == [*BASE, "pull", "--quiet", "--policy", "missing"]
    assert cc.pull(PROJECT, ("api", "worker")) == [*BASE, "pull", "--quiet", "--policy", "missing", "api", "worker"]


def test_image_groups_name_each_image_once_with_its_services():
    """The pull step pulls each distinct image once (agent.pulls); a service without an image (compose would build
    or name it) leaves the config to one whole pull."""
    a, w = "reg/api@sha256:" + "1" * 64, "reg/web@sha256:" + "2" * 64
    config = {"services": {"worker": {"image": a}, "web": {"image": w}, "api": {"image": a}}}
    assert image_groups(config) == {a: ("api", "worker"), w: ("web",)}
    assert image_groups({"services": {"api": {"image": a}, "local": {"build": {"context": "."}}}}) == {}
    assert image_groups({"services": {}}) == {} and image_groups({}) == {}


def test_no_command_deletes_volumes():
    """A rollout must never delete data: no `down -v`, no prune with volumes, no forced image removal."""
    argvs = [
        cc.up(PROJECT, 1), cc.pull(PROJECT), cc.ps_json(PROJECT), cc.config_json(PROJECT),
        cc.logs_tail(PROJECT, ["a"], 5), cc.image_remove("r@" + DIGEST), containers.ps_argv("green"),
        containers.inspect_argv(["a"]), cc.run_once(PROJECT, "state", ["migrate"], name="m"),
        cc.container_stop("m", 10), cc.network_inspect("n"), cc.network_create("n"),
    ]
    for argv in argvs:
        assert "down" not in argv and "prune" not in argv and "-v" not in argv and "--volumes" not in argv
        assert "-f" not in argv and "--force" not in argv


def test_down_keeps_volumes():
    """`hostagent stop` (what `pulumi destroy` runs) takes containers down and nothing else: no -v, ever."""
    argv = cc.down(PROJECT, 30)
    assert argv == [*BASE, "down", "--remove-orphans", "--timeout", "30"]
    assert "-v" not in argv and "--volumes" not in argv and "--rmi" not in argv


def test_small_builders():
    assert cc.ps_json(PROJECT) == [*BASE, "ps", "--all", "--format", "json"]
    assert cc.config_json(PROJECT) == [*BASE, "config", "--format", "json"]
    assert cc.logs_tail(PROJECT, ["cicd", "rag-context"], 30) == [
        *BASE, "logs", "--no-color", "--timestamps", "--tail", "30", "cicd", "rag-context",
    ]
    assert cc.image_remove("x@" + DIGEST) == ["docker", "image", "rm", "x@" + DIGEST]
    assert cc.repo_digests("sha256:ab") == [
        "docker", "image", "inspect", "--format", "{{json .RepoDigests}}", "sha256:ab",
    ]  # fmt: skip


def test_a_migration_runs_once_with_the_release_settings_and_goes():
    """`run --rm`: the one-shot container is removed when it ends; `--no-deps`: nothing else starts; `-T`: no TTY
    on a host without one; `--name`: what the agent stops when the run outlives its deadline."""
    project = cc.ComposeProject("data", Path("/opt/devtools/data/releases/r2"), ("docker-compose.yml",))
    assert cc.run_once(project, "state-persistence", ["migrate", "--to", "v2"], name="data-migrate-x") == [
        "docker", "compose", "--project-name", "data", "--project-directory", "/opt/devtools/data/releases/r2",
        "--file", "/opt/devtools/data/releases/r2/docker-compose.yml",
        "--env-file", "/opt/devtools/data/releases/r2/release.env",
        "run", "--rm", "--no-deps", "-T", "--name", "data-migrate-x", "state-persistence", "migrate", "--to", "v2",
    ]  # fmt: skip
    assert cc.container_stop("data-migrate-x", 10) == ["docker", "container", "stop", "--time", "10",
                                                       "data-migrate-x"]


def test_an_external_network_is_looked_up_then_created_by_name():
    assert cc.network_inspect("devtools-data") == ["docker", "network", "inspect", "--format", "{{.Name}}",
                                                   "devtools-data"]
    assert cc.network_create("devtools-data") == ["docker", "network", "create", "devtools-data"]
