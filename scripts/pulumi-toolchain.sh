#!/usr/bin/env bash
# Builds the Pulumi toolchain this project needs from the Go module proxy alone (no download site, no prebuilt
# binary) and installs it so that the Pulumi CLI finds everything without downloading: the CLI, a Python language
# host, the resource providers of the pinned Python SDKs that the proxy serves, and our own build of the subset of
# the command provider that the program uses (the proxy does not serve upstream's); and cosign, which signs the
# images and verifies their signatures (the release the droplets' cloud-init installs). Each binary is built from
# its wrapper module under tools/<name>/ and cached by version under $DEVTOOLS_TOOLCHAIN/<name>-<version>/; a
# second run only checks the caches. See --help.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/local.env disable=SC1091
source "$ROOT/scripts/local.env"
T=${DEVTOOLS_TOOLCHAIN:-/var/tmp/devtools-toolchain}
PROXY=https://proxy.golang.org
GO_MIN=1.26.6 # the go directive of tools/*/go.mod

# The versions. PULUMI_VERSION is the CLI's and the language host's; the Python SDK pin must match it
# (requirements.txt: pulumi==$PULUMI_VERSION). Provider versions are those of the Python SDK pins.
PULUMI_VERSION=3.260.0
DOCKER_BUILD_VERSION=0.0.22
COMMAND_VERSION=1.2.1
DIGITALOCEAN_VERSION=4.84.1
# cosign: the release components/cloud_init.py installs on the droplets (agent.signing.COSIGN runs it there)
COSIGN_VERSION=3.1.3

# name|version|main package (. = the wrapper's own main.go)|-X linker flag|module that go.mod must require at
# the version ("" when the version is not a module's)
COMPONENTS=(
  "pulumi|$PULUMI_VERSION|github.com/pulumi/pulumi/pkg/v3/cmd/pulumi|github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION|github.com/pulumi/pulumi/pkg/v3 v$PULUMI_VERSION"
  "pulumi-language-python|$PULUMI_VERSION|.|main.version=$PULUMI_VERSION|github.com/pulumi/pulumi/sdk/v3 v$PULUMI_VERSION"
  "pulumi-resource-docker-build|$DOCKER_BUILD_VERSION|github.com/pulumi/pulumi-docker-build/provider/cmd/pulumi-resource-docker-build|github.com/pulumi/pulumi-docker-build/provider.Version=$DOCKER_BUILD_VERSION|github.com/pulumi/pulumi-docker-build v$DOCKER_BUILD_VERSION"
  "pulumi-resource-command|$COMMAND_VERSION|.|main.version=$COMMAND_VERSION|"
  "cosign|$COSIGN_VERSION|github.com/sigstore/cosign/v3/cmd/cosign|sigs.k8s.io/release-utils/version.gitVersion=v$COSIGN_VERSION|github.com/sigstore/cosign/v3 v$COSIGN_VERSION"
)
# Commands of their own, linked from $T/bin (on PATH after `env`) and needing no Pulumi CLI: name|version
COMMANDS=("cosign|$COSIGN_VERSION")
# The plugins that install registers: component|plugin name|version
PLUGINS=("pulumi-resource-docker-build|docker-build|$DOCKER_BUILD_VERSION" "pulumi-resource-command|command|$COMMAND_VERSION")
# Providers of the pinned Python SDKs that cannot be built from the module proxy, with why (checked again, live,
# by `install NAME`).
declare -A UNAVAILABLE=(
  [pulumi-resource-digitalocean]="the module github.com/pulumi/pulumi-digitalocean/provider/v4 answers 403 (v$DIGITALOCEAN_VERSION, v4.76.0, the version list), and so does github.com/digitalocean/terraform-provider-digitalocean, which it replaces with a local path (../upstream, a patched git submodule) and which a dependency build would need at its required v0.0.0"
)
declare -A PROBES=(
  [pulumi-resource-digitalocean]="github.com/pulumi/pulumi-digitalocean/provider/v4/@v/v$DIGITALOCEAN_VERSION.info github.com/pulumi/pulumi-digitalocean/provider/v4/@v/list github.com/digitalocean/terraform-provider-digitalocean/@v/list"
)

usage() {
  cat <<EOF
usage: scripts/pulumi-toolchain.sh [install [NAME...] | env | status | path NAME | clean NAME... | --help]

  install   build what is missing and install it (default; NAMEs: pulumi, pulumi-language-python,
            pulumi-resource-docker-build, pulumi-resource-command, cosign, or 'all', which adds the providers that
            cannot be built here and so exits non-zero; 'install cosign' builds cosign alone, without the CLI).
            Prints each step and how long it took; a second run changes nothing.
  env       print the export lines for a shell: eval "\$(scripts/pulumi-toolchain.sh env)"
            (also written to $T/env.sh by install)
  status    what is built and installed; exit 1 when a buildable part is missing, not linked or not registered
  path      print where NAME is installed: $T/bin/NAME for pulumi, pulumi-language-python and cosign (the
            commands on PATH after env), the build itself for a provider; exit 1 naming the install command to
            run when it is not installed
  clean     delete the cached build of NAME and its links in $T/bin (the next install builds it cold)

What is built (Go $GO_MIN or newer, from $PROXY only):
  pulumi                        v$PULUMI_VERSION, the upstream CLI main package (tools/pulumi)
  pulumi-language-python        v$PULUMI_VERSION, our own small language host (tools/pulumi-language-python/main.go
                                says why), with the SDK's pulumi-language-python-exec and
                                pulumi-resource-pulumi-python shims from the sdk/v3 module
  pulumi-resource-docker-build  v$DOCKER_BUILD_VERSION, the upstream provider (tools/pulumi-resource-docker-build)
  pulumi-resource-command       v$COMMAND_VERSION, the project's OWN build of the subset of the command provider's
                                schema that the program uses (tools/pulumi-resource-command/main.go: upstream's
                                provider module is not served; prod CI uses the upstream plugin)
  cosign                        v$COSIGN_VERSION, the upstream CLI main package (tools/cosign): signs the images and
                                verifies their signatures; the droplets' cloud-init installs the same release
Not buildable here: pulumi-resource-digitalocean v$DIGITALOCEAN_VERSION (install NAME says why).

Where: DEVTOOLS_TOOLCHAIN=$T (cache: <name>-<version>/, Go's module and build caches in go/, the
command links in bin/); providers are registered with 'pulumi plugin install --file' in \$PULUMI_HOME
(${PULUMI_HOME:-~/.pulumi}). The env lines point PULUMI_BACKEND_URL at file://$DEVTOOLS_STATE/pulumi-state, set a
local-only PULUMI_CONFIG_PASSPHRASE default and turn off update checks and plugin downloads.
EOF
}

now_us() { echo "${EPOCHREALTIME/./}"; }
say() { printf '==> %s\n' "$*"; }
took() { local d=$(($(now_us) - $2)); printf '==> %s (%d.%01ds)\n' "$1" $((d / 1000000)) $((d / 100000 % 10)); }
die() { printf 'pulumi-toolchain: error: %s\n' "$*" >&2; exit 1; }

go_env() {
  export GOMODCACHE="$T/go/mod" GOCACHE="$T/go/build" GOPROXY="$PROXY" GOFLAGS="-mod=mod -buildvcs=false"
  export GOTOOLCHAIN=local GOPRIVATE="" GONOSUMDB="" GONOPROXY="" CGO_ENABLED=0
}

check_go() {
  command -v go >/dev/null || die "no 'go' on PATH: install Go $GO_MIN or newer"
  local v
  v=$(go env GOVERSION) || die "'go env GOVERSION' failed"
  v=${v#go}
  [[ $(printf '%s\n%s\n' "$GO_MIN" "${v%%[-+ ]*}" | sort -V | head -1) == "$GO_MIN" ]] ||
    die "go $v is older than $GO_MIN (the go directive of tools/*/go.mod)"
}

# Once per run that builds: can we reach the proxy, and its checksum database? go.sum in tools/<name> already
# pins every module; the checksum database is only asked about modules that go.sum lacks.
SUMDB_CHECKED=""
check_network() {
  [[ -n $SUMDB_CHECKED ]] && return 0
  SUMDB_CHECKED=1
  curl -fsS -m 20 -o /dev/null "$PROXY/github.com/pulumi/pulumi/sdk/v3/@v/v$PULUMI_VERSION.info" ||
    die "the Go module proxy $PROXY does not answer (needed to build; a warm cache needs no network)"
  if curl -fsS -m 20 -o /dev/null "$PROXY/sumdb/sum.golang.org/supported"; then
    export GOSUMDB=sum.golang.org # reached through the proxy
  else
    say "the checksum database is not reachable through $PROXY: GOSUMDB=off, go.sum alone verifies modules"
    export GOSUMDB=off
  fi
}

# tree_hash DIR: a hash of the wrapper module's files, the Go version and this script's component line
tree_hash() {
  (cd "$1" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 | LC_ALL=C sort -z |
    xargs -0 sha256sum; go env GOVERSION; echo "$2") | sha256sum | cut -c1-16
}

# build NAME VERSION PKG XFLAG REQUIRE: build tools/NAME into $T/NAME-VERSION/bin/NAME unless cached
build() {
  local name=$1 version=$2 pkg=$3 xflag=$4 require=$5 src="$ROOT/tools/$1" dir="$T/$1-$2" start hash
  start=$(now_us)
  [[ -f $src/go.mod ]] || die "missing $src/go.mod"
  if [[ -n $require ]] && ! grep -Eq "^[[:space:]]*(require[[:space:]]+)?${require// /[[:space:]]+}([[:space:]]|$)" \
    "$src/go.mod"; then
    die "tools/$name/go.mod does not require $require (update the version in this script or in go.mod)"
  fi
  hash=$(tree_hash "$src" "$name|$version|$pkg|$xflag")
  if [[ -x $dir/bin/$name && $(cat "$dir/.stamp" 2>/dev/null) == "$hash" ]]; then
    took "$name $version: cached in $dir" "$start"
    return 0
  fi
  check_network
  say "$name $version: building (log: $dir/build.log; cold Go caches: minutes)"
  rm -rf "${dir:?}/src" "${dir:?}/bin" "${dir:?}/.stamp"
  mkdir -p "$dir/bin"
  # Build from a copy: with -mod=mod, go may add missing go.sum lines, and the work tree stays untouched.
  cp -a "$src" "$dir/src"
  if ! (cd "$dir/src" && go build -trimpath -o "$dir/bin/$name.tmp" -ldflags "-s -w -X $xflag" "$pkg") \
    >"$dir/build.log" 2>&1; then
    grep -v '^go: downloading' "$dir/build.log" | tail -25 >&2
    die "$name $version could not be built (full log: $dir/build.log)"
  fi
  mv -f "$dir/bin/$name.tmp" "$dir/bin/$name"
  if ! cmp -s "$src/go.sum" "$dir/src/go.sum" || ! cmp -s "$src/go.mod" "$dir/src/go.mod"; then
    say "note: tools/$name/go.mod or go.sum is not tidy (go added lines); run 'go mod tidy' there and commit"
  fi
  echo "$hash" >"$dir/.stamp"
  took "$name $version: built $dir/bin/$name" "$start"
}

# The SDK's Python shims, from the sdk/v3 module the language host was built against
install_python_shims() {
  local start dir="$T/pulumi-language-python-$PULUMI_VERSION" sdk
  start=$(now_us)
  sdk="$GOMODCACHE/github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION"
  if [[ ! -d $sdk/python ]]; then
    check_network
    (cd "$ROOT/tools/pulumi-language-python" && go mod download "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION") ||
      die "could not download github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION"
  fi
  local f
  for f in cmd/pulumi-language-python-exec dist/pulumi-resource-pulumi-python; do
    [[ -f $sdk/python/$f ]] || die "sdk/v3@v$PULUMI_VERSION has no python/$f"
    cmp -s "$sdk/python/$f" "$dir/bin/${f#*/}" || install -m 0755 "$sdk/python/$f" "$dir/bin/${f#*/}"
  done
  took "Python shims (pulumi-language-python-exec, pulumi-resource-pulumi-python) beside the language host" "$start"
}

# The CLI's directory gets copies of the language host and the Python shims: the CLI looks for its language
# hosts beside its own (resolved) path and warns when the one on PATH is elsewhere; the language host looks for
# the exec shim beside itself. $T/bin links to that directory's commands and is what goes on PATH.
assemble() {
  local start dir="$T/pulumi-$PULUMI_VERSION/bin" lang="$T/pulumi-language-python-$PULUMI_VERSION/bin" f
  start=$(now_us)
  mkdir -p "$T/bin"
  for f in pulumi-language-python pulumi-language-python-exec pulumi-resource-pulumi-python; do
    [[ -x $lang/$f ]] || continue
    cmp -s "$lang/$f" "$dir/$f" || install -m 0755 "$lang/$f" "$dir/$f"
  done
  for f in "$dir"/*; do
    [[ $(readlink "$T/bin/${f##*/}" 2>/dev/null) == "$f" ]] || ln -sfn "$f" "$T/bin/${f##*/}"
  done
  took "commands in $dir, linked from $T/bin" "$start"
}

# link_command NAME VERSION: $T/bin/NAME -> NAME's build (a command of its own, on PATH after `env`)
link_command() {
  local start bin="$T/$1-$2/bin/$1"
  start=$(now_us)
  mkdir -p "$T/bin"
  [[ $(readlink "$T/bin/$1" 2>/dev/null) == "$bin" ]] || ln -sfn "$bin" "$T/bin/$1"
  took "$1 $2: linked as $T/bin/$1" "$start"
}

# linked NAME: the build that $T/bin/NAME must link to ("" for a provider, which is registered, not linked)
linked() {
  local c name version
  for c in "${COMMANDS[@]}"; do
    IFS='|' read -r name version <<<"$c"
    [[ $name != "$1" ]] || { echo "$T/$name-$version/bin/$name" && return 0; }
  done
  case $1 in pulumi | pulumi-language-python) echo "$T/pulumi-$PULUMI_VERSION/bin/$1" ;; esac
}
# is_command NAME: NAME is one of COMMANDS
is_command() { [[ " ${COMMANDS[*]%%|*} " == *" $1 "* ]]; }

# register_plugin NAME VERSION BINARY: pulumi plugin install --file, unless the same binary is installed
register_plugin() {
  local name=$1 version=$2 bin=$3 start home
  start=$(now_us)
  home=${PULUMI_HOME:-$HOME/.pulumi}
  if cmp -s "$bin" "$home/plugins/resource-$name-v$version/pulumi-resource-$name"; then
    took "plugin resource $name $version: already installed in $home/plugins" "$start"
    return 0
  fi
  "$T/bin/pulumi" plugin install resource "$name" "$version" --file "$bin" --reinstall >/dev/null ||
    die "pulumi plugin install resource $name $version --file $bin failed"
  took "plugin resource $name $version: installed in $home/plugins" "$start"
}

env_lines() {
  cat <<EOF
# The Pulumi toolchain built by scripts/pulumi-toolchain.sh; local use only.
export DEVTOOLS_TOOLCHAIN=$T
export PATH="$T/bin:\$PATH"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
# metadata=skip: no .attrs sidecar per state file. The sidecar is rewritten in place (truncate, then write), so a
# stack reading its own outputs while the engine saves them could read it empty ("failed to load checkpoint: EOF").
export PULUMI_BACKEND_URL="\${PULUMI_BACKEND_URL:-file://$DEVTOOLS_STATE/pulumi-state?metadata=skip}"
# A passphrase for stacks in the local file backend only (the local stack's secrets); set your own for others.
export PULUMI_CONFIG_PASSPHRASE="\${PULUMI_CONFIG_PASSPHRASE-devtools-local-only}"
EOF
}

# unavailable NAME: check again, live, and say why NAME cannot be built
unavailable() {
  local name=$1 start path code
  start=$(now_us)
  say "$name: not buildable from the Go module proxy"
  for path in ${PROBES[$name]}; do
    code=$(curl -s -m 20 -o /dev/null -w '%{http_code}' "$PROXY/$path" || true)
    printf '    %s/%s -> %s\n' "$PROXY" "$path" "$code"
  done
  printf '    why: %s\n' "${UNAVAILABLE[$name]}"
  took "$name: not installed" "$start"
}

cmd_install() {
  local want=("$@") c name version pkg xflag require plugin missing=() total alone=1 built=() what
  local buildable=(pulumi pulumi-language-python pulumi-resource-docker-build pulumi-resource-command cosign)
  total=$(now_us)
  [[ ${#want[@]} -gt 0 ]] || want=("${buildable[@]}")
  [[ ${want[0]} != all ]] || want=("${buildable[@]}" "${!UNAVAILABLE[@]}")
  for name in "${want[@]}"; do
    [[ -n ${UNAVAILABLE[$name]:-} ]] && continue
    printf '%s\n' "${COMPONENTS[@]}" | grep -q "^$name|" || die "unknown component: $name (see --help)"
  done
  # $T is under world-writable /var/tmp: ours, and readable by us only (no other user plants a binary we run)
  mkdir -p "$T"
  [[ -O $T && ! -L $T ]] || die "$T exists but is not a directory owned by $(id -un): not using it"
  chmod 700 "$T"
  check_go
  go_env
  mkdir -p "$DEVTOOLS_STATE/pulumi-state"
  exec 9>"$T/.lock"
  flock 9
  # The language host and the plugin registration need the CLI; the commands of their own (cosign) do not.
  for name in "${want[@]}"; do is_command "$name" || alone=""; done
  [[ -n $alone || " ${want[*]} " == *" pulumi "* ]] || want=(pulumi "${want[@]}")
  for c in "${COMPONENTS[@]}"; do
    IFS='|' read -r name version pkg xflag require <<<"$c"
    [[ " ${want[*]} " == *" $name "* ]] || continue
    build "$name" "$version" "$pkg" "$xflag" "$require"
    [[ $name != pulumi-language-python ]] || install_python_shims
  done
  [[ " ${want[*]} " != *" pulumi "* ]] || assemble
  for c in "${COMMANDS[@]}"; do
    IFS='|' read -r name version <<<"$c"
    [[ " ${want[*]} " != *" $name "* ]] || link_command "$name" "$version"
  done
  for c in "${PLUGINS[@]}"; do
    IFS='|' read -r name plugin version <<<"$c"
    [[ " ${want[*]} " != *" $name "* ]] || register_plugin "$plugin" "$version" "$T/$name-$version/bin/$name"
  done
  env_lines >"$T/env.sh.tmp" && mv -f "$T/env.sh.tmp" "$T/env.sh"
  for name in "${want[@]}"; do
    [[ -z ${UNAVAILABLE[$name]:-} ]] || { unavailable "$name"; missing+=("$name"); }
  done
  [[ " ${want[*]} " != *" pulumi "* ]] || built+=("pulumi $("$T/bin/pulumi" version)")
  [[ " ${want[*]} " != *" cosign "* ]] || built+=("cosign v$COSIGN_VERSION")
  what=$(printf '%s, ' "${built[@]}")
  took "toolchain in $T (${what%, }); env: source $T/env.sh" "$total"
  if [[ ${#missing[@]} -gt 0 ]]; then
    die "could not build: ${missing[*]} (see above)"
  fi
  [[ " ${want[*]} " != *" pulumi-resource-command "* ]] ||
    say "note: pulumi-resource-command $COMMAND_VERSION is the project's own build of the subset of the command provider that the program uses (tools/pulumi-resource-command), not upstream's"
  [[ -n $alone || " ${want[*]} " == *" pulumi-resource-digitalocean "* ]] ||
    say "note: pulumi-resource-digitalocean $DIGITALOCEAN_VERSION cannot be built here ('install all' says why)"
}

cmd_status() {
  local c name version rest plugin home=${PULUMI_HOME:-$HOME/.pulumi} absent=0
  for c in "${COMPONENTS[@]}"; do
    IFS='|' read -r name version rest <<<"$c"
    if is_command "$name" && [[ -x $T/$name-$version/bin/$name && $(readlink "$T/bin/$name") != "$(linked "$name")" ]]
    then
      printf '%-30s %-8s built   %s, not linked from %s/bin (run: install %s)\n' "$name" "$version" \
        "$T/$name-$version/bin/$name" "$T" "$name" && absent=1
    elif [[ -x $T/$name-$version/bin/$name ]]; then
      printf '%-30s %-8s built   %s%s\n' "$name" "$version" "$T/$name-$version/bin/$name" \
        "$([[ $name != pulumi-resource-command ]] || echo ' (own build of the subset the program uses)')"
    else
      printf '%-30s %-8s missing\n' "$name" "$version" && absent=1
    fi
  done
  for c in "${PLUGINS[@]}"; do
    IFS='|' read -r name plugin version <<<"$c"
    if ! cmp -s "$T/$name-$version/bin/$name" "$home/plugins/resource-$plugin-v$version/pulumi-resource-$plugin"; then
      printf '%-30s %-8s not registered in %s/plugins\n' "plugin $plugin" "$version" "$home" && absent=1
    fi
  done
  for name in "${!UNAVAILABLE[@]}"; do printf '%-30s %-8s not buildable here\n' "$name" "-"; done
  if [[ -x $T/bin/pulumi ]]; then
    PATH="$T/bin:$PATH" PULUMI_SKIP_UPDATE_CHECK=true pulumi plugin ls 2>/dev/null | sed 's/^/    /' || true
  fi
  printf 'plugins in %s/plugins; env: %s/env.sh\n' "$home" "$T"
  return "$absent"
}

cmd_clean() {
  [[ $# -gt 0 ]] || die "clean needs a component name (see --help)"
  local name c version rest f
  for name in "$@"; do
    for c in "${COMPONENTS[@]}"; do
      IFS='|' read -r version rest <<<"${c#"$name|"}"
      if [[ $c == "$name|"* ]]; then
        rm -rf "${T:?}/$name-$version"
        for f in "$T"/bin/*; do # links into what was removed would dangle on PATH
          [[ $(readlink "$f" 2>/dev/null) != "$T/$name-$version/"* ]] || rm -f "$f"
        done
        say "removed $T/$name-$version"
      fi
    done
  done
}

# path NAME: where NAME is installed (see --help)
cmd_path() {
  [[ $# -eq 1 ]] || { usage >&2; exit 2; }
  local c name version rest bin link
  for c in "${COMPONENTS[@]}"; do
    IFS='|' read -r name version rest <<<"$c"
    [[ $name == "$1" ]] || continue
    bin=$T/$name-$version/bin/$name
    link=$(linked "$name")
    if [[ -z $link && -x $bin ]]; then
      echo "$bin" && return 0
    elif [[ -n $link && -x $T/bin/$name && $(readlink "$T/bin/$name") == "$link" ]]; then
      echo "$T/bin/$name" && return 0
    fi
    die "$name $version is not installed: run scripts/pulumi-toolchain.sh install $name"
  done
  printf 'pulumi-toolchain: error: unknown component: %s (see --help)\n' "$1" >&2
  exit 2
}

case ${1:-install} in
  -h | --help | help) usage ;;
  install) shift $(($# > 0 ? 1 : 0)); cmd_install "$@" ;;
  env) env_lines ;;
  status) cmd_status ;;
  path) shift; cmd_path "$@" ;;
  clean) shift; cmd_clean "$@" ;;
  *) usage >&2; exit 2 ;;
esac
