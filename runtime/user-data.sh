#!/bin/bash
# PLACEHOLDER user-data until the instance runtime (issue 4) lands: it only records that the
# instance booted and then terminates it, so a deployed placeholder can never burn a GPU.
# The stack renders this template at synth, replacing these markers:
#   {{RUN_SETTINGS_PARAMETER}}  SSM parameter holding the run settings (docs/contracts.md section 1)
#   {{REGION}}                  the stack's region
#   {{RUNTIME_ARCHIVE_URI}}     s3:// URI of a zip of runtime/ (without tests), readable by the instance
#   {{STACK_NAME}}              the stack name
set -euo pipefail
exec >>/var/log/training-setup.log 2>&1
echo "$(date -Is) placeholder user-data: stack {{STACK_NAME}}, settings {{RUN_SETTINGS_PARAMETER}} in {{REGION}}, runtime {{RUNTIME_ARCHIVE_URI}}"
echo "$(date -Is) the instance runtime has not landed yet; shutting down (shutdown behaviour: terminate)"
shutdown -h now
