"""How the trainer is started: the seam between the supervisor and the thing that trains.

- :class:`DockerLauncher` (on EC2): ECR login and ``docker pull`` with retries, then
  ``docker run`` of the trainer image with the GPUs, a 110 s stop timeout, shared memory, a scratch
  volume for the model cache, and its output to CloudWatch Logs (awslogs driver) and to us.
- :class:`LocalLauncher` (tests and the demo): the same trainer CLI as a local process, e.g.
  ``python -m tuning_trainer``; the run config, progress file and environment are the same.

Either way the trainer's output is appended to the training log (which tmux follows) and its
last lines are kept for the ledger when it fails. Stopping sends SIGTERM to the trainer only (as
``docker stop`` does to PID 1), so it can publish a checkpoint, and kills it after the grace time.

Either way the trainer holds no credential of the host's: its AWS config points at the trainer
role's keys the supervisor keeps in the run folder (credentials.py), IMDS is off for it, and the
supervisor forwards spot notices as SIGTERM (:func:`trainer_aws_env`).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from . import contract, watchdog

log = logging.getLogger(__name__)

CONTAINER_NAME = "training"
CONTAINER_RUN_DIR = "/run/tuning-lab"  # read-only: config.yaml, aws-config, credentials.json
CONTAINER_PROGRESS_DIR = "/run/tuning-progress"  # the one folder of ours the trainer may write
CONTAINER_SCRATCH_DIR = "/scratch"
STOP_TIMEOUT_SECONDS = 110
PULL_RETRY_DELAYS_SECONDS = (10, 30, 60, 120)
TRAIN_ARGS = ("train", "--resume-from-checkpoint", "auto", "--config")


class PrepareError(RuntimeError):
    """The trainer cannot be started here (image not pullable); names the reason and the detail."""

    def __init__(self, reason: str, message: str, detail: list) -> None:
        super().__init__(message)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class TrainerJob:
    # The supervisor's folder for the trainer: config.yaml, aws-config, credentials.json. Root's
    # and read-only to the trainer, so nothing the trainer does can make the supervisor write or
    # read through a link it planted.
    run_dir: str
    env: dict  # LLM_OUTPUT__URI, LLM_DATA__ROOT, AWS_REGION, ...
    log_stream: str

    @property
    def config_name(self) -> str:
        return "config.yaml"

    @property
    def progress_dir(self) -> str:
        """The folder the trainer writes its progress file into (and nothing else of ours)."""
        return progress_dir_of(self.run_dir)

    @property
    def progress_name(self) -> str:
        return "progress.json"


def progress_dir_of(run_dir: str) -> str:
    return f"{run_dir.rstrip('/')}-progress"


class TrainingLog:
    """The log users follow (``tmux attach -t training``): trainer output, supervisor events."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._lock = threading.Lock()
        # Called with every line written (the progress publisher reads the trainer's metrics).
        self.observers: list = []

    def write(self, line: str) -> None:
        with self._lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line if line.endswith("\n") else line + "\n")
        for observe in self.observers:
            try:
                observe(line)
            except Exception:  # an observer never stops the log
                log.exception("a training-log observer failed")

    def say(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.write(f"[tuning-supervisor {stamp}] {message}")


@dataclass
class TrainerProcess:
    """One running trainer: its exit code, graceful stop, kill, CPU time and last log lines."""

    popen: subprocess.Popen
    training_log: TrainingLog
    request_stop: Callable[[float], None]
    force_kill: Callable[[], None]
    cpu_seconds: Callable[[], float | None]
    tail: collections.deque = field(
        default_factory=lambda: collections.deque(maxlen=contract.LAST_LOG_LINES)
    )
    stop_requested_at: float | None = None
    grace_seconds: float = STOP_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        self._pump = threading.Thread(target=self._copy_output, daemon=True)
        self._pump.start()

    def _copy_output(self) -> None:
        for line in self.popen.stdout:
            self.tail.append(clip(line.rstrip("\n")))
            self.training_log.write(line)

    def poll(self) -> int | None:
        code = self.popen.poll()
        if code is not None:
            self._pump.join(timeout=10)
        return code

    def stop(self, grace_seconds: float) -> None:
        """SIGTERM now (once); :meth:`kill_if_overdue` kills after ``grace_seconds``."""
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
            self.grace_seconds = grace_seconds
            self.request_stop(grace_seconds)

    def kill_if_overdue(self) -> bool:
        # docker stop kills at the grace time itself; this is the backstop if it did not
        margin = min(5.0, self.grace_seconds)
        overdue = (
            self.stop_requested_at is not None
            and time.monotonic() - self.stop_requested_at > self.grace_seconds + margin
        )
        if overdue:
            self.force_kill()
        return overdue

    def last_lines(self) -> list:
        return list(self.tail)


# The host's own ways to credentials, none of which the trainer may inherit.
HOST_CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    contract.ENV_IMDS_ENDPOINT,
)


def write_trainer_aws_config(run_dir: str, visible_run_dir: str) -> None:
    """The trainer's AWS config in ``run_dir``: its credentials are the trainer role's keys in the
    same folder, which it sees as ``visible_run_dir``."""
    credentials = f"{visible_run_dir}/{contract.CREDENTIALS_NAME}"
    with open(os.path.join(run_dir, contract.AWS_CONFIG_NAME), "w") as config:
        config.write(f"[default]\ncredential_process = cat {credentials}\n")


def trainer_aws_env(visible_run_dir: str) -> dict:
    """What makes the trainer use that config, and nothing of the host's."""
    return {
        "AWS_CONFIG_FILE": f"{visible_run_dir}/{contract.AWS_CONFIG_NAME}",
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        contract.ENV_SPOT_POLLING: "never",
    }


# A failed run's last lines go into the ledger and an SNS message (256 KB at most): a trainer that
# prints megabyte lines must not be able to stop that message.
MAX_LINE_CHARS = 1000


def clip(line: str) -> str:
    return line if len(line) <= MAX_LINE_CHARS else f"{line[:MAX_LINE_CHARS]}... [clipped]"


def _popen(argv: list, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
        start_new_session=True,  # our signals to the supervisor are not the trainer's
    )


class LocalLauncher:
    """Runs ``<command> train --resume-from-checkpoint auto --config <run_dir>/config.yaml`` as a
    local process (tests, the demo). ``command`` is e.g. ``["python", "-m", "tuning_trainer"]``."""

    def __init__(self, command: list) -> None:
        self.command = list(command)

    def prepare(self, say: Callable[[str], None]) -> None:
        say(f"local trainer command: {' '.join(self.command)} (no image to pull)")

    def clean_up(self) -> None:
        pass  # a local trainer dies with its process group

    def start(self, job: TrainerJob, training_log: TrainingLog) -> TrainerProcess:
        env = {k: v for k, v in os.environ.items() if k not in HOST_CREDENTIAL_VARIABLES}
        env.update(job.env)
        write_trainer_aws_config(job.run_dir, job.run_dir)
        env.update(trainer_aws_env(job.run_dir))
        os.makedirs(job.progress_dir, exist_ok=True)
        env[contract.ENV_PROGRESS_FILE] = os.path.join(job.progress_dir, job.progress_name)
        argv = [*self.command, *TRAIN_ARGS, os.path.join(job.run_dir, job.config_name)]
        popen = _popen(argv, env)

        def terminate(_grace: float) -> None:
            _signal(popen.pid, signal.SIGTERM)

        def kill() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)

        return TrainerProcess(
            popen=popen,
            training_log=training_log,
            request_stop=terminate,
            force_kill=kill,
            cpu_seconds=lambda: watchdog.process_group_cpu_seconds(popen.pid),
        )


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def shared_memory_size() -> str:
    """Half the host's memory for /dev/shm (PyTorch data loaders), at least 1 GiB."""
    try:
        with open("/proc/meminfo") as meminfo:
            total_kib = int(meminfo.readline().split()[1])
    except (OSError, ValueError, IndexError):
        return "1g"
    return f"{max(1, total_kib // 2 // (1024 * 1024))}g"


class DockerLauncher:
    """The trainer image under Docker with the NVIDIA runtime (the Deep Learning AMI)."""

    def __init__(
        self,
        image_uri: str,
        region: str,
        log_group: str,
        aws: object,
        scratch_dir: str,
        docker: str = "docker",
        retry_delays: tuple = PULL_RETRY_DELAYS_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.image_uri = image_uri
        self.region = region
        self.log_group = log_group
        self.aws = aws
        self.scratch_dir = scratch_dir
        self.docker = docker
        self.retry_delays = retry_delays
        self.sleep = sleep
        self.image_user = ""  # the image's USER, read after the pull

    @property
    def registry(self) -> str:
        return self.image_uri.split("/", 1)[0]

    def _docker(self, *args: str, stdin: str | None = None, timeout: float = 1800):
        return subprocess.run(
            [self.docker, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _with_retries(self, what: str, action: Callable[[], subprocess.CompletedProcess], say):
        errors: list = []
        for attempt, delay in enumerate([*self.retry_delays, None], start=1):
            try:
                done = action()
                output = (done.stderr or done.stdout or "").strip()
                if done.returncode == 0:
                    return
            except (OSError, subprocess.TimeoutExpired, RuntimeError) as error:
                output = str(error)
            errors.append(f"{what} attempt {attempt}: {output}")
            say(f"{what} failed (attempt {attempt}): {output}")
            if delay is None:
                break
            self.sleep(delay)
        raise PrepareError(
            contract.REASON_IMAGE_PULL_FAILED,
            f"{what} failed {len(errors)} times for {self.image_uri}: {errors[-1]}",
            errors[-contract.LAST_LOG_LINES :],
        )

    def prepare(self, say: Callable[[str], None]) -> None:
        if ".dkr.ecr." in self.registry:

            def login() -> subprocess.CompletedProcess:
                password = self.aws.ecr_password()
                return self._docker(
                    "login",
                    "--username",
                    "AWS",
                    "--password-stdin",
                    self.registry,
                    stdin=password,
                    timeout=120,
                )

            self._with_retries("ECR login", login, say)
        say(f"pulling {self.image_uri}")
        self._with_retries("docker pull", lambda: self._docker("pull", "-q", self.image_uri), say)
        inspected = self._docker("image", "inspect", "--format", "{{.Config.User}}", self.image_uri)
        self.image_user = inspected.stdout.strip() if inspected.returncode == 0 else ""
        say(f"image pulled; it runs as user '{self.image_user or 'root'}'")

    def clean_up(self) -> None:
        """Stop (gracefully) and remove a trainer container left by an earlier supervisor."""
        self._docker("stop", "--time", str(STOP_TIMEOUT_SECONDS), CONTAINER_NAME, timeout=300)
        self._docker("rm", "--force", CONTAINER_NAME, timeout=120)

    def run_argv(self, job: TrainerJob) -> list:
        env = dict(job.env)
        env.update(trainer_aws_env(CONTAINER_RUN_DIR))
        env[contract.ENV_PROGRESS_FILE] = f"{CONTAINER_PROGRESS_DIR}/{job.progress_name}"
        # Model downloads, the Hugging Face cache and unpublished checkpoints go to the scratch
        # volume (instance storage when the instance has it), not the container's /tmp.
        env["HF_HOME"] = f"{CONTAINER_SCRATCH_DIR}/huggingface"
        env["LLM_MODEL__CACHE_DIR"] = f"{CONTAINER_SCRATCH_DIR}/models"
        env["LLM_OUTPUT__STAGING_DIR"] = f"{CONTAINER_SCRATCH_DIR}/staging"
        argv = [
            self.docker, "run", "--name", CONTAINER_NAME, "--sig-proxy=false",
            "--gpus", "all", "--stop-timeout", str(STOP_TIMEOUT_SECONDS),
            # untrusted code: no capabilities, no setuid escalation
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--shm-size", shared_memory_size(),
            "--ulimit", "memlock=-1", "--ulimit", "stack=67108864",
            "--log-driver", "awslogs",
            "--log-opt", f"awslogs-region={self.region}",
            "--log-opt", f"awslogs-group={self.log_group}",
            "--log-opt", f"awslogs-stream={job.log_stream}",
            "--mount", f"type=bind,src={job.run_dir},dst={CONTAINER_RUN_DIR},readonly",
            "--mount", f"type=bind,src={job.progress_dir},dst={CONTAINER_PROGRESS_DIR}",
            "--mount", f"type=bind,src={self.scratch_dir},dst={CONTAINER_SCRATCH_DIR}",
        ]  # fmt: skip
        for name in sorted(env):
            argv += ["--env", f"{name}={env[name]}"]
        return [*argv, self.image_uri, *TRAIN_ARGS, f"{CONTAINER_RUN_DIR}/{job.config_name}"]

    def _hand_to_image_user(self, *folders: str) -> None:
        """The image runs as a non-root user (USER 10001:10001): it must be able to write its
        progress file and the model cache. Only these folders themselves change hands, never a
        path in them (one the trainer planted could point anywhere on the host); what the
        trainer wrote there is its own already. The run folder stays root's, readable by all."""
        if not self.image_user:  # root (or not known): nothing to hand over
            return
        ids = re.match(r"^(\d+)(?::(\d+))?$", self.image_user)
        for folder in folders:
            if ids:
                uid = int(ids.group(1))
                os.chown(folder, uid, int(ids.group(2) or uid), follow_symlinks=False)
            else:  # a user name we cannot resolve on the host
                os.chmod(folder, 0o777, follow_symlinks=False)

    def start(self, job: TrainerJob, training_log: TrainingLog) -> TrainerProcess:
        os.makedirs(self.scratch_dir, exist_ok=True)
        os.makedirs(job.progress_dir, exist_ok=True)
        write_trainer_aws_config(job.run_dir, CONTAINER_RUN_DIR)
        self._hand_to_image_user(job.progress_dir, self.scratch_dir)
        self._docker("rm", "--force", CONTAINER_NAME, timeout=120)
        popen = _popen(self.run_argv(job), dict(os.environ))

        def stop(grace: float) -> None:
            subprocess.Popen(  # not waited for here: the supervisor keeps polling meanwhile
                [self.docker, "stop", "--time", str(int(grace)), CONTAINER_NAME],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        def kill() -> None:
            self._docker("kill", CONTAINER_NAME, timeout=60)

        return TrainerProcess(
            popen=popen,
            training_log=training_log,
            request_stop=stop,
            force_kill=kill,
            cpu_seconds=watchdog.host_cpu_seconds,
        )
