"""The default release id on a checkout with uncommitted changes: git's view of the release's inputs, on a real
git repository in a temporary folder."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from components.entry import (
    changed_files,
    commit_source,
    dirty_suffix,
    porcelain_paths,
    release_inputs,
    with_dirty_release_id,
)
from tests.unit.components import stack_configs as sc


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    files = {"compose/docker-compose.yml": "services: {}\n", "ops/agent.py": "A = 1\n", "agent/hostagent.py": "H = 1\n",
             "app/services/cicd/service.conf": "port=8000\n", "README.md": "readme\n"}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    git(root, "init", "--quiet")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "--quiet", "-m", "base")
    return root


def test_porcelain_paths_reads_changes_untracked_and_both_sides_of_a_rename():
    out = b" M compose/docker-compose.yml\0?? ops/new.py\0R  ops/b.py\0ops/a.py\0 D app/x.conf\0"
    assert porcelain_paths(out) == ["compose/docker-compose.yml", "ops/new.py", "ops/b.py", "ops/a.py", "app/x.conf"]
    assert porcelain_paths(b"") == []


def test_commit_source_names_the_variable_the_commit_came_from():
    """A commit-derived release id the hosts refuse is reported against its source: the variable that named it
    (DEVTOOLS_COMMIT before GITHUB_SHA, as commit_sha reads them), else the checkout."""
    assert commit_source({"DEVTOOLS_COMMIT": "abc", "GITHUB_SHA": "def"}) == "DEVTOOLS_COMMIT"
    assert commit_source({"DEVTOOLS_COMMIT": "", "GITHUB_SHA": "def"}) == "GITHUB_SHA"
    assert commit_source({}) == "the checkout's HEAD commit"


def test_dirty_suffix_depends_on_paths_and_contents_only():
    one = [("ops/a.py", b"A = 2\n"), ("compose/c.yml", None)]
    suffix = dirty_suffix(one)
    assert re.fullmatch(r"-dirty-[0-9a-f]{8}", suffix)
    assert dirty_suffix(list(reversed(one))) == suffix
    assert dirty_suffix([("ops/a.py", b"A = 3\n"), ("compose/c.yml", None)]) != suffix
    assert dirty_suffix([("ops/a.py", b"A = 2\n"), ("compose/c.yml", b"")]) != suffix
    assert dirty_suffix([]) == ""


@pytest.mark.live
def test_changed_files_lists_only_the_release_inputs(repo: Path):
    assert changed_files(repo, ["compose", "ops", "app"]) == []
    (repo / "ops" / "agent.py").write_text("A = 2\n")
    (repo / "ops" / "extra.py").write_text("B = 1\n")
    (repo / "app" / "services" / "cicd" / "service.conf").unlink()
    (repo / "README.md").write_text("changed, but not an input\n")
    changed = changed_files(repo, ["compose", "ops", "app"])
    assert sorted(changed or []) == [("app/services/cicd/service.conf", None), ("ops/agent.py", b"A = 2\n"),
                                     ("ops/extra.py", b"B = 1\n")]


@pytest.mark.live
def test_changed_files_is_none_where_git_cannot_tell(tmp_path: Path):
    assert changed_files(tmp_path, ["compose"]) is None


@pytest.mark.live
def test_release_inputs_include_the_app_only_inside_the_checkout(repo: Path, tmp_path: Path):
    assert release_inputs(repo, repo / "app") == ["compose", "app"]
    assert release_inputs(repo, tmp_path / "elsewhere") == ["compose"]


@pytest.mark.live
def test_the_default_release_id_gets_a_dirty_suffix_from_changed_inputs(repo: Path):
    cfg = sc.make_local_config(appRoot=str(repo / "app"))
    assert cfg.builds
    assert with_dirty_release_id(cfg, {}, repo) == cfg
    # the agent code is not part of a release: a change there keeps the commit's id (the upload carries it)
    (repo / "agent" / "hostagent.py").write_text("H = 2\n")
    assert with_dirty_release_id(cfg, {}, repo) == cfg
    (repo / "app" / "services" / "cicd" / "service.conf").write_text("port=8001\n")
    dirty = with_dirty_release_id(cfg, {}, repo)
    suffix = dirty_suffix([("app/services/cicd/service.conf", b"port=8001\n")])
    assert dirty.release.release_id == cfg.release.release_id + suffix
    assert dirty.release.release_id == with_dirty_release_id(cfg, {}, repo).release.release_id
    (repo / "app" / "services" / "cicd" / "service.conf").write_text("port=8002\n")
    assert with_dirty_release_id(cfg, {}, repo).release.release_id not in (cfg.release.release_id,
                                                                           dirty.release.release_id)
    # an id set in the stack is used as it is
    assert with_dirty_release_id(cfg, {"devtools:releaseId": "r7"}, repo) == cfg


@pytest.mark.live
def test_without_git_the_id_stays_and_a_warning_says_which_key_to_set(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]):
    cfg = sc.make_local_config(appRoot=str(tmp_path))
    assert with_dirty_release_id(cfg, {}, tmp_path) == cfg
    assert "set devtools:releaseId" in capsys.readouterr().err


def test_the_program_is_the_one_place_a_release_is_named_after_the_commit():
    """The Makefile named releases with its own git diff and hash while the program computed another id for the
    same tree, and hosts refused one id with two contents. `make up` runs the program now: nothing else may name
    a release after the commit."""
    root = Path(__file__).resolve().parents[3]
    others = [root / "Makefile", *sorted((root / "scripts").glob("*.sh")), *sorted((root / "ops").glob("*.py")),
              *sorted((root / ".github").rglob("*.yml"))]
    assert [str(p.relative_to(root)) for p in others if "rev-parse --short" in p.read_text()] == []
    assert [str(p.relative_to(root)) for p in others if "-dirty-" in p.read_text()] == []
