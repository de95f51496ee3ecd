#!/bin/bash
# Fake nvidia-smi for the supervisor's tests: answers the utilisation query with the number in
# $FAKE_GPU_UTILISATION_FILE (0 when the file does not exist), like
# `nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits` on a one-GPU host.
set -euo pipefail
if [[ "$*" != "--query-gpu=utilization.gpu --format=csv,noheader,nounits" ]]; then
  echo "fake nvidia-smi: unexpected arguments: $*" >&2
  exit 2
fi
if [[ -f "${FAKE_GPU_UTILISATION_FILE:-}" ]]; then
  cat "$FAKE_GPU_UTILISATION_FILE"
else
  echo 0
fi
