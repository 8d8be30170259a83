"""Rooms by where code runs: each top-level package imports only what its room allows (docs/architecture.md,
"Folders"). The host agent runs under a droplet's bare python3 (httpx only in the validator's venv), the laptop
tools never load the Pulumi SDK, and the Pulumi program never reaches into laptop code."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STDLIB = set(sys.stdlib_module_names) | {"__future__"}
AUTOMATION = "ops/stacks.py"
"""The one `ops` module that loads the Pulumi SDK: the release flow drives the stacks through the Automation API
(docs/architecture.md, refinement 48); `ops.release` is imported only when a release runs."""


THIRD_PARTY_OF = {
    # room → imports allowed besides the standard library (first-party rooms and third-party roots)
    "agent": {"agent"},
    "agent/validate": {"agent", "httpx"},
    "standin": {"standin"},
    "ops": {"ops", "agent", "standin", "components", "httpx", "yaml", "pydo", "azure", "langfuse"},
    "components": {"components", "agent", "standin", "pulumi", "pulumi_command", "pulumi_digitalocean",
                   "pulumi_docker_build", "yaml"},
    AUTOMATION: {"ops", "components", "pulumi"},
}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def room_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    if str(rel) == AUTOMATION:
        return AUTOMATION
    return "agent/validate" if rel.parts[:2] == ("agent", "validate") else rel.parts[0]


MODULES = sorted(p for room in ("agent", "standin", "ops", "components") for p in (ROOT / room).rglob("*.py")
                 if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_imports_only_what_its_room_allows(path: Path) -> None:
    """A third-party import in agent/ breaks `hostagent apply` on a fresh droplet; `ops` importing pulumi makes
    the CLI need the SDK; `components` importing a laptop module ships laptop assumptions into the program."""
    foreign = imported_roots(path) - STDLIB - THIRD_PARTY_OF[room_of(path)]
    assert foreign == set(), f"{path.relative_to(ROOT)} imports {sorted(foreign)}"


def test_components_never_import_laptop_tools() -> None:
    """Every command line the program sends comes from `agent`, never from `ops` (listed above, checked here by
    name so the rule reads on its own)."""
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "components").rglob("*.py") if "ops" in imported_roots(p)]
    assert offenders == []


@pytest.mark.live
def test_the_laptop_tools_never_load_the_pulumi_sdk() -> None:
    """`ops` may reuse the program's pure modules (the catalog's `build:` reader, the key table), never anything
    that loads pulumi: the operator CLI runs the `pulumi` command instead. The release flow (ops.release, over
    ops.stacks) is the one exception, loaded only when a release runs; ops.cli itself must not load it."""
    modules = sorted(f"ops.{p.stem}" for p in (ROOT / "ops").glob("*.py")
                     if p.stem not in ("__init__", "stacks", "release", "release_run"))
    assert "ops.cli" in modules
    code = (f"import sys\nfor m in {modules!r}: __import__(m)\n"
            "print(sorted(n for n in sys.modules if n.startswith('pulumi')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.live
def test_the_agent_package_loads_under_a_bare_python() -> None:
    """What a fresh droplet has before the venv exists: python3 -I (no site-packages) imports every module of
    agent/ except the validator's httpx modules."""
    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                     for p in (ROOT / "agent").rglob("*.py")
                     if "__pycache__" not in p.parts and p.name != "__main__.py" and "httpx" not in imported_roots(p))
    code = (f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nfor m in {modules!r}: __import__(m)\n"
            f"print(len({modules!r}))")
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=False,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) >= 15  # the host agent, store, rollout, compose, release, diagnose, validate's core


def _folder_table() -> dict[str, str]:
    """docs/architecture.md's folder table: folder → its "what" cell."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Folders", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| `")]
    return {row[0].removeprefix("| ").strip("`"): row[2] for row in rows}


def test_the_folder_table_lists_every_top_level_folder() -> None:
    """A newcomer reads the layout from that table: a folder missing there, or one listed that no longer
    exists, misleads them."""
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".gitignore").read_text().splitlines()}
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and p.name not in ignored
               and (not p.name.startswith(".") or p.name == ".github")}
    listed = {name.split("/", 1)[0] for name in _folder_table()}
    assert listed == folders, listed ^ folders


@pytest.mark.parametrize("room", ["agent", "components", "ops", "standin"])
def test_the_folder_table_names_exactly_the_modules_of_each_room(room: str) -> None:
    """Every module of a code room is named in its row, and every name there is a module or sub-package."""
    cell = _folder_table()[f"{room}/"]
    named = {n.rstrip("/") for n in re.findall(r"`([a-z_][a-z0-9_]*/?)`", cell)}
    base = ROOT / room
    modules = {p.stem for p in base.rglob("*.py") if p.stem not in ("__init__", "__main__")
               and "__pycache__" not in p.parts}
    packages = {p.parent.name for p in base.rglob("__init__.py") if p.parent != base}
    assert named == modules | packages, (named ^ (modules | packages))
