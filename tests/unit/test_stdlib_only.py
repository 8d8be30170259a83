"""The host-side modules run under a droplet's bare python3: they may import the standard library only."""

import ast
import sys
from pathlib import Path

import pytest

OPS = Path(__file__).resolve().parents[2] / "ops"
HOST_SIDE = ["hostagent", "rollout", "compose_output", "hoststore", "hoststatus", "compose_cmd", "catalog",
             "diagnose", "masking", "diagnose_report", "lbctl", "promconf", "localenv", "gate_summary"]


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("module", HOST_SIDE)
def test_host_side_module_imports_only_stdlib(module):
    """A third-party import here would break `hostagent apply` on a freshly provisioned droplet."""
    foreign = imported_roots(OPS / f"{module}.py") - set(sys.stdlib_module_names) - {"ops", "__future__"}
    assert foreign == set()


def test_ops_never_imports_pulumi():
    for path in OPS.glob("*.py"):
        assert "pulumi" not in imported_roots(path), path
