#!/bin/bash
# Fake systemctl for the user-data test: records each call's arguments in $FAKE_SYSTEMCTL_LOG.
set -euo pipefail
echo "$*" >>"${FAKE_SYSTEMCTL_LOG:?FAKE_SYSTEMCTL_LOG must be set}"
