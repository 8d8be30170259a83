"""Pure builders for every command string and payload the rollout components send to a host.

Nothing here opens a socket or runs a process: each function returns a string (or a dict, or Pulumi connection
args) from its arguments, and tests/unit/components/test_commands.py pins each one exactly. Every command line
that runs on a host comes from `agent.remote` (the one home of the agent's paths and module names, shared with
`ops.ship` and the host agent); these add what the program knows: the slices of the stack's config they take
(where the project lives on a host, the validator's settings, the SSH login) and the Pulumi connection.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
from pulumi_command import remote

from agent import remote as host
from agent.release import DIGEST_REF, release_manifest
from components.config import ReleaseConfig
from components.config_slices import AgentPlace, SshLogin, ValidatorSettings
from standin.localenv import flip_argv

# Fresh droplets take a while to accept SSH: keep dialling 60 times, 10 s each, before the rollout gives up.
DIAL_ERROR_LIMIT = 60
PER_DIAL_TIMEOUT = 10
CLOUD_INIT_TIMEOUT = 900  # seconds a fresh droplet's bootstrap (packages, docker, the agent venv) may take
CLOUD_INIT_LOG = "/var/log/cloud-init-output.log"


def cloud_init_wait(timeout: int = CLOUD_INIT_TIMEOUT, log: str = CLOUD_INIT_LOG) -> str:
    """Remote shell: wait for cloud-init (a fresh droplet's bootstrap) at most `timeout` seconds.

    `cloud-init status --wait` exits 0 when done, 2 when done with recoverable errors (cloud-init 23.4+: deprecated
    keys and the like) and 1 on an error, such as a failed runcmd (the host agent's doctor is its last command).
    An error, or a bootstrap still running at the deadline (timeout's 124), fails the step with cloud-init's own
    account (`status --long`) and the last lines of its output log. No cloud-init (an existing host): no wait.
    """
    q = shlex.quote
    explain = (f"cloud-init status --long </dev/null >&2; echo {q(f'last lines of {log}:')} >&2; "
               f"tail -n 40 {q(log)} >&2 2>/dev/null; exit 1;;")
    return (f"if command -v cloud-init >/dev/null 2>&1; then rc=0; timeout {timeout} cloud-init status --wait "
            f"</dev/null >/dev/null 2>&1 || rc=$?; case \"$rc\" in 0|2) ;; "
            f"124) echo \"cloud-init is still running after {timeout} s:\" >&2; {explain} "
            f"*) echo \"cloud-init failed (status exit $rc):\" >&2; {explain} esac; fi")


CLOUD_INIT_WAIT = cloud_init_wait()
DECODE = "base64 -d | gzip -dc"
COMPOSE_DIR = Path(__file__).resolve().parent.parent / "compose"
CONTENT_MARKER = "release-content"
SLO_RULES = "prometheus/slo-rules.yml"
"""The bundle file of the SLO rules (agent.remote.BUNDLE_FILES), which the edge profile's Prometheus loads."""


def release_env(release: ReleaseConfig) -> dict[str, str]:
    """The release's non-secret settings for compose (release.env): port prefix and enabled profiles."""
    env = {"HOST_PORT_PREFIX": str(release.host_port_prefix)}
    if release.compose_profiles:
        env["COMPOSE_PROFILES"] = release.compose_profiles
    return env


def manifest(release_id: str, images: Mapping[str, str], env: Mapping[str, str], commit: str | None,
             signing: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """release.json for the host agent. No clock in it: identical inputs give identical bytes. `signing`: the
    signatures its hosts verify before anything changes (agent.signing.Policy.manifest_section); None leaves it out."""
    return release_manifest(release_id, images, env, {"commit": commit}, signing=signing)


def _files(rules: bytes | None) -> dict[str, bytes]:
    return {SLO_RULES: rules} if rules is not None else {}


def bundle_payload(release: Mapping[str, Any], compose: bytes | None = None, rules: bytes | None = None) -> str:
    """The upload's stdin: base64 of the gzipped bundle tar (gzip mtime 0, so the same release is the same text).
    `compose`: the tier's compose file (components.tiers), None: compose/docker-compose.yml as it is. `rules`: the
    stack's SLO rule file (components.slo), None: compose/prometheus/slo-rules.yml (the default targets)."""
    tar = host.bundle_tar(release, COMPOSE_DIR, compose=compose, files=_files(rules))
    return base64.b64encode(gzip.compress(tar, mtime=0)).decode()


def content_hash(release: Mapping[str, Any], compose: bytes | None = None, rules: bytes | None = None) -> str:
    """sha256 of the release alone (bundle files and manifest without `source` and without the agent code): the
    digests, env and compose files decide a re-run. New agent code reaches hosts with the next upload, which
    re-runs on its own when its payload changes, without re-applying an unchanged release. The SLO rules are
    bundle content: a changed target is a new release content."""
    content = {k: v for k, v in release.items() if k != "source"}
    tar = host.bundle_tar(content, COMPOSE_DIR, agent_dir=None, compose=compose, files=_files(rules))
    return hashlib.sha256(tar).hexdigest()


def bundle_sha256(release: Mapping[str, Any], compose: bytes | None = None, rules: bytes | None = None) -> str:
    """sha256 of the bundle tar bundle_payload carries: the upload refuses any other bytes (a truncated stdin)."""
    return hashlib.sha256(host.bundle_tar(release, COMPOSE_DIR, compose=compose, files=_files(rules))).hexdigest()


def upload_script(host_root: str, project: str, release_id: str, sha256: str) -> str:
    """Remote shell: wait for cloud-init (fresh droplet), then decode stdin, check it against `sha256` and unpack
    it as `ops.ship` does, into this project's own incoming directory."""
    return f"{CLOUD_INIT_WAIT} && {host.upload_command(host_root, project, release_id, sha256, decode=DECODE)}"


def secrets_script(host_root: str, project: str) -> str:
    """Remote shell: `hostagent secrets` reads KEY=VALUE lines from stdin into the 0600 secrets file."""
    return host.agent_command(host_root, project, ["secrets"])


def registry_auth_script(host_root: str, project: str) -> str:
    """Remote shell: `hostagent registry-auth` reads the release's pull credential (docker config JSON) from stdin
    into the docker config the pulls use (0600)."""
    return host.agent_command(host_root, project, ["registry-auth"])


def stop_script(host_root: str, project: str) -> str:
    """Remote shell, run when the rollout is destroyed: `hostagent stop` (compose down; volumes, images and the
    release history stay on the host)."""
    return host.agent_command(host_root, project, ["stop"])


def presence_script(host_root: str, project: str) -> str:
    """Remote shell that creates the host's lifecycle resource: prints the agent's view of the project (read-only)."""
    return host.agent_command(host_root, project, ["status", "--compact"])


def _prometheus_args(validator: ValidatorSettings) -> list[str]:
    """The validator's optional phases: Prometheus, and trace coverage (its keys: the host's secrets file)."""
    traces = ([f"--langfuse-host={validator.langfuse_host}", f"--trace-min={validator.trace_coverage_min:g}"]
              if validator.langfuse_host else [])
    if not validator.prometheus_url:
        return traces
    args = [f"--prometheus={validator.prometheus_url}"]
    args += [f"--prom-selector={validator.prometheus_selector}"] if validator.prometheus_selector else []
    return [*args, *traces]


POOL_STEP_SECONDS = 900
"""How long a pool host waits for its confirmation per host still to roll (upload, apply, gate), its own gate
included. Too short costs a revert and a re-activation at confirm, never a failed update (agent.pool)."""


def confirm_window(index: int, count: int) -> int:
    """Seconds host `index` (from 0) of a pool of `count` hosts stays provisional; 0 for a single host, whose gate
    is the last thing that can fail."""
    return 0 if count < 2 else (count - index) * POOL_STEP_SECONDS


def apply_script(place: AgentPlace, release_id: str, content: str, *, keep: int,
                 validator: ValidatorSettings, confirm_within: int = 0) -> str:
    """Remote shell: `hostagent apply` of the uploaded release, led by a no-op `:` carrying the content hash.

    The marker makes a changed release content (same id) a changed command, so the apply re-runs. In a pool
    (`confirm_within` > 0) the release stays provisional until the pool's confirm step.
    """
    args = ["--keep", str(keep), "--validate-deadline", str(validator.deadline)]
    args += [f"--validate-arg={a}" for a in _prometheus_args(validator)]
    args += ["--confirm-within", str(confirm_within)] if confirm_within else []
    command = host.apply_command(place.root, place.project, release_id, args)
    return f": {shlex.quote(f'{CONTENT_MARKER}={content}')} && {command}"


def gate_report_path(place: AgentPlace, release_id: str) -> str:
    return f"{place.root}/{place.project}/reports/gate-{release_id}.json"


def validate_script(place: AgentPlace, validator: ValidatorSettings, release_id: str, confirm_within: int = 0) -> str:
    """Remote shell: `hostagent gate`: validate the running release (activated again first if an earlier gate put
    the previous one back) and print ONE JSON summary line last; on failure it restores the previous release and
    writes a debug bundle, then exits non-zero (agent.pool). A stale report of the same id never counts."""
    args = ["gate", "--release", release_id, "--report", gate_report_path(place, release_id),
            "--validate-deadline", str(validator.deadline)]
    args += [f"--validate-arg={a}" for a in _prometheus_args(validator)]
    args += ["--confirm-within", str(confirm_within)] if confirm_within else []
    return host.agent_command(place.root, place.project, args)


def confirm_script(place: AgentPlace, release_id: str) -> str:
    """Remote shell: `hostagent confirm`: every host of the pool passed its gate, the provisional release stays
    (activated again where the host already went back)."""
    return host.agent_command(place.root, place.project, ["confirm", "--release", release_id])


def parse_gate_summary(stdout: str) -> dict[str, Any]:
    """The gate's summary: the last non-empty stdout line, a JSON object with a boolean `passed`."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ValueError("validation gate printed nothing: expected a JSON summary line from agent.validate.gate")
    try:
        value = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise ValueError(f"validation gate's last line is not JSON ({exc.msg}): {lines[-1][:200]!r}") from exc
    if not isinstance(value, dict) or not isinstance(value.get("passed"), bool):
        raise ValueError(f"validation gate's last line is not a summary with a boolean 'passed': {lines[-1][:200]!r}")
    return value


COSIGN = "cosign"  # on PATH where the program runs (the toolchain's bin directory on this machine)
COSIGN_KEY_ENV = "COSIGN_PRIVATE_KEY"  # the encrypted private key, read by `--key env://…`
COSIGN_PASSWORD_ENV = "COSIGN_PASSWORD"  # noqa: S105 - the name of the variable cosign reads its password from
REGISTRY_AUTH_ENV = "DEVTOOLS_REGISTRY_AUTH"  # the push credentials' docker config JSON, written to a temporary file


def sign_argv(ref: str) -> list[str]:
    """cosign's signature of one digest with the key in COSIGN_KEY_ENV, offline (no transparency log, no signing
    config to fetch), in the signature format the hosts verify (agent.signing.verify_command)."""
    if not DIGEST_REF.match(ref):
        raise ValueError(f"refusing to sign {ref!r}: not digest-pinned (expected repo@sha256:<64 hex>)")
    return [COSIGN, "sign", "--key", f"env://{COSIGN_KEY_ENV}", "--tlog-upload=false", "--use-signing-config=false",
            "--new-bundle-format=false", "--yes", ref]


def sign_command(ref: str, *, registry_auth: bool) -> str:
    """Local shell: sign `ref` after its push. The key and its password are in the environment (never argv).
    With `registry_auth` the push credentials come from REGISTRY_AUTH_ENV into a temporary DOCKER_CONFIG (0600 in
    a 0700 directory; printf is the shell's own, so no argv holds them), removed when the shell exits; a registry
    on loopback needs none (cosign speaks plain http to 127.0.0.1)."""
    sign = shlex.join(sign_argv(ref))
    if not registry_auth:
        return sign
    return ("set -eu; umask 077; DOCKER_CONFIG=\"$(mktemp -d)\"; export DOCKER_CONFIG; "
            "trap 'rm -rf \"$DOCKER_CONFIG\"' EXIT; trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM; "
            f"printf '%s' \"${REGISTRY_AUTH_ENV}\" > \"$DOCKER_CONFIG/config.json\"; unset {REGISTRY_AUTH_ENV}; {sign}")


def docker_config_json(server: str, username: str, password: str) -> str:
    """SECRET: a docker config holding one login (what cosign reads from DOCKER_CONFIG to push a signature)."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {server: {"auth": auth}}}, sort_keys=True)


def local_flip_command(root: Path, color: str) -> str:
    """Local shell: move the stand-in's haproxy to `color` (it refuses a color whose health check is not UP)."""
    return shlex.join(flip_argv(root, color))


def connection_args(address: pulumi.Input[str], port: int, login: SshLogin, private_key: pulumi.Input[str]
                    ) -> remote.ConnectionArgs:
    """SSH to a host: the configured user and pinned host key, patient dialling, the key only as a secret."""
    return remote.ConnectionArgs(
        host=address,
        port=port,
        user=login.user,
        private_key=pulumi.Output.secret(private_key),
        host_key=login.host_key,
        dial_error_limit=DIAL_ERROR_LIMIT,
        per_dial_timeout=PER_DIAL_TIMEOUT,
    )
