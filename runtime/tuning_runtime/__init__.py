"""tuning-lab's host supervisor: runs one training run on one EC2 instance, from boot to terminate.

    python3 -m tuning_runtime run      # started by systemd (systemd/tuning-supervisor.service)

Standard library only: it runs on the Deep Learning AMI's system python3 (3.10; the code keeps
to 3.7 and newer) and reaches AWS through the AWS CLI the AMI ships (tuning_runtime.aws).
Modules: settings (the run settings the stack writes), imds (identity, spot notices), lease (one
instance per run), images (the run's image by digest), credentials (the trainer's own role),
ledger, messages (SNS), launchers (docker or a local trainer process), watchdog (idleness), host
(group capacity, shutdown, tmux), supervisor.
"""
