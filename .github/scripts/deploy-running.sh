#!/usr/bin/env bash
# Usage: deploy-running.sh WORKFLOW... Writes running=true|false to $GITHUB_OUTPUT: true while a run of one of the
# named workflows is in progress in this repository. Drift has its own concurrency group (so it can never cancel a
# pending deploy or rollback) and uses this to check nothing while a rollout is changing the hosts. Needs GH_TOKEN
# with `actions: read`.
set -euo pipefail
(($# > 0)) || { echo "usage: deploy-running.sh WORKFLOW..." >&2; exit 2; }
running=0
for workflow in "$@"; do
  n=$(gh run list --repo "${GITHUB_REPOSITORY:?}" --workflow "$workflow" --status in_progress --json databaseId \
    --jq length)
  running=$((running + n))
done
if ((running > 0)); then
  echo "running=true" >>"${GITHUB_OUTPUT:?}"
  echo "::notice::$running run(s) of $* in progress: drift checks nothing now (the next scheduled run does)"
else
  echo "running=false" >>"${GITHUB_OUTPUT:?}"
fi
