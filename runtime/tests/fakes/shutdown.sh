#!/bin/bash
# Fake shutdown for the supervisor's tests: records when it was asked and with what arguments,
# one line per call ("<unix time> <args>") in $FAKE_SHUTDOWN_LOG.
set -euo pipefail
echo "$(date +%s.%N) $*" >>"${FAKE_SHUTDOWN_LOG:?FAKE_SHUTDOWN_LOG must be set}"
