#!/bin/bash
# Fake docker client for the launcher's tests: records every call in $FAKE_DOCKER_LOG (one line of
# arguments; `login` also records its stdin), fails `pull` the first $FAKE_DOCKER_PULL_FAILURES
# times, answers `image inspect` with the user $FAKE_DOCKER_IMAGE_USER, and answers `run` with a
# line of output and the exit code $FAKE_DOCKER_RUN_EXIT.
set -euo pipefail
log=${FAKE_DOCKER_LOG:?FAKE_DOCKER_LOG must be set}
echo "$*" >>"$log"
case "$1" in
  login)
    echo "password-stdin: $(cat)" >>"$log"
    ;;
  pull)
    count_file="$log.pulls"
    pulls=$(($(cat "$count_file" 2>/dev/null || echo 0) + 1))
    echo "$pulls" >"$count_file"
    if ((pulls <= ${FAKE_DOCKER_PULL_FAILURES:-0})); then
      echo "Error response from daemon: toomanyrequests: rate limited (pull $pulls)" >&2
      exit 1
    fi
    ;;
  image)
    echo "${FAKE_DOCKER_IMAGE_USER:-}"
    ;;
  run)
    echo "fake container ran"
    exit "${FAKE_DOCKER_RUN_EXIT:-0}"
    ;;
esac
