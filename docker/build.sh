#!/usr/bin/env bash
# Builds thinnka's pod image for one trainer stack and tags it with that stack's versions.
#   docker/build.sh [trl|openr1]        (default trl)
#   IMAGE=me/thinnka docker/build.sh    (default reeeon/thinnka, the --use-thinnka-image repo)
#   PUSH=1 docker/build.sh              also push both tags
# Tags: <repo>:<stack> (what --use-thinnka-image uses) and
#       <repo>:<stack>-trl<trl version>-transformers<transformers version> (immutable).
set -euo pipefail
stack="${1:-trl}"
case "$stack" in trl|openr1) ;; *) echo "usage: $0 [trl|openr1]" >&2; exit 2 ;; esac
root="$(cd "$(dirname "$0")/.." && pwd)"
env_file="$root/docker/stacks/${stack}.env"
# The versions come from the generated stack file, so the tag says what the image holds.
trl="$(set -a; . "$env_file"; printf '%s' "$EXPECT_TRL")"
transformers="$(set -a; . "$env_file"; printf '%s' "${TRANSFORMERS_SPEC#transformers==}")"
repo="${IMAGE:-reeeon/thinnka}"
tags=("$repo:$stack" "$repo:$stack-trl$trl-transformers$transformers")
docker build "$root" -f "$root/docker/Dockerfile" --build-arg "STACK=$stack" \
  ${BASE_IMAGE:+--build-arg "BASE_IMAGE=$BASE_IMAGE"} \
  "${tags[@]/#/--tag=}"
if [ "${PUSH:-0}" = "1" ]; then
  for tag in "${tags[@]}"; do docker push "$tag"; done
fi
printf 'built %s\n' "${tags[@]}"
