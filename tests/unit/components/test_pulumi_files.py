"""The project files agree with the one key table (components/config_keys.py): Pulumi.yaml's schema (generated
from it, tests/unit/components/test_config_doc.py) and the stack files."""

from __future__ import annotations

import re

import pytest
import yaml

from components.config import ConfigError, load_config
from components.config_keys import KEYS
from components.ssh_keys import DEPLOY_KEY_FIX
from tests.unit.components.stack_configs import PROD_SECRETS, ROOT, committed_stack_config, stack_file_config

PROJECT = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())


def test_project_is_devtools_python_in_the_venv():
    assert PROJECT["name"] == "devtools"
    assert PROJECT["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}


def test_schema_declares_every_simple_key_with_type_default_and_secret_flag():
    """A key missing from the schema gets no CLI type check and no default; a wrong default means the CLI and
    the program disagree about what an unset key means."""
    simple = {k.name: k for k in KEYS if k.in_schema}
    assert set(PROJECT["config"]) == set(simple)
    assert {k.name for k in KEYS if not k.in_schema} == {"appSecrets", "sshPrivateKey", "sshHostPrivateKey",
                                                         "promotion", "signingKey", "signingPassword"}
    for name, key in simple.items():
        decl = PROJECT["config"][name]
        assert decl["type"] == key.schema_type, name  # the key's own type; a number key: string (no number type)
        assert decl["default"] == key.schema_default, name
        if key.type == "number":
            assert decl["type"] == "string" and float(decl["default"]) == key.default, name
        assert bool(decl.get("secret")) == key.secret, name
        if key.type == "array":
            assert decl["items"] == {"type": "string"}, name


def test_dependencies_are_pinned_exactly():
    lines = [ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    names = {ln.split("==")[0] for ln in lines}
    assert {"pulumi", "pulumi-digitalocean", "pulumi-command", "pulumi-docker-build", "httpx"} <= names
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", ln) for ln in lines), lines
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text()


@pytest.mark.parametrize("stack", ["prod", "blue"])
def test_committed_stack_files_are_valid(stack):
    """The stack files in the repository must pass the program's own checks (with the secrets a real stack holds
    encrypted)."""
    cfg = load_config(stack_file_config(stack), PROD_SECRETS, stack=stack, project="devtools", commit="abc1234",
                      root=ROOT)
    assert cfg.color == {"prod": "green", "blue": "blue"}[stack]


@pytest.mark.parametrize("stack", ["prod", "blue"])
def test_the_committed_public_key_is_a_placeholder_refused_with_the_fix(stack):
    """The committed example key was not a key at all (`ssh-keygen -l` refused it; DigitalOcean would answer
    422 at the first `pulumi up`). The stack files hold an obvious placeholder, and the program refuses it before
    any resource, saying how to make a deploy key and set it."""
    raw = committed_stack_config(stack) | {k: v for k, v in stack_file_config(stack).items()
                                           if k != "devtools:sshPublicKey"}
    value = committed_stack_config(stack)["devtools:sshPublicKey"]
    assert "REPLACE" in value
    with pytest.raises(ConfigError) as err:
        load_config(raw, PROD_SECRETS, stack=stack, project="devtools", commit="abc1234", root=ROOT)
    assert [p for p in err.value.problems if p.startswith("devtools:sshPublicKey")] == [
        f'devtools:sshPublicKey: "{value}" is not allowed: an OpenSSH public key line (ssh-ed25519 AAAA… '
        f"comment): this is the committed placeholder, not a key: {DEPLOY_KEY_FIX}"]


def test_stack_files_use_only_known_keys():
    known = {f"devtools:{k.name}" for k in KEYS} | {"digitalocean:token"}
    for stack in ("prod", "blue", "local", "local-blue"):
        keys = set(yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"])
        assert keys <= known, (stack, keys - known)
