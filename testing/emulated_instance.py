"""The GPU instance of an emulated TrainingStack: the host supervisor as the instance runs it.

    instance = EmulatedInstance.launch(deployment, root=tmp / "instance-1", number=1)
    instance.boot()                    # python -m tuning_runtime run ..., as the systemd unit does
    instance.process.wait(); instance.shutdown_requests()
    instance.stop()                    # as a host shutdown; kills what is left

The instance is the one the stack's Auto Scaling group launched in moto (testing/emulated_stack.py
reports its identity). On it: the fake IMDSv2 answering as that instance (identity, spot
notices, and, once the emulator enforces IAM, the stack's instance role's credentials: the
supervisor then holds no other), and ``python -m tuning_runtime run`` with the settings read from
the deployed stack's SSM parameter, the local launcher running the real trainer CLI
(``python -m tuning_trainer``) instead of the container, the AWS CLI backend (as on the
instance), and testing/fake_shutdown.py recording ``shutdown -h now``. Its own folder stands
for its disks: the state dir, the logs, and the trainer's scratch (staging, model cache).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from testing.emulated_stack import ROOT, STACK, Deployment, kill_group
from testing.fake_imds import FakeImds, InstanceIdentity
from testing.fake_shutdown import read_record

RUNTIME_DIR = ROOT / "runtime"
SETTINGS_PARAMETER = f"/tuning-lab/{STACK}/run-settings"  # docs/contracts.md section 1
IMDS_ENDPOINT_VARIABLE = "AWS_EC2_METADATA_SERVICE_ENDPOINT"  # contracts section 3
# The instance's timings in seconds rather than minutes, so an emulated run stays short.
FAST_TIMINGS = (
    "--imds-poll-seconds", "1", "--sample-seconds", "5", "--heartbeat-seconds", "10",
    "--stop-grace-seconds", "60", "--retry-delay-seconds", "2", "--stop-poll-seconds", "1",
)  # fmt: skip
STOP_WAIT_SECONDS = 30  # for the supervisor to checkpoint and finalise before it is killed


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the trainer leads its own session, outside our groups)."""
    listing = subprocess.run(
        ["ps", "-A", "-o", "pid=", "-o", "ppid="], capture_output=True, text=True, check=False
    ).stdout
    children: dict[int, list[int]] = {}
    for line in listing.splitlines():
        child, parent = (int(word) for word in line.split())
        children.setdefault(parent, []).append(child)
    found, frontier = [], [pid]
    while frontier:
        below = children.get(frontier.pop(), [])
        found += below
        frontier += below
    return found


@dataclass
class EmulatedInstance:
    number: int
    identity: InstanceIdentity
    root: Path
    imds: FakeImds
    deployment: Deployment
    process: subprocess.Popen | None = None
    _log_offset: int = 0
    _imds_stopped: bool = False

    @classmethod
    def launch(cls, deployment: Deployment, root: Path, number: int) -> EmulatedInstance:
        """The instance the group has in service, with its fake IMDS started."""
        identity = deployment.instance_identity()
        role = deployment.instance_role() if deployment.emulator.iam_enforced else None
        instance = cls(number, identity, root, FakeImds(identity, role=role), deployment)
        instance.imds.start()
        return instance

    @property
    def training_log(self) -> Path:
        return self.root / "training.log"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "tuning-supervisor.log"  # the instance's name, as S3 keeps it

    @property
    def shutdown_record(self) -> Path:
        return self.root / "shutdown-requests.jsonl"

    def shutdown_requests(self) -> list[dict]:
        return read_record(self.shutdown_record)

    def progress_step(self) -> int:
        """The trainer's progress file (contracts section 3), 0 before the first step."""
        try:
            return json.loads((self.root / "run-progress" / "progress.json").read_text())["step"]
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def boot(self, timings: tuple[str, ...] = FAST_TIMINGS) -> None:
        """What the systemd unit does at boot: start the host supervisor."""
        self.root.mkdir(parents=True, exist_ok=True)
        python = sys.executable
        emulator = self.deployment.emulator
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_ACCESS_KEY", "AWS_SECRET", "AWS_SESSION", "AWS_PROFILE"))
        }
        # With IAM enforced the instance's only credentials are its role's, from IMDS.
        env.update(emulator.sdk_env({} if emulator.iam_enforced else None))
        env.pop("AWS_EC2_METADATA_DISABLED", None)  # an instance has IMDS: the fake one
        env.update(
            {
                IMDS_ENDPOINT_VARIABLE: self.imds.url,
                "PATH": f"{Path(python).parent}{os.pathsep}{env['PATH']}",  # `aws`: the venv's
                "PYTHONPATH": str(RUNTIME_DIR),
                "LLM_OUTPUT__STAGING_DIR": str(self.root / "scratch" / "staging"),
                "LLM_MODEL__CACHE_DIR": str(self.root / "scratch" / "models"),
                "HF_HUB_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
                "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
            }
        )
        shutdown = [python, str(ROOT / "testing" / "fake_shutdown.py"), str(self.shutdown_record)]
        argv = [
            python, "-m", "tuning_runtime", "run",
            "--settings-parameter", SETTINGS_PARAMETER,
            "--launcher", "local",
            "--trainer-command", shlex.join([python, "-m", "tuning_trainer"]),
            "--shutdown-command", shlex.join([*shutdown, "-h", "now"]),
            "--no-tmux",
            "--billing-start", "now",
            "--state-dir", str(self.root),
            "--training-log", str(self.training_log),
            "--supervisor-log", str(self.supervisor_log),
            *timings,
        ]  # fmt: skip
        with (self.root / "supervisor.stderr").open("w") as stderr:
            self.process = subprocess.Popen(
                argv,
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )

    def new_log_lines(self) -> list[str]:
        """Complete lines added to the training log since the last call."""
        try:
            with self.training_log.open("rb") as log:
                log.seek(self._log_offset)
                data = log.read()
        except FileNotFoundError:
            return []
        complete = data.rfind(b"\n") + 1
        self._log_offset += complete
        return data[:complete].decode(errors="replace").splitlines()

    def reclaim(self) -> None:
        """EC2 reclaims this (spot) instance; the group, still at capacity 1, replaces it."""
        self.deployment.client("autoscaling").terminate_instance_in_auto_scaling_group(
            InstanceId=self.identity.instance_id, ShouldDecrementDesiredCapacity=False
        )

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, wait_seconds: float = STOP_WAIT_SECONDS) -> None:
        """As a host shutdown: SIGTERM to the supervisor, which stops the trainer (it publishes
        a checkpoint) and finalises; whatever is left after ``wait_seconds`` is killed."""
        process = self.process
        if process is not None and process.poll() is None:
            below = descendants(process.pid)
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired, KeyboardInterrupt):
                process.wait(timeout=wait_seconds)
            for pid in {*below, *descendants(process.pid)}:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)  # the trainer leads its own session
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            kill_group(process)
        if not self._imds_stopped:
            self.imds.stop()
            self._imds_stopped = True
