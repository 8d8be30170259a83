#!/usr/bin/env bash
# Usage: commit-stack-file.sh FILE MESSAGE. Commits FILE when `pulumi config set` changed it and pushes it to the
# branch the workflow runs on, so the next deploy keeps the change. No change: nothing to do.
set -euo pipefail
file=${1:?usage: commit-stack-file.sh FILE MESSAGE}
message=${2:?usage: commit-stack-file.sh FILE MESSAGE}
if git diff --quiet -- "$file"; then
  echo "$file unchanged: nothing to commit"
  exit 0
fi
git config user.name "github-actions[bot]"
git config user.email "41898282+github-actions[bot]@users.noreply.github.com"
git commit --quiet -m "$message" -- "$file"
if ! git push --quiet origin "HEAD:${GITHUB_REF_NAME:?}"; then
  echo "::error::the change is live but $file could not be pushed to ${GITHUB_REF_NAME}: commit it by hand" \
    "(git diff below), or the next deploy from ${GITHUB_REF_NAME} reverts it"
  git show --stat HEAD
  exit 1
fi
echo "committed and pushed $file: $message"
