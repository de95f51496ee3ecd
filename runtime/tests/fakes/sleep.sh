#!/bin/bash
# Fake sleep for the user-data test: records the requested seconds in $FAKE_SLEEP_LOG and returns
# at once, so retry back-offs do not slow the test down.
set -euo pipefail
echo "$*" >>"${FAKE_SLEEP_LOG:?FAKE_SLEEP_LOG must be set}"
