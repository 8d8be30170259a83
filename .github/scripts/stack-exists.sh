#!/usr/bin/env bash
# Usage: stack-exists.sh STACK. Logs in to $PULUMI_BACKEND_URL (Pulumi Cloud when empty) and writes
# exists=true|false to $GITHUB_OUTPUT, so a job can skip a stack that was never created (blue before its first up).
set -euo pipefail
stack=${1:?usage: stack-exists.sh STACK}
if [[ -n ${PULUMI_BACKEND_URL:-} ]]; then
  pulumi login "$PULUMI_BACKEND_URL" >/dev/null
else
  pulumi login >/dev/null
fi
names=$(pulumi stack ls --json | python3 -c 'import json, sys; print("\n".join(s["name"].split("/")[-1] for s in json.load(sys.stdin)))')
if grep -qxF -- "$stack" <<<"$names"; then
  echo "exists=true" >>"${GITHUB_OUTPUT:?}"
else
  echo "exists=false" >>"${GITHUB_OUTPUT:?}"
  echo "::notice::stack $stack does not exist yet: skipped"
fi
