"""Known-good stack configs for tests, and a helper that overrides one value (raw, as Pulumi holds it)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import yaml

from components.config import StackConfig, load_config
from tests.cosign_test_keys import PAIR_A, PAIR_B
from tests.ssh_test_keys import DEPLOY_PUBLIC_KEY, HOST_PRIVATE_KEY

ROOT = Path(__file__).resolve().parents[3]
COMMIT = "1a2b3c4"

SSH_PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-test-only-private\n" \
                  "-----END OPENSSH PRIVATE KEY-----\n"
SSH_PUBLIC_KEY = DEPLOY_PUBLIC_KEY
LANGFUSE_SECRET = "sk-lf-test-0123456789abcdef"
LANGFUSE_PUBLIC = "pk-lf-test-fedcba9876543210"
DO_TOKEN = "dop_v1_test_0000000000000000000000000000000000000000000000000000000000000000"

SIGNING_PUBLIC_KEY = "tests/signing/cosign-b.pub"
"""What the test stacks list in signingPublicKeys (relative to the project root, as signing/prod.pub is)."""
SIGNING: dict[str, Any] = {
    "devtools:signingPublicKeys": json.dumps([SIGNING_PUBLIC_KEY]),
    "devtools:signingKey": PAIR_B.private_pem,
    "devtools:signingPassword": PAIR_B.password,
}
"""prod's signing keys: test pair b, whose password is not empty."""
LOCAL_SIGNING: dict[str, Any] = {
    "devtools:signingPublicKeys": json.dumps([str(PAIR_A.pub_path)]),
    "devtools:signingKeyPath": str(PAIR_A.key_path),
}
"""The local stack's: test pair a (no password) from files, given by absolute paths as the stand-in's are."""

PROD: dict[str, Any] = {
    "devtools:provider": "digitalocean",
    "devtools:color": "green",
    "devtools:liveColor": "green",
    "devtools:traffic": "loadBalancer",
    "devtools:release": "build",
    "devtools:snapshot": "true",
    "devtools:sshAllowlist": '["203.0.113.7/32"]',
    "devtools:sshPublicKey": SSH_PUBLIC_KEY,
    "devtools:sshPrivateKey": SSH_PRIVATE_KEY,
    "devtools:sshHostPrivateKey": HOST_PRIVATE_KEY,
    "devtools:appSecrets": {"LANGFUSE_SECRET_KEY": LANGFUSE_SECRET, "LANGFUSE_PUBLIC_KEY": LANGFUSE_PUBLIC},
    "digitalocean:token": DO_TOKEN,
    **SIGNING,
}
PROD_SECRETS = {"devtools:sshPrivateKey", "devtools:sshHostPrivateKey", "devtools:appSecrets", "digitalocean:token",
                "devtools:signingKey", "devtools:signingPassword"}

BLUE: dict[str, Any] = {
    **{k: v for k, v in PROD.items()
       if k not in ("devtools:liveColor", "devtools:snapshot", "devtools:signingKey", "devtools:signingPassword")},
    "devtools:color": "blue",
    "devtools:traffic": "none",
    "devtools:release": "prod",
}

LOCAL: dict[str, Any] = {
    "devtools:provider": "existing",
    "devtools:color": "green",
    "devtools:liveColor": "green",
    "devtools:traffic": "localProxy",
    "devtools:release": "build",
    "devtools:existingHosts": '["127.0.0.1:2222"]',
    "devtools:registryAddress": "127.0.0.1:5000",
    "devtools:repoPrefix": "devtools",
    "devtools:buildCache": "false",
    "devtools:sshPrivateKey": SSH_PRIVATE_KEY,
    "devtools:composeProfiles": "",
    "devtools:hostPortPrefix": "81",
    "devtools:prodStack": "local",
    "devtools:dataPortPrefix": "83",
    "devtools:prometheusUrl": "http://127.0.0.1:9390",
    "devtools:prometheusSelector": 'color="green"',
    **LOCAL_SIGNING,
}
LOCAL_SECRETS = {"devtools:sshPrivateKey"}

SECRET_VALUES = (SSH_PRIVATE_KEY.strip(), "b3BlbnNzaC1rZXktdjEAAAAA-test-only-private", LANGFUSE_SECRET,
                 LANGFUSE_PUBLIC, DO_TOKEN, HOST_PRIVATE_KEY.strip(), HOST_PRIVATE_KEY.splitlines()[3],
                 *(text for pair in (PAIR_A, PAIR_B) for text in (pair.private_pem.strip(),
                                                                  *pair.private_pem.splitlines()[1:-1])),
                 PAIR_B.password)


def with_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with raw values replaced; a value of None removes the key. Names without ':' get `devtools:`."""
    raw = dict(base)
    for key, value in overrides.items():
        full = key if ":" in key else f"devtools:{key}"
        if value is None:
            raw.pop(full, None)
        else:
            raw[full] = value
    return raw


def make_config(stack: str = "prod", base: dict[str, Any] | None = None, secrets: set[str] | None = None,
                **overrides: Any) -> StackConfig:
    raw = with_overrides(PROD if base is None else base, overrides)
    return load_config(raw, PROD_SECRETS if secrets is None else secrets, stack=stack, project="devtools",
                       commit=COMMIT, root=ROOT)


def make_blue_config(**overrides: Any) -> StackConfig:
    return make_config("blue", BLUE, **overrides)


def make_local_config(**overrides: Any) -> StackConfig:
    return make_config("local", LOCAL, LOCAL_SECRETS, **overrides)


def _raw_value(value: Any) -> str:
    """A stack file value as the Pulumi CLI hands it to the program: scalars as text, the rest as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value)


@functools.cache
def _yaml_file(name: str) -> Any:
    return yaml.load((ROOT / name).read_text(), Loader=yaml.CSafeLoader)


def committed_stack_config(stack: str) -> dict[str, Any]:
    """What the CLI passes for `stack` as committed: Pulumi.yaml defaults, then Pulumi.<stack>.yaml."""
    project = _yaml_file("Pulumi.yaml")
    raw = {f"devtools:{k}": _raw_value(v["default"]) for k, v in project["config"].items() if "default" in v}
    return raw | {k: _raw_value(v) for k, v in _yaml_file(f"Pulumi.{stack}.yaml")["config"].items()}


def stack_file_config(stack: str) -> dict[str, Any]:
    """What the CLI passes for `stack` once the operator set it up: the committed config with the placeholders
    replaced (the deploy key's public half, signing/prod.pub by a test public key) and the test secrets (which a
    real stack holds encrypted: they are set with `pulumi config set --secret`)."""
    raw = committed_stack_config(stack)
    if stack in ("local", "local-blue"):
        # the SSH key comes from sshPrivateKeyPath (a test overrides it with a temporary file); the stand-in's
        # signing key pair from files under /var/tmp, here test pair a's
        return raw | {k: v for k, v in LOCAL_SIGNING.items() if raw.get(k)}
    signing = SIGNING if stack == "prod" else {"devtools:signingPublicKeys": SIGNING["devtools:signingPublicKeys"]}
    return raw | signing | {
        "devtools:sshPublicKey": SSH_PUBLIC_KEY, "devtools:sshHostPrivateKey": HOST_PRIVATE_KEY,
        "devtools:sshPrivateKey": SSH_PRIVATE_KEY, "digitalocean:token": DO_TOKEN,
        "devtools:appSecrets": json.dumps({"LANGFUSE_SECRET_KEY": LANGFUSE_SECRET,
                                           "LANGFUSE_PUBLIC_KEY": LANGFUSE_PUBLIC})}
