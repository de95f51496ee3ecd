"""A local stand-in for SageMaker's training-container contract, for tests (no AWS, no Docker).

    job = SageMakerJobHarness(tmp, "tl-run-1", hosts=["localhost"], checkpoints=run / "checkpoints",
                              environment={"TUNING_CONFIG": str(config)})
    job.start(); job.wait_for_step(3); job.stop(); job.wait()   # a managed-spot interruption
    job.start(); job.wait()                                        # the restart resumes

What SageMaker documents for a container that runs a custom training algorithm (sources in
docs/external-names.md, "SageMaker"), and what this harness does for each host:

- the image runs as ``<entrypoint> train``: here ``python -m tuning_trainer train``, one
  process per host, in a session of its own;
- ``TRAINING_JOB_NAME``, ``TRAINING_JOB_ARN`` and the request's ``Environment`` are in the
  environment; ``/opt/ml/input/config/hyperparameters.json`` and ``resourceconfig.json``
  (``current_host``, ``hosts``, ``network_interface_name``) describe the job. Each host gets its
  own ``/opt/ml`` tree (``TUNING_SAGEMAKER_ROOT``);
- ``CheckpointConfig``: at each job start (and managed-spot restart) the objects under its
  ``S3Uri`` (here a local folder standing for ``runs/<run-id>/checkpoints/``) are copied into
  ``LocalPath`` (``/opt/ml/checkpoints``); objects added later are not;
- ``StopTrainingJob`` and a spot reclaim send SIGTERM to the container and kill it after 120 s;
- ``/opt/ml/output/failure`` is what the job's ``FailureReason`` shows; ``/opt/ml/model`` is
  collected as the model artifact.

Host names: the first host is torchrun's rendezvous, so a two-host job on one machine names its
hosts ``localhost`` and ``127.0.0.1`` (two names, one loopback), and ``network_interface_name``
is ``lo`` (the ranks' NCCL/Gloo interface).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

STOP_GRACE_SECONDS = 120  # StopTrainingJob: SIGTERM, then termination after 120 s


@dataclass
class Host:
    name: str
    root: Path
    process: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def failure(self) -> str | None:
        path = self.root / "output" / "failure"
        return path.read_text() if path.is_file() else None

    def output(self) -> str:
        return self.log.read_text() if self.log and self.log.is_file() else ""


@dataclass
class SageMakerJobHarness:
    work: Path
    job_name: str
    hosts: list[str]
    checkpoints: Path  # the folder standing for CheckpointConfig.S3Uri
    environment: Mapping[str, str] = field(default_factory=dict)
    hyperparameters: Mapping[str, str] = field(default_factory=dict)
    network_interface: str = "lo"  # SageMaker names its container network's ("eth1"); loopback here
    starts: int = 0
    members: list[Host] = field(default_factory=list)

    def start(self) -> list[Host]:
        """A job start (or a managed-spot restart): fresh /opt/ml trees, checkpoints copied in."""
        self.starts += 1
        self.members = []
        for name in self.hosts:
            root = self.work / f"start-{self.starts}" / name / "opt-ml"
            self._prepare(root, name)
            host = Host(name, root, log=root.parent / "container.log")
            env = {
                **os.environ,
                "HF_HUB_OFFLINE": "1",
                "TRAINING_JOB_NAME": self.job_name,
                "TRAINING_JOB_ARN": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/"
                f"{self.job_name}",
                "TUNING_SAGEMAKER_ROOT": str(root),
                **self.environment,
            }
            with open(host.log, "w") as log:
                host.process = subprocess.Popen(
                    [sys.executable, "-m", "tuning_trainer", "train"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.members.append(host)
        return self.members

    def _prepare(self, root: Path, name: str) -> None:
        config = root / "input" / "config"
        config.mkdir(parents=True)
        (config / "hyperparameters.json").write_text(json.dumps(dict(self.hyperparameters)))
        described = {
            "current_host": name,
            "hosts": list(self.hosts),
            "network_interface_name": self.network_interface,
        }
        (config / "resourceconfig.json").write_text(json.dumps(described))
        for folder in ("model", "output/data", "checkpoints"):
            (root / folder).mkdir(parents=True)
        if self.checkpoints.is_dir():  # CheckpointConfig: S3Uri -> LocalPath, at start only
            shutil.copytree(self.checkpoints, root / "checkpoints", dirs_exist_ok=True)

    def stop(self) -> None:
        """StopTrainingJob or a spot reclaim: SIGTERM to every host's container."""
        for host in self.members:
            if host.process and host.process.poll() is None:
                os.killpg(host.process.pid, signal.SIGTERM)

    def wait(self, timeout: float = 240) -> list[int]:
        """Every host's exit code; a host still running after ``timeout`` is killed (and fails)."""
        deadline = time.monotonic() + timeout
        codes = []
        for host in self.members:
            assert host.process is not None
            try:
                codes.append(host.process.wait(timeout=max(1.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                os.killpg(host.process.pid, signal.SIGKILL)
                codes.append(host.process.wait())
        return codes

    def kill(self) -> None:
        for host in self.members:
            if host.process and host.process.poll() is None:
                os.killpg(host.process.pid, signal.SIGKILL)
                host.process.wait()
