#!/bin/bash
# Fake tmux for the supervisor's tests: records each call's arguments in $FAKE_TMUX_LOG.
set -euo pipefail
echo "$*" >>"${FAKE_TMUX_LOG:?FAKE_TMUX_LOG must be set}"
