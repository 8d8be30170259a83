"""Narrow doors: each component's Args carries the slice of the stack config it uses, never the whole StackConfig,
and the program combines outputs by name, not by position."""

from __future__ import annotations

import ast
import dataclasses
import sys
from typing import Any

import pytest

from components.config import ReleaseConfig, Secret, SshConfig, StackConfig
from components.data_tier import DataTierArgs
from components.hosts import HostsArgs
from components.images import ServiceImagesArgs
from components.registry import RegistryArgs
from components.release import ReleaseRolloutArgs
from components.snapshot import SnapshotArgs
from components.traffic import TrafficRouterArgs
from components.validation import ValidationGateArgs
from tests.unit.components.stack_configs import ROOT

ARGS = (RegistryArgs, ServiceImagesArgs, HostsArgs, SnapshotArgs, ReleaseRolloutArgs, ValidationGateArgs,
        TrafficRouterArgs, DataTierArgs)


def reaches(args_class: type) -> set[Any]:
    """Every object the field annotations of `args_class` name (`pulumi.Input[X] | None` names pulumi, X, None),
    resolved in the module that defines it."""
    namespace = vars(sys.modules[args_class.__module__])
    found: set[Any] = set()
    for field in dataclasses.fields(args_class):
        annotation = field.type if isinstance(field.type, str) else field.type.__name__
        for node in ast.walk(ast.parse(annotation, mode="eval")):
            if isinstance(node, ast.Name) and node.id in namespace:
                found.add(namespace[node.id])
    return found


@pytest.mark.parametrize("args_class", ARGS, ids=lambda c: c.__name__)
def test_no_component_takes_the_whole_stack_config_or_the_ssh_private_key(args_class):
    """With the whole StackConfig every component could read anything, and program.py could not show what flows
    where; SshConfig carries the private key, which reaches hosts only as a Pulumi secret input of the rollout."""
    assert not reaches(args_class) & {StackConfig, SshConfig, Secret}


def test_only_the_rollout_takes_the_release_settings_with_the_app_secrets():
    """ReleaseConfig holds the application secrets: the rollout writes them to the hosts; the validation gate,
    whose command and output are logged, gets only the validator's settings."""
    assert [c.__name__ for c in ARGS if ReleaseConfig in reaches(c)] == ["ReleaseRolloutArgs"]


def _output_all_calls() -> list[tuple[str, ast.Call]]:
    calls = []
    for path in sorted((ROOT / "components").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "all"
                    and ast.unparse(node.func.value).endswith("Output")):
                calls.append((path.name, node))
    return calls


def test_outputs_are_combined_by_name():
    """`Output.all(a, b).apply(lambda v: f(v[0], v[1]))` breaks silently when an argument is added or reordered;
    named inputs (`Output.all(a=…, b=…)`, `v["a"]`) cannot be mixed up. A single starred list of like values (the
    droplets' addresses) is a list, not a tuple of different things, and stays positional."""
    calls = _output_all_calls()
    assert len(calls) >= 8
    positional = [f"{name}: {ast.unparse(call)}" for name, call in calls
                  if call.args and not (len(call.args) == 1 and isinstance(call.args[0], ast.Starred))]
    assert positional == []
