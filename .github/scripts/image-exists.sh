#!/usr/bin/env bash
# Prints whether <repository>:<tag> is in ECR: `true` or `false`. Any other answer (access denied,
# no such repository, throttling) is an error, never "absent": the workflow must not try to push
# an immutable tag that exists, nor skip a build it could not check.
#   .github/scripts/image-exists.sh <repository name> <tag>
set -euo pipefail
repository=$1
tag=$2
if output=$(aws ecr describe-images --repository-name "$repository" \
  --image-ids "imageTag=$tag" --output text --query 'imageDetails[0].imageDigest' 2>&1); then
  echo true
elif grep -q 'ImageNotFoundException' <<<"$output"; then
  echo false
else
  echo "describe-images of $repository:$tag failed: $output" >&2
  exit 1
fi
