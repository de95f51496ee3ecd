"""Several processes, one per GPU: the launch, and what every rank must agree on.

    tuning-trainer train --config run.yaml                      # every visible GPU, one rank each
    tuning-trainer train --config run.yaml --nproc-per-node 2   # e.g. two CPU ranks (gloo)

``tuning-trainer train`` is always what the image runs. With a world size above one it checks
the config, chooses the strategy (:func:`plan_launch`, ``training.distributed``) and then starts
PyTorch's own launcher, ``torchrun --standalone``, which runs ``tuning-trainer train`` once per
rank; the Hugging Face Trainer (through accelerate) then does DDP or FSDP2 by itself. The first
process stays as the job's parent:

- a bad config exits 2 in the parent, before any rank starts;
- SIGTERM or Ctrl-C reaches the ranks through torchrun, which waits ``--shutdown_timeout`` (the
  interruption deadline plus a margin) before it kills them: the ranks checkpoint and exit 75;
  a second Ctrl-C kills the job without saving, as with one process;
- torchrun turns any rank's non-zero exit into its own exit 1, so each rank writes its exit code
  to ``$TUNING_OUTCOME_DIR/rank-<local rank>`` and the parent combines them (:func:`combined_exit`):
  75 only when every rank stopped at the same checkpoint, 2 when a rank found bad input, else 1.
- if the parent dies, torchrun gets SIGKILL, and so do its ranks (sessions of their own) when
  torchrun dies: no rank outlives the job. Graceful stops go through the parent's SIGTERM.

Inside the job (:func:`agree`, :func:`barrier`) the ranks decide together at each optimizer
step whether an interruption was requested anywhere (a spot notice is polled by local rank 0
only; SIGTERM reaches all), so all ranks stop at the same step; rank 0 publishes a checkpoint
after a barrier, once every rank has written its part.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from tuning_trainer.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK

log = logging.getLogger(__name__)

STRATEGIES = ("auto", "none", "ddp", "fsdp")
STRATEGY_ENV = "TUNING_DISTRIBUTED"  # the strategy the parent chose, for the ranks
OUTCOME_DIR_ENV = "TUNING_OUTCOME_DIR"
NPROC_ENV = "TUNING_NPROC_PER_NODE"
# torchrun waits this long past the interruption deadline before it kills the ranks; with the
# default deadline (100 s) that is still inside docker's --stop-timeout (110 s, launchers.py).
SHUTDOWN_MARGIN_SECONDS = 5
# The record of how a checkpoint was trained, written into each checkpoint by rank 0.
LAYOUT_FILE = "distributed.json"
PR_SET_PDEATHSIG = 1


# --- inside a job --------------------------------------------------------------------------------


def in_job() -> bool:
    """True in a process torchrun started (one rank of a job)."""
    return "TORCHELASTIC_RUN_ID" in os.environ and "LOCAL_RANK" in os.environ


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1")) if in_job() else 1


def rank() -> int:
    return int(os.environ.get("RANK", "0")) if in_job() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if in_job() else 0


def is_main() -> bool:
    return rank() == 0


def job_strategy() -> str:
    """The strategy the parent chose for this rank ("none" outside a job)."""
    return os.environ.get(STRATEGY_ENV, "ddp") if in_job() else "none"


def init_job(timeout_seconds: float = 1800) -> None:
    """Join the job's process group at once (accelerate reuses it): the ranks coordinate before
    the Trainer exists (the staging folder, the checkpoint to resume). NCCL on GPUs, one per
    local rank; gloo on CPUs. The timeout is the Trainer's ``ddp_timeout`` default."""
    import datetime as dt

    import torch
    import torch.distributed as dist

    if not in_job() or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, timeout=dt.timedelta(seconds=timeout_seconds))


def leave_job() -> None:
    """Tear down this rank's process group (after the job's last barrier)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _group_ready() -> bool:
    import torch.distributed as dist

    return world_size() > 1 and dist.is_available() and dist.is_initialized()


def _device() -> Any:
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def agree(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any rank (one all-reduce of one number)."""
    if not _group_ready():
        return flag
    import torch
    import torch.distributed as dist

    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def broadcast_int(value: int) -> int:
    """Rank 0's ``value`` on every rank."""
    if not _group_ready():
        return value
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.int64, device=_device())
    dist.broadcast(tensor, src=0)
    return int(tensor.item())


def barrier() -> None:
    if _group_ready():
        import torch.distributed as dist

        dist.barrier()


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``signum`` to this process when its parent exits (no orphaned rank)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    except (OSError, AttributeError):  # not glibc/musl: the collectives still fail without it
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signum)


def write_outcome(code: int) -> None:
    """Record this rank's exit code for the job's parent (only inside a job)."""
    directory = os.environ.get(OUTCOME_DIR_ENV)
    if in_job() and directory:
        Path(directory, f"rank-{local_rank()}").write_text(str(code))  # this machine's ranks


def combined_exit(outcomes: Mapping[int, int], world: int, launcher_code: int) -> int:
    """The job's exit code from each rank's own code and torchrun's.

    0 when torchrun succeeded and no rank reported otherwise; 2 when any rank found bad input
    (every rank does, for divergence: the logged loss is the mean over ranks); 75 only when every
    rank reported 75, i.e. all stopped at the same published checkpoint; 1 for anything else,
    a rank that died without reporting included.
    """
    codes = [outcomes.get(r) for r in range(world)]
    if launcher_code == 0 and all(c in (None, EXIT_OK) for c in codes):
        return EXIT_OK
    if EXIT_BAD_INPUT in codes:
        return EXIT_BAD_INPUT
    if all(c == EXIT_INTERRUPTED for c in codes):
        return EXIT_INTERRUPTED
    return EXIT_FAILED


def read_outcomes(directory: Path) -> dict[int, int]:
    outcomes = {}
    for path in directory.glob("rank-*"):
        try:
            outcomes[int(path.name.split("-", 1)[1])] = int(path.read_text().strip())
        except ValueError:
            continue
    return outcomes


def write_layout(folder: Path, plan_strategy: str) -> None:
    (folder / LAYOUT_FILE).write_text(
        json.dumps({"strategy": plan_strategy, "world_size": world_size()}) + "\n"
    )


def parse_layout(text: str) -> dict[str, Any]:
    """How a checkpoint was trained; no record: one process (a checkpoint from before)."""
    try:
        layout = json.loads(text)
    except json.JSONDecodeError:
        layout = None
    if not isinstance(layout, dict) or layout.get("strategy") not in STRATEGIES:
        return {"strategy": "none", "world_size": 1}
    return layout


def read_layout(folder: Path) -> dict[str, Any]:
    path = folder / LAYOUT_FILE
    return parse_layout(path.read_text() if path.is_file() else "")


# --- the launch --------------------------------------------------------------------------------


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def gpu_memory_gib() -> float | None:
    """The smallest visible GPU's memory; None without a GPU."""
    import torch

    if not visible_gpus():
        return None
    sizes = [torch.cuda.get_device_properties(i).total_memory for i in range(visible_gpus())]
    return min(sizes) / 2**30


def resolve_nproc(requested: int | None, env: Mapping[str, str]) -> int:
    """Ranks to start: --nproc-per-node, else $TUNING_NPROC_PER_NODE, else one per visible GPU."""
    from tuning_trainer.errors import ConfigError

    if requested is None and env.get(NPROC_ENV):
        try:
            requested = int(env[NPROC_ENV])
        except ValueError:
            raise ConfigError(
                f"${NPROC_ENV} = {env[NPROC_ENV]!r}: must be a whole number >= 1"
            ) from None
    if requested is not None and requested < 1:
        raise ConfigError(f"--nproc-per-node {requested}: must be a whole number >= 1")
    gpus = visible_gpus()
    if requested is None:
        return max(gpus, 1)
    if gpus and requested > gpus:
        raise ConfigError(
            f"--nproc-per-node {requested}: this machine has {gpus} GPU(s); use 1 to {gpus}"
        )
    return requested


def launch(
    argv: Sequence[str],
    strategy: str,
    world: int,
    deadline_seconds: float,
    env: Mapping[str, str],
    nodes: Sequence[str] | None = None,
) -> int:
    """Run ``tuning-trainer <argv>`` as ``world`` ranks on this machine under torchrun; the
    job's exit code. ``nodes``: torchrun's node flags when the job spans several machines
    (:func:`tuning_trainer.sagemaker.torchrun_nodes`); default one machine, ``--standalone``."""
    outcome_dir = Path(tempfile.mkdtemp(prefix="tuning-outcome-"))
    shutdown = int(deadline_seconds) + SHUTDOWN_MARGIN_SECONDS
    command = [
        sys.executable, "-m", "torch.distributed.run",
        *(nodes or ["--standalone", "--nnodes", "1"]), "--nproc-per-node", str(world),
        "--max-restarts", "0", "--monitor-interval", "1",
        "--shutdown-timeout", str(shutdown),
        "-m", "tuning_trainer", *argv,
    ]  # fmt: skip
    child_env = {
        **env,
        STRATEGY_ENV: strategy,
        OUTCOME_DIR_ENV: str(outcome_dir),
        # one rank per GPU already: torch's default of one OpenMP thread per rank on CPU
        "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS")
        or str(max(1, (os.cpu_count() or 1) // world)),
    }
    log.info(
        "starting %d ranks (%s) under torchrun; a stop gives them %d s to checkpoint",
        world,
        strategy,
        shutdown,
    )
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        env=child_env,
        start_new_session=True,  # a terminal's Ctrl-C reaches this parent only, which forwards
        # a dead parent (killed by the supervisor after its grace) takes the job with it
        preexec_fn=lambda: die_with_parent(signal.SIGKILL),
    )
    stops: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        stops.append(signum)
        if signum == signal.SIGINT and len(stops) > 1:
            log.warning("second interrupt: killing the job without a checkpoint")
            _kill_job(process)
            return
        log.warning("%s: asking every rank to checkpoint and stop", signal.Signals(signum).name)
        _signal(process, signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        launcher_code = process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _kill_job(process)  # anything left of the job's session
    outcomes = read_outcomes(outcome_dir)
    code = combined_exit(outcomes, world, launcher_code)
    log.log(
        logging.INFO if code in (EXIT_OK, EXIT_INTERRUPTED) else logging.ERROR,
        "the %d ranks ended after %.0f s: torchrun exit %d, ranks %s -> exit %d",
        world,
        time.monotonic() - started,
        launcher_code,
        {r: outcomes.get(r, "no report") for r in range(world)},
        code,
    )
    for path in outcome_dir.glob("*"):
        path.unlink()
    outcome_dir.rmdir()
    return code


def _signal(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signum)


def _kill_job(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
