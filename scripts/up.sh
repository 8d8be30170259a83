#!/usr/bin/env bash
# `make up`: the Pulumi program on a local stack against the loopback stand-in: the same components, host agent
# and validation a `pulumi up --stack prod` runs on DigitalOcean, with the SSH stand-in as the droplet, the local
# registry as DOCR and haproxy as the load balancer. See --help.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/local.env disable=SC1091
source "$ROOT/scripts/local.env"
T=${DEVTOOLS_TOOLCHAIN:-/var/tmp/devtools-toolchain}
PY=$ROOT/.venv/bin/python

usage() {
  cat <<EOF
usage: scripts/up.sh [local|local-blue]     (make up, make up COLOR=blue)

  local       the green color: builds the example application's images, rolls them out to the SSH stand-in,
              validates them, and points haproxy at the stack's devtools:liveColor (Pulumi.local.yaml)
  local-blue  the blue color on the same stand-in, running the local stack's current release (run local first)

Every step is idempotent: a second run with nothing changed is a no-op ('pulumi up' reports no changes).
Pulumi: the 'pulumi' on PATH when there is one; otherwise the toolchain scripts/pulumi-toolchain.sh builds
from the Go module proxy, once, into $T. The stacks live in a file backend under $DEVTOOLS_STATE
(PULUMI_BACKEND_URL overrides it) with the local-only passphrase of Pulumi.local.yaml.
EOF
}

now_us() { echo "${EPOCHREALTIME/./}"; }
say() { printf '==> %s\n' "$*"; }
took() { local d=$(($(now_us) - $2)); printf '==> %s (%d.%01ds)\n' "$1" $((d / 1000000)) $((d / 100000 % 10)); }
die() { printf 'up: error: %s\n' "$*" >&2; exit 1; }

case ${1:-local} in
  local | local-blue) STACK=${1:-local} ;;
  -h | --help | help) usage && exit 0 ;;
  *) usage >&2 && exit 2 ;;
esac

# The pulumi to use: one on PATH (not ours), else ours, built on first use.
use_pulumi() {
  local own
  own=$(command -v pulumi || true)
  if [[ -n $own && $own != "$T"/* ]]; then
    say "pulumi $(pulumi version) from $own"
    export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$DEVTOOLS_STATE/pulumi-state?metadata=skip}"
    export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-devtools-local-only}"
    mkdir -p "$DEVTOOLS_STATE/pulumi-state"
    return 0
  fi
  if ! bash "$ROOT/scripts/pulumi-toolchain.sh" status >/dev/null 2>&1; then
    say "no pulumi on PATH: building the Pulumi CLI, a Python language host and the docker-build and command"
    say "providers from the Go module proxy, once (about 15 min on 2 cores with empty Go caches; cached in $T,"
    say "later runs take a second). Each part prints a line when it starts and when it is done."
    bash "$ROOT/scripts/pulumi-toolchain.sh" install
  fi
  eval "$(bash "$ROOT/scripts/pulumi-toolchain.sh" env)"
  say "pulumi $(pulumi version) from $T"
}

# What `pulumi up` cannot see: a host may run another release than the stack records (the bench, the e2e or
# engine tests, a hand on the stand-in), or haproxy serve another color. `ops.cli status` reports both (exit 1);
# then the stack's record is applied again, and the status must agree.
converge() {
  local out
  if out=$("$PY" -m ops.cli status --stack "$STACK" --cwd "$ROOT" 2>&1); then
    printf '%s\n' "$out"
    return 0
  fi
  printf '%s\n' "$out"
  if grep -q '^OTHER RELEASE' <<<"$out"; then
    say "a host runs another release than stack $STACK records: applying the recorded one again"
    "$PY" -m ops.cli reapply --stack "$STACK" --cwd "$ROOT" --yes
  fi
  if grep -q '^TRAFFIC DIFFERS' <<<"$out"; then
    say "haproxy serves another color than stack $STACK records: moving it back"
    "$PY" -m ops.cli flip "$(pulumi config get devtools:liveColor --stack "$STACK")" --stack "$STACK" \
      --cwd "$ROOT" --yes
  fi
  "$PY" -m ops.cli status --stack "$STACK" --cwd "$ROOT" || die "stack $STACK and what runs still differ (above)"
}

summary() {
  local endpoint="http://127.0.0.1:$LB_PORT"
  [[ $STACK == local ]] || "$PY" -m ops.cli status --stack local --cwd "$ROOT" | tail -n 1 || true
  say "try: curl -i $endpoint/health   (X-Served-By names the color)"
  say "MCP: curl -X POST $endpoint/mcp -H 'content-type: application/json' -d '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}'"
  if [[ $STACK == local-blue ]]; then
    say "traffic moves with: make flip COLOR=blue (python -m ops.cli flip blue --stack local)"
  fi
}

main() {
  local t
  t=$(now_us)
  bash "$ROOT/scripts/local-env.sh" up
  use_pulumi
  bash "$ROOT/scripts/buildkit-local.sh" up
  "$PY" -m ops.build --vendor-only
  cd "$ROOT"
  # A release that changes the data tier reads the standby stack (one data tier serves both colors, and the
  # colors must run one release then): both local stacks exist, the standby empty until `make up COLOR=blue`.
  pulumi stack select --create local-blue --non-interactive >/dev/null
  pulumi stack select --create "$STACK" --non-interactive >/dev/null
  say "pulumi up --stack $STACK"
  pulumi up --stack "$STACK" --yes --non-interactive --skip-preview --suppress-progress --suppress-outputs
  converge
  summary
  took "make up ($STACK) done" "$t"
}

main
