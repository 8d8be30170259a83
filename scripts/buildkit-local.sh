#!/usr/bin/env bash
# A local BuildKit builder for the docker-build provider: it refuses the engine's built-in BuildKit (the "docker"
# driver), and its default builder would pull moby/buildkit from Docker Hub. buildkitd and buildctl are built from
# the Go module proxy (tools/buildkitd), run as root on the host with the OCI worker (Debian's runc, host network,
# so 127.0.0.1:5000 is the host's registry), and registered as the buildx builder devtools-local (driver remote)
# that the program names: docker_build.Image(..., builder={"name": "devtools-local"}). See --help.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/local.env disable=SC1091
source "$ROOT/scripts/local.env"
T=${DEVTOOLS_TOOLCHAIN:-/var/tmp/devtools-toolchain}
PROXY=https://proxy.golang.org
BUILDKIT_VERSION=v0.34.2 # tools/buildkitd/go.mod requires github.com/moby/buildkit at this version
GO_MIN=1.26.8            # its go directive
BUILDER=devtools-local
RUNC=/usr/sbin/runc
S=$DEVTOOLS_STATE/buildkit
SOCK=$S/buildkitd.sock
BIN=$T/buildkit-$BUILDKIT_VERSION/bin
# Where buildx (inside the provider) keeps its builders: $BUILDX_CONFIG, else $DOCKER_CONFIG/buildx, else ~/.docker/buildx
BUILDX_DIR=${BUILDX_CONFIG:-${DOCKER_CONFIG:-$HOME/.docker}/buildx}
INSTANCE=$BUILDX_DIR/instances/$BUILDER
# The build cache's bound, in GB of 10^9 bytes: buildkitd's garbage collection keeps it under this, and `prune` too
CACHE_GB=${DEVTOOLS_BUILDKIT_CACHE_GB:-10}

usage() {
  cat <<EOF
usage: scripts/buildkit-local.sh install|up|down|status|prune|--help

  install  build buildkitd and buildctl $BUILDKIT_VERSION from the Go module proxy (tools/buildkitd, Go $GO_MIN
           or newer), cached by version and wrapper hash (cold: 6 to 11 min on 2 cores)
  up       install if needed, start buildkitd as root unless it runs, and register it as the buildx
           builder '$BUILDER' (driver remote, endpoint: the socket below)
  down     stop buildkitd and remove the registration (a build then fails at once with 'no builder
           "$BUILDER" found' instead of 'context deadline exceeded' after 20 s); keeps all state
  status   one line per part; exit 0 only when all are ready
  prune    buildctl prune --keep-storage $((CACHE_GB * 1000)) (MB): the build cache down to its bound now, least
           recently used first; prints what buildctl reports freed

Build cache:   at most $CACHE_GB GB (\$DEVTOOLS_BUILDKIT_CACHE_GB, whole GB): buildkitd.toml's garbage collection
               policy for the OCI worker keeps it under that on its own (after builds), 'prune' at once

Binaries:      $BIN
State:         $S (buildkitd.toml, buildkitd.log, buildkitd.pid, root/)
Socket:        unix://$SOCK (the only listener)
Registration:  $INSTANCE (\$BUILDX_CONFIG, else \$DOCKER_CONFIG/buildx)
Pushes go over plain HTTP to $REGISTRY_ADDR (buildkitd.toml: [registry."$REGISTRY_ADDR"] http = true).
The program passes builder={"name": "$BUILDER"} to each docker-build Image.
EOF
}

now_us() { echo "${EPOCHREALTIME/./}"; }
say() { printf '==> %s\n' "$*" >&2; }
took() { local d=$(($(now_us) - $2)); say "$(printf '%s (%d.%01ds)' "$1" $((d / 1000000)) $((d / 100000 % 10)))"; }
die() { printf 'buildkit-local: error: %s\n' "$*" >&2; exit 1; }
buildctl() { "$BIN/buildctl" --addr "unix://$SOCK" "$@"; }
alive() { [[ -x $BIN/buildkitd ]] && start-stop-daemon --status --pidfile "$S/buildkitd.pid" --exec "$BIN/buildkitd"; }
ready() { alive && buildctl debug workers >/dev/null 2>&1; }
# gone: the pid file (written by the background child, so maybe not yet) names a process that has exited
gone() {
  local pid
  pid=$(cat "$S/buildkitd.pid" 2>/dev/null) && [[ -n $pid ]] || return 1
  ! kill -0 "$pid" 2>/dev/null || grep -q '^State:.*zombie' "/proc/$pid/status" 2>/dev/null
}
# install_file TMP DEST: move TMP over DEST when they differ; returns 1 when DEST was already the same
install_file() { if cmp -s "$1" "$2"; then rm -f "$1" && return 1; fi && mv -f "$1" "$2"; }

go_env() {
  command -v go >/dev/null || die "no 'go' on PATH: install Go $GO_MIN or newer"
  local v
  v=$(GOTOOLCHAIN=local go env GOVERSION) && v=${v#go}
  [[ $(printf '%s\n%s\n' "$GO_MIN" "${v%%[-+ ]*}" | sort -V | head -1) == "$GO_MIN" ]] ||
    die "go $v is older than $GO_MIN (the go directive of tools/buildkitd/go.mod)"
  export GOMODCACHE="$T/go/mod" GOCACHE="$T/go/build" GOPROXY="$PROXY" GOFLAGS="-mod=mod -buildvcs=false"
  export GOTOOLCHAIN=local GOPRIVATE="" GONOSUMDB="" GONOPROXY="" CGO_ENABLED=0
}

cmd_install() {
  local src=$ROOT/tools/buildkitd dir=$T/buildkit-$BUILDKIT_VERSION start hash
  start=$(now_us)
  grep -Eq "^[[:space:]]*github.com/moby/buildkit[[:space:]]+$BUILDKIT_VERSION([[:space:]]|$)" "$src/go.mod" ||
    die "tools/buildkitd/go.mod does not require github.com/moby/buildkit $BUILDKIT_VERSION"
  go_env
  mkdir -p "$dir" && exec 8>"$dir/.lock" && flock 8
  hash=$( (cd "$src" && sha256sum go.mod go.sum && go env GOVERSION && echo "$BUILDKIT_VERSION") | sha256sum | cut -c1-16)
  if [[ -x $BIN/buildkitd && -x $BIN/buildctl && $(cat "$dir/.stamp" 2>/dev/null) == "$hash" ]]; then
    took "buildkit $BUILDKIT_VERSION: cached in $BIN" "$start"
    return 0
  fi
  curl -fsS -m 20 -o /dev/null "$PROXY/github.com/moby/buildkit/@v/$BUILDKIT_VERSION.info" ||
    die "the Go module proxy $PROXY does not answer (needed to build buildkit)"
  if curl -fsS -m 20 -o /dev/null "$PROXY/sumdb/sum.golang.org/supported"; then export GOSUMDB=sum.golang.org
  else say "the checksum database is not reachable: GOSUMDB=off, go.sum alone verifies modules" && export GOSUMDB=off; fi
  say "buildkit $BUILDKIT_VERSION: building buildkitd and buildctl (log: $dir/build.log; cold: 6 to 11 min)"
  rm -rf "${dir:?}/src" "$BIN" "$BIN.tmp" "$dir/.stamp" && mkdir -p "$BIN.tmp" && cp -a "$src" "$dir/src"
  if ! (cd "$dir/src" && nice go build -trimpath -o "$BIN.tmp/" -ldflags "-s -w \
    -X github.com/moby/buildkit/version.Version=$BUILDKIT_VERSION \
    -X github.com/moby/buildkit/version.Package=github.com/moby/buildkit" \
    github.com/moby/buildkit/cmd/buildkitd github.com/moby/buildkit/cmd/buildctl) >"$dir/build.log" 2>&1; then
    grep -v '^go: downloading' "$dir/build.log" | tail -25 >&2
    die "buildkit $BUILDKIT_VERSION could not be built (full log: $dir/build.log)"
  fi
  mv "$BIN.tmp" "$BIN" && echo "$hash" >"$dir/.stamp"
  took "buildkit $BUILDKIT_VERSION: built $BIN/buildkitd and $BIN/buildctl" "$start"
}

cache_gb() {
  [[ $CACHE_GB =~ ^[1-9][0-9]{0,5}$ ]] ||
    die "DEVTOOLS_BUILDKIT_CACHE_GB must be a whole number of GB from 1 (the build cache's bound), not '$CACHE_GB'"
}

# The garbage collection policies replace BuildKit's defaults: its rule for easily made again data (local sources,
# cache mounts, git checkouts: over 512MB, unused for 48h), then the build cache under the bound, then, if that was
# not enough, internal records too. Disk sizes as a byte count: a "10GB" string would be read as 10 GiB.
write_config() { # prints "changed" when buildkitd.toml was (re)written
  local max=$((CACHE_GB * 1000000000))
  cat >"$S/buildkitd.toml.tmp" <<EOF
# Written by scripts/buildkit-local.sh: the local BuildKit daemon (root, OCI worker with Debian's runc).
root = "$S/root"
[grpc]
  address = ["unix://$SOCK"]
[otel]
  socketPath = "$S/otel-grpc.sock"
[worker.oci]
  enabled = true
  binary = "$RUNC"
  snapshotter = "overlayfs"
  networkMode = "host"
  gc = true
  [[worker.oci.gcpolicy]]
    filters = ["type==source.local", "type==exec.cachemount", "type==source.git.checkout"]
    keepDuration = "48h"
    maxUsedSpace = "512000000"
  [[worker.oci.gcpolicy]]
    maxUsedSpace = "$max"
  [[worker.oci.gcpolicy]]
    all = true
    maxUsedSpace = "$max"
[worker.containerd]
  enabled = false
[registry."$REGISTRY_ADDR"]
  http = true
EOF
  if install_file "$S/buildkitd.toml.tmp" "$S/buildkitd.toml"; then echo changed; fi
}

# The buildx store entry (github.com/docker/buildx store.NodeGroup as JSON): what the provider's buildx loads for
# builder={"name": "devtools-local"}. The remote driver takes no buildkitd flags or config files.
register() {
  local start
  start=$(now_us)
  mkdir -p "$BUILDX_DIR/instances"
  printf '{"Name":"%s","Driver":"remote","Nodes":[{"Name":"%s0","Endpoint":"unix://%s","Platforms":null,%s}],"Dynamic":false}\n' \
    "$BUILDER" "$BUILDER" "$SOCK" '"DriverOpts":null,"Flags":null,"Files":null' >"$BUILDX_DIR/.$BUILDER.tmp"
  if install_file "$BUILDX_DIR/.$BUILDER.tmp" "$INSTANCE"; then
    took "registered buildx builder $BUILDER (driver remote) in $INSTANCE" "$start"
  fi
}

cmd_up() {
  local start changed
  start=$(now_us)
  [[ $EUID -eq 0 ]] || die "buildkitd runs as root here (the OCI worker needs it): run as root"
  [[ -x $RUNC ]] || die "no $RUNC: apt-get install runc (scripts/local-env.sh up installs docker.io, which brings it)"
  cache_gb
  cmd_install
  mkdir -p "$S/root" && exec 9>"$S/.lock" && flock 9
  changed=$(write_config)
  if [[ -n $changed ]] && alive; then
    say "buildkitd.toml changed: restarting buildkitd"
    stop
  fi
  if ! ready; then
    alive || { rm -f "$SOCK" "$S/buildkitd.pid" && start-stop-daemon --start --quiet --background --make-pidfile \
      --pidfile "$S/buildkitd.pid" --output "$S/buildkitd.log" --exec "$BIN/buildkitd" -- \
      --config "$S/buildkitd.toml" </dev/null 8>&- 9>&-; }
    local deadline=$((SECONDS + 30))
    until ready; do
      if ((SECONDS >= deadline)) || gone; then
        tail -n 20 "$S/buildkitd.log" >&2
        die "buildkitd not ready on unix://$SOCK within 30s, or it exited (log: $S/buildkitd.log)"
      fi
      sleep 0.2
    done
    took "buildkitd $BUILDKIT_VERSION up on unix://$SOCK (log: $S/buildkitd.log)" "$start"
  fi
  register
  took "builder $BUILDER ready" "$start"
}

stop() {
  if alive; then
    start-stop-daemon --stop --quiet --retry TERM/20/KILL/5 --pidfile "$S/buildkitd.pid" --exec "$BIN/buildkitd"
    say "stopped buildkitd"
  fi
  rm -f "$S/buildkitd.pid"
}

# The build cache down to its bound now (buildkitd's own collection runs after builds). buildctl lists each record
# it removed, then "Total:"; the records go to stderr, the total to stdout.
cmd_prune() {
  local start out total records
  start=$(now_us)
  cache_gb
  mkdir -p "$S" && exec 9>"$S/.lock" && flock 9
  ready || die "buildkitd is not running on unix://$SOCK: scripts/buildkit-local.sh up"
  out=$(buildctl prune --keep-storage "$((CACHE_GB * 1000))") || die "buildctl prune failed: $out"
  total=$(awk '$1 == "Total:" {print $2}' <<<"$out")
  [[ -n $total ]] || die "buildctl prune printed no total: $out"
  records=$(grep -cvE '^(ID[[:space:]]|Total:)' <<<"$out" || true)
  grep -vE '^Total:' <<<"$out" >&2 || true
  took "buildctl prune --keep-storage $((CACHE_GB * 1000)) (MB): $records cache records removed" "$start"
  printf 'freed %s (build cache bound: %d GB)\n' "$total" "$CACHE_GB"
}

cmd_status() {
  local rc=0 v
  if [[ -x $BIN/buildkitd && -x $BIN/buildctl ]]; then
    printf '%-10s %-52s built\n' binaries "$BIN"
  else printf '%-10s %-52s missing\n' binaries "$BIN" && rc=1; fi
  if ready && v=$(buildctl debug workers -v 2>/dev/null | awk '/^BuildKit:/ {print $3}'); then
    printf '%-10s %-52s up (%s)\n' buildkitd "unix://$SOCK" "$v"
  else printf '%-10s %-52s down\n' buildkitd "unix://$SOCK" && rc=1; fi
  if grep -qF "\"Endpoint\":\"unix://$SOCK\"" "$INSTANCE" 2>/dev/null; then
    printf '%-10s %-52s registered\n' builder "$INSTANCE"
  else printf '%-10s %-52s missing\n' builder "$INSTANCE" && rc=1; fi
  return "$rc"
}

case "${1:-}" in
  install) cmd_install ;;
  up) cmd_up ;;
  down)
    mkdir -p "$S" && exec 9>"$S/.lock" && flock 9 && stop
    if [[ -f $INSTANCE ]]; then rm -f "$INSTANCE" && say "removed the registration $INSTANCE"; fi
    say "down (state and build cache kept in $S)"
    ;;
  status) cmd_status ;;
  prune) cmd_prune ;;
  -h | --help | help) usage ;;
  *) usage >&2 && exit 2 ;;
esac
