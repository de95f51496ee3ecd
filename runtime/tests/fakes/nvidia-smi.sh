#!/bin/bash
# Fake nvidia-smi for the supervisor's tests: answers the watchdog's query with the utilisation in
# $FAKE_GPU_UTILISATION_FILE (0 when the file does not exist) and 6144 of 24576 MiB used, like
# `nvidia-smi --query-gpu=utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits`
# on a one-GPU host.
set -euo pipefail
if [[ "$*" != "--query-gpu=utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits" ]]; then
  echo "fake nvidia-smi: unexpected arguments: $*" >&2
  exit 2
fi
utilisation=0
if [[ -f "${FAKE_GPU_UTILISATION_FILE:-}" ]]; then
  utilisation=$(cat "$FAKE_GPU_UTILISATION_FILE")
fi
echo "${utilisation}, 6144, 24576"
