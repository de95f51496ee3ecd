"""What the supervisor does to the instance and its Auto Scaling group: capacity, shutdown, tmux.

The shutdown command is a seam (``shutdown -h now`` on EC2; a recording fake in tests). The
launch template's shutdown behaviour is ``terminate``, so shutting down ends the billing.
"""

from __future__ import annotations

import logging
import shlex
import subprocess

from .aws import AwsError

log = logging.getLogger(__name__)

SHUTDOWN_COMMAND = ("shutdown", "-h", "now")
TMUX_SESSION = "training"


class Group:
    """This instance's Auto Scaling group, found with DescribeAutoScalingInstances."""

    def __init__(self, aws: object, instance_id: str) -> None:
        self.aws = aws
        self.instance_id = instance_id
        self.name: str | None = None

    def find(self) -> str | None:
        found = self.aws.call(
            "autoscaling", "DescribeAutoScalingInstances", {"InstanceIds": [self.instance_id]}
        ).get("AutoScalingInstances", [])
        self.name = found[0]["AutoScalingGroupName"] if found else None
        return self.name

    def set_capacity_to_zero(self) -> bool:
        """No replacement after this instance ends. False when the instance has no group.
        (The stack's group has a minimum of 0; SetDesiredCapacity is all the role may do.)"""
        if not self.name:
            return False
        self.aws.call(
            "autoscaling",
            "SetDesiredCapacity",
            {"AutoScalingGroupName": self.name, "DesiredCapacity": 0, "HonorCooldown": False},
        )
        return True

    def release_for_debug_hold(self) -> bool:
        """Capacity 0 while this instance stays up: detach it from its group (desired count
        decremented), so the group neither replaces it nor terminates it during the hold."""
        if not self.name:
            return False
        self.aws.call(
            "autoscaling",
            "DetachInstances",
            {
                "AutoScalingGroupName": self.name,
                "InstanceIds": [self.instance_id],
                "ShouldDecrementDesiredCapacity": True,
            },
        )
        return True


class Host:
    def __init__(self, shutdown_command: tuple = SHUTDOWN_COMMAND, tmux: str | None = "tmux"):
        self.shutdown_command = list(shutdown_command)
        self.tmux = tmux

    def shutdown(self) -> None:
        log.info("requesting shutdown: %s", " ".join(self.shutdown_command))
        subprocess.run(self.shutdown_command, check=False, timeout=60)

    def follow_in_tmux(self, log_path: str) -> None:
        """A detached tmux session ``training`` following the training log, so that
        ``sudo tmux attach -t training`` from an SSM session shows the run live."""
        if not self.tmux:
            return
        follow = f"tail -n +1 -F {shlex.quote(log_path)}"
        try:
            subprocess.run([self.tmux, "kill-session", "-t", TMUX_SESSION], capture_output=True)
            done = subprocess.run(
                [self.tmux, "new-session", "-d", "-s", TMUX_SESSION, follow],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            log.warning("no tmux session (%s); the log is %s", error, log_path)
            return
        if done.returncode != 0:
            log.warning("tmux new-session failed: %s", done.stderr.strip())


def best_effort(what: str, action, *args, **kwargs):
    """Run one finalisation step; a failure is logged and never stops the steps after it."""
    try:
        return action(*args, **kwargs)
    except (AwsError, OSError, RuntimeError, ValueError, subprocess.SubprocessError) as error:
        log.error("%s failed: %s", what, error)
        return None
