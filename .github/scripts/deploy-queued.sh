#!/usr/bin/env bash
# Usage: deploy-queued.sh WORKFLOW... Writes waiting=true|false to $GITHUB_OUTPUT: true while a run of one of the
# named workflows waits to start in this repository (queued, pending in its concurrency group, waiting for a
# reviewer, requested). A job about to join the deploy group asks first: GitHub keeps one pending run per group and
# cancels the older pending one, which would be that deploy or rollback. Needs GH_TOKEN with `actions: read`.
set -euo pipefail
(($# > 0)) || { echo "usage: deploy-queued.sh WORKFLOW..." >&2; exit 2; }
waiting=0
for workflow in "$@"; do
  for status in queued pending waiting requested; do
    n=$(gh run list --repo "${GITHUB_REPOSITORY:?}" --workflow "$workflow" --status "$status" --json databaseId \
      --jq length)
    waiting=$((waiting + n))
  done
done
if ((waiting > 0)); then
  echo "waiting=true" >>"${GITHUB_OUTPUT:?}"
  echo "::notice::$waiting run(s) of $* wait to start: no backup now (joining their group would cancel one of" \
    "them); the next scheduled run backs up"
else
  echo "waiting=false" >>"${GITHUB_OUTPUT:?}"
fi
