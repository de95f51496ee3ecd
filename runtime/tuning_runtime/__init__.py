"""tuning-lab's host supervisor: runs one training run on one EC2 instance, from boot to terminate.

    python3 -m tuning_runtime run      # started by systemd (systemd/tuning-supervisor.service)

Standard library only: it runs on the Deep Learning AMI's system python3 (3.7 or newer) and
reaches AWS through the AWS CLI (tuning_runtime.aws). Modules: settings (the run settings the
stack writes), imds (identity, spot notices), ledger, messages (SNS), launchers (docker or a
local trainer process), watchdog (idleness), host (group capacity, shutdown, tmux), supervisor.
"""
