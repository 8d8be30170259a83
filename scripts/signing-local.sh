#!/usr/bin/env bash
# Signed images on the local stand-in: the cosign the host agent runs (agent.signing.COSIGN, /usr/local/bin/cosign;
# the stand-in host is this machine), the same upstream release the droplets' cloud-init installs, built from the Go
# module proxy by scripts/pulumi-toolchain.sh and copied from there; and the local stacks' signing key pair, made
# once and never overwritten. scripts/local-env.sh up runs `up` as its last step. See --help.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/local.env disable=SC1091
source "$ROOT/scripts/local.env"
S=$DEVTOOLS_STATE
KEYS=$S/signing
COSIGN=${HOST_COSIGN:-/usr/local/bin/cosign}

usage() {
  cat <<EOF
usage: scripts/signing-local.sh up|status|--help

  up      install the toolchain's cosign as $COSIGN when it is missing or differs (building it first
          when the toolchain has none: 'scripts/pulumi-toolchain.sh install cosign', once: 3 min on 2 cores with
          its modules in Go's cache, longer with empty caches), then make the local key pair once: $KEYS/cosign.key (0600, encrypted
          with an empty password: COSIGN_PASSWORD=) and cosign.pub. An existing pair is never overwritten; a
          second call changes nothing and prints nothing
  status  one line each for cosign and the key pair; exit 0 only when both are in place

HOST_COSIGN moves $COSIGN, DEVTOOLS_STATE the key pair (scripts/local.env).
EOF
}

now_us() { echo "${EPOCHREALTIME/./}"; }
say() { printf '==> %s\n' "$*"; }
took() { local d=$(($(now_us) - $2)); printf '==> %s (%d.%01ds)\n' "$1" $((d / 1000000)) $((d / 100000 % 10)); }
die() { printf 'signing-local: error: %s\n' "$*" >&2; exit 1; }
toolchain() { bash "$ROOT/scripts/pulumi-toolchain.sh" "$@"; }
# private_dir DIR: ours and 0700 (under world-writable /var/tmp, as scripts/local-env.sh does it)
private_dir() {
  mkdir -p "$1"
  [[ -O $1 && ! -L $1 ]] || die "$1 exists but is not a directory owned by $(id -un): not using it"
  chmod 700 "$1"
}

ensure_cosign() {
  local t src
  if ! src=$(toolchain path cosign 2>/dev/null); then
    say "cosign is not built yet: building it from the Go module proxy, once (scripts/pulumi-toolchain.sh)"
    toolchain install cosign
    src=$(toolchain path cosign) || die "the toolchain built no cosign (above)"
  fi
  cmp -s "$src" "$COSIGN" && return 0
  t=$(now_us)
  install -D -m 0755 "$src" "$COSIGN.tmp" && mv -f "$COSIGN.tmp" "$COSIGN"
  took "installed $COSIGN ($("$COSIGN" version 2>&1 | awk '$1 == "GitVersion:" {print $2}'), from $src)" "$t"
}

# The pair is made in a directory of its own and linked into place (ln refuses to replace a file), the private key
# first: an interrupted run leaves at most the private key, whose public half the next run derives.
ensure_keys() {
  local t new key=$KEYS/cosign.key pub=$KEYS/cosign.pub
  if [[ -f $key && -f $pub ]]; then
    return 0
  elif [[ -e $pub ]]; then
    die "$pub exists without its private key $key: not making a new pair over it (move it aside to make one)"
  elif [[ -f $key ]]; then
    t=$(now_us)
    COSIGN_PASSWORD='' "$COSIGN" public-key --key "$key" --outfile "$pub.tmp" >/dev/null 2>&1 ||
      die "cannot read $key with an empty password: not making a new pair over it (move it aside to make one)"
    chmod 644 "$pub.tmp" && ln "$pub.tmp" "$pub" && rm -f "$pub.tmp"
    took "wrote $pub (the public half of $key)" "$t"
    return 0
  fi
  t=$(now_us)
  new=$(mktemp -d "$KEYS/.new.XXXXXX")
  if ! (cd "$new" && COSIGN_PASSWORD='' "$COSIGN" generate-key-pair --output-key-prefix "$new/cosign") \
    >"$new/log" 2>&1; then
    cat "$new/log" >&2 && rm -rf "$new"
    die "cosign generate-key-pair failed (above)"
  fi
  chmod 600 "$new/cosign.key" && chmod 644 "$new/cosign.pub"
  ln "$new/cosign.key" "$key" && ln "$new/cosign.pub" "$pub" && rm -rf "$new"
  took "made the local signing key pair $key (0600, empty password) and $pub" "$t"
}

up() {
  private_dir "$S" && private_dir "$KEYS"
  exec 8>"$KEYS/.lock" && flock 8
  ensure_cosign
  ensure_keys
}

status() {
  local rc=0 src state
  src=$(toolchain path cosign 2>/dev/null) || src=""
  if [[ -z $src ]]; then
    state="toolchain has none (run: scripts/pulumi-toolchain.sh install cosign)" && rc=1
  elif cmp -s "$src" "$COSIGN"; then
    state="installed (the toolchain's $src)"
  else
    state="$([[ -e $COSIGN ]] && echo differs from || echo missing, not yet copied from) $src" && rc=1
  fi
  printf '%-8s %-44s %s\n' cosign "$COSIGN" "$state"
  if [[ -f $KEYS/cosign.key && -f $KEYS/cosign.pub ]]; then state=present; else state=missing && rc=1; fi
  printf '%-8s %-44s %s\n' keys "$KEYS/cosign.{key,pub}" "$state"
  return "$rc"
}

case "${1:-}" in
  up) up ;;
  status) status ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
