"""Every docker command the host agent can run, as exact argv lists."""

from pathlib import Path

import pytest

from ops import compose_cmd as cc

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


def test_no_command_deletes_volumes():
    """A rollout must never delete data: no `down -v`, no prune with volumes, no forced image removal."""
    argvs = [
        cc.up(PROJECT, 1), cc.pull(PROJECT), cc.ps_json(PROJECT), cc.config_json(PROJECT),
        cc.logs_tail(PROJECT, ["a"], 5), cc.image_remove("r@" + DIGEST), cc.project_containers("green"),
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
    assert cc.project_containers("blue") == [
        "docker", "ps", "--all", "--quiet", "--filter", "label=com.docker.compose.project=blue",
    ]
    assert cc.image_remove("x@" + DIGEST) == ["docker", "image", "rm", "x@" + DIGEST]


def test_release_env_is_sorted_and_stable():
    text = cc.render_release_env(
        "abc1234",
        {"state-persistence": "r/s@" + DIGEST, "gateway-mcp": "r/g@" + DIGEST},
        {"HOST_PORT_PREFIX": "81", "COMPOSE_PROFILES": "edge"},
    )
    assert text == (
        "RELEASE_ID=abc1234\n"
        f"GATEWAY_MCP_IMAGE=r/g@{DIGEST}\n"
        f"STATE_PERSISTENCE_IMAGE=r/s@{DIGEST}\n"
        "COMPOSE_PROFILES=edge\n"
        "HOST_PORT_PREFIX=81\n"
    )


def test_good_release_has_no_problems():
    assert cc.check_release("abc1234", {"cicd": "127.0.0.1:5000/devtools/cicd@" + DIGEST}, {"X": "1"}) == []


@pytest.mark.parametrize(
    ("release_id", "images", "extra", "expected"),
    [
        ("bad id", {"a": "r@" + DIGEST}, {}, "release id 'bad id' must match"),
        ("r1", {}, {}, "release has no images"),
        ("r1", {"cicd": "registry/cicd:latest"}, {}, "images.cicd: 'registry/cicd:latest' is not digest-pinned"),
        ("r1", {"cicd": "r@sha256:abc"}, {}, "is not digest-pinned"),
        ("r1", {"Bad": "r@" + DIGEST}, {}, "service name 'Bad' must match"),
        ("r1", {"a": "r@" + DIGEST}, {"lower": "x"}, "env.lower: not an environment variable name"),
        ("r1", {"a": "r@" + DIGEST}, {"CICD_IMAGE": "x"}, "env.CICD_IMAGE: reserved for the release itself"),
        ("r1", {"a": "r@" + DIGEST}, {"A": "x\ny"}, "env.A: value must be one line"),
    ],
)
def test_bad_release_is_refused_with_the_key(release_id, images, extra, expected):
    """Tags are for humans: a host must only ever run digest-pinned images, so anything else is refused."""
    problems = cc.check_release(release_id, images, extra)
    assert any(expected in p for p in problems), problems


def test_image_env_key():
    assert cc.image_env_key("gateway-mcp") == "GATEWAY_MCP_IMAGE"
    assert cc.image_env_key("cicd") == "CICD_IMAGE"


def test_parse_and_render_secrets():
    text = "# comment\n\nAPI_TOKEN=abc=def\nDB_PASSWORD=\n"
    secrets = cc.parse_secrets(text)
    assert secrets == {"API_TOKEN": "abc=def", "DB_PASSWORD": ""}
    assert cc.render_secrets(secrets) == "API_TOKEN=abc=def\nDB_PASSWORD=\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lower=hunter2", "secrets line 1: expected KEY=VALUE"),
        ("A=1\nno-equals-hunter2", "secrets line 2: expected KEY=VALUE"),
        ("CICD_IMAGE=hunter2", "secrets line 1: CICD_IMAGE is reserved"),
    ],
)
def test_bad_secrets_name_the_line_never_the_value(text, expected):
    with pytest.raises(ValueError, match=expected) as info:
        cc.parse_secrets(text)
    assert "hunter2" not in str(info.value)
