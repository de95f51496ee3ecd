"""The image under SageMaker's training-container contract: the same `train`, with /opt/ml.

    docker run <image> train          # what SageMaker runs on each host of a training job

SageMaker starts the image's entrypoint with the argument ``train`` on every host of the job,
sets ``TRAINING_JOB_NAME``, ``TRAINING_JOB_ARN`` and the job's ``Environment``, and describes the
job in ``/opt/ml/input/config/`` (``hyperparameters.json``; ``resourceconfig.json``: this host's
name, every host's name, the network interface). :func:`detect` reads that; the rest of the
trainer is unchanged:

- the run config comes from ``$TUNING_CONFIG`` (the job's ``Environment``), else from the
  ``config`` hyperparameter; data is read from S3 directly, as on EC2 (no input channels: the
  trainer reads only what it trains on, and the code path is the one tested everywhere);
- checkpoints are published to the run folder by the trainer itself, manifest last, as on EC2.
  The job's ``CheckpointConfig`` points at the run's ``checkpoints/`` with ``LocalPath``
  ``/opt/ml/checkpoints``, which SageMaker fills from S3 when a job (or a managed-spot restart)
  starts. The trainer resumes from that copy when its files match a manifest (no second
  download), and never writes into it: SageMaker mirrors that folder to S3 while the job runs,
  deletions included, so a file the trainer deleted there would delete a published checkpoint.
  Staging and the model cache live under ``/opt/ml/tuning/`` instead;
- several hosts: the first host of ``hosts`` is torchrun's rendezvous, each host is one node
  (``--nnodes``, ``--node-rank``) with one rank per GPU; global rank 0 publishes; NCCL and
  Gloo use the interface ``resourceconfig.json`` names (``NCCL_SOCKET_IFNAME``,
  ``GLOO_SOCKET_IFNAME``) unless the environment already sets them;
- the final model is also copied to ``/opt/ml/model`` (SageMaker uploads it as
  ``model.tar.gz`` to the job's output path), and a failure writes one line to
  ``/opt/ml/output/failure``, which becomes the job's ``FailureReason``: ``bad-input: ...`` for
  exit 2 (the job controller never retries it), ``interrupted: ...`` for 75, ``failed: ...`` for 1.

``TUNING_SAGEMAKER_ROOT`` moves ``/opt/ml`` (the local contract harness,
``testing/sagemaker_contract.py``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT_ENV = "TUNING_SAGEMAKER_ROOT"
JOB_NAME_ENV = "TRAINING_JOB_NAME"
CONFIG_HYPERPARAMETER = "config"
RENDEZVOUS_PORT = 29500  # torchrun's default master port
RENDEZVOUS_PORT_ENV = "TUNING_RENDEZVOUS_PORT"  # another port (tests running side by side)
FAILURE_PREFIXES = {2: "bad-input", 75: "interrupted", 1: "failed"}
# where NCCL and Gloo (the ranks' collective backends) open their sockets
SOCKET_IFNAME_ENVS = ("NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME")


@dataclass(frozen=True)
class SageMakerJob:
    root: Path
    job_name: str
    current_host: str
    hosts: tuple[str, ...]
    network_interface: str | None = None  # resourceconfig.json's network_interface_name

    @property
    def node_rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def nodes(self) -> int:
        return len(self.hosts)

    @property
    def master_addr(self) -> str:
        return self.hosts[0]

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def failure_file(self) -> Path:
        return self.root / "output" / "failure"

    @property
    def work_dir(self) -> Path:
        """Staging and model cache: on the job's volume, outside the synced checkpoints."""
        return self.root / "tuning"


def detect(env: Mapping[str, str]) -> SageMakerJob | None:
    """The job this process runs in, or None outside SageMaker."""
    root = Path(env.get(ROOT_ENV, "/opt/ml"))
    resources = root / "input" / "config" / "resourceconfig.json"
    if JOB_NAME_ENV not in env or not resources.is_file():
        return None
    described = json.loads(resources.read_text())
    hosts = tuple(described.get("hosts") or [described["current_host"]])
    interface = described.get("network_interface_name") or None
    return SageMakerJob(root, env[JOB_NAME_ENV], described["current_host"], hosts, interface)


def config_location(job: SageMakerJob, env: Mapping[str, str]) -> str | None:
    """``$TUNING_CONFIG``, else the job's ``config`` hyperparameter."""
    if env.get("TUNING_CONFIG"):
        return env["TUNING_CONFIG"]
    path = job.root / "input" / "config" / "hyperparameters.json"
    if path.is_file():
        value = json.loads(path.read_text()).get(CONFIG_HYPERPARAMETER)
        return str(value) if value else None
    return None


def job_environment(job: SageMakerJob, env: Mapping[str, str]) -> dict[str, str]:
    """Settings the job implies, under what the job's ``Environment`` already sets."""
    implied = {
        "LLM_OUTPUT__STAGING_DIR": str(job.work_dir / "staging"),
        "LLM_MODEL__CACHE_DIR": str(job.work_dir / "models"),
        "HF_HOME": str(job.work_dir / "huggingface"),
    }
    if job.nodes > 1 and job.network_interface:
        # Left alone, each backend picks an interface itself and may pick one the other hosts
        # cannot reach; SageMaker names the one its container network is on.
        implied.update(dict.fromkeys(SOCKET_IFNAME_ENVS, job.network_interface))
    return {key: value for key, value in implied.items() if not env.get(key)}


def torchrun_nodes(job: SageMakerJob) -> list[str]:
    """torchrun's node flags: this host's place among the job's hosts."""
    if job.nodes == 1:
        return ["--standalone", "--nnodes", "1"]
    return [
        "--nnodes", str(job.nodes), "--node-rank", str(job.node_rank),
        "--master-addr", job.master_addr,
        "--master-port", os.environ.get(RENDEZVOUS_PORT_ENV, str(RENDEZVOUS_PORT)),
    ]  # fmt: skip


def copy_final_model(job: SageMakerJob, final: Path) -> None:
    """The published final model, also where SageMaker collects the job's model artifact."""
    job.model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(final, job.model_dir, dirs_exist_ok=True)


def write_failure(job: SageMakerJob, code: int, message: str) -> None:
    """One line for the job's FailureReason (SageMaker reads the file when the job fails)."""
    prefix = FAILURE_PREFIXES.get(code)
    if prefix is None:
        return
    job.failure_file.parent.mkdir(parents=True, exist_ok=True)
    first_line = (message.strip().splitlines() or [""])[0]
    job.failure_file.write_text(f"{prefix}: {first_line}"[:1000] + "\n")


def current() -> SageMakerJob | None:
    return detect(os.environ)
