"""Several ranks: two CPU processes under torchrun (gloo) keep every guarantee of one process.

    python -m pytest trainer-image/tests/test_distributed.py

- DDP with 2 ranks x 2 rows trains what one process trains with 4 rows (same global batch): the
  token counts that normalise the loss are summed across ranks; stopped by SIGTERM, every rank
  stops at the same step, one checkpoint is published, exit 75, and the same command resumes
  to the end of the uninterrupted run.
- FSDP (a full fine-tune, sharded) equals one process within float tolerance, and its final
  model is one plain folder.
- A spot notice seen by local rank 0 alone stops both ranks: runtime/tests/test_scenarios.py
  (the supervisor's spot scenario runs 2 ranks).
- A rank that crashes fails the job with exit 1 and leaves no process behind; a bad config exits
  2 before any rank starts.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from trainer_testlib import assert_same_training, llama_8b_shape, make_run
from tuning_trainer import checkpoint, distributed, estimate
from tuning_trainer.config import RunConfig
from tuning_trainer.errors import ConfigError
from tuning_trainer.storage import Store
from tuning_trainer.synthetic import alpaca_examples
from tuning_trainer.train import run_train

RECORDS = alpaca_examples(96, seed=5)
STEPS = 6
ONE_PROCESS = {"training": {"max_steps": STEPS, "save_steps": 3, "per_device_train_batch_size": 4}}
TWO_RANKS = {"training": {"max_steps": STEPS, "save_steps": 3, "per_device_train_batch_size": 2}}
TRAIN = [sys.executable, "-m", "tuning_trainer", "train"]
FULL = {"model": {"method": "full"}, "training": {"learning_rate": 1.0e-4}}


def train_ranks(
    config: Path, ranks: int = 2, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """The job's stderr goes to ``stderr.txt`` beside the config: a pipe nobody reads while
    the ranks log would fill and stop them."""
    log = open(config.parent / "stderr.txt", "w")  # noqa: SIM115 (closed by finish)
    process = subprocess.Popen(
        [*TRAIN, "--config", str(config), "--nproc-per-node", str(ranks)],
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
        start_new_session=True,  # so a timed-out test can kill the whole job
    )
    process.log = log  # type: ignore[attr-defined]
    return process


def finish(process: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    try:
        code = process.wait(timeout=timeout)
    finally:
        process.log.close()  # type: ignore[attr-defined]
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return code, Path(process.log.name).read_text()  # type: ignore[attr-defined]


def merged(base: dict, changes: dict) -> dict:
    result = {key: dict(value) for key, value in base.items()}
    for key, value in changes.items():
        result.setdefault(key, {}).update(value)
    return result


def ranks_reported(stderr: str) -> str:
    match = re.search(r"torchrun exit (\d+), ranks (\{.*?\}) -> exit (\d+)", stderr)
    assert match, stderr[-3000:]
    return match.group(2)


def job_processes(marker: str) -> list[int]:
    """Live processes whose command line mentions ``marker`` (this test's config path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in command:
            found.append(int(entry.name))
    return found


def test_fsdp_full_fine_tune_with_two_ranks_equals_one_process(tmp_path: Path) -> None:
    single = make_run(tmp_path / "single", merged(ONE_PROCESS, FULL), RECORDS)
    sharded = make_run(
        tmp_path / "fsdp",
        merged(merged(TWO_RANKS, FULL), {"training": {"distributed": "fsdp"}}),
        RECORDS,
    )
    process = train_ranks(sharded)
    assert run_train(str(single), {}, env={}) == 0
    code, stderr = finish(process)

    assert code == 0, stderr[-3000:]
    assert "distributed: fsdp on 2 process(es)" in stderr
    run = Store(str(tmp_path / "fsdp" / "out"))
    manifest = checkpoint.read_manifest(run, checkpoint.step_prefix(3))
    paths = {entry["path"] for entry in manifest["files"]}
    assert any(p.startswith("pytorch_model_fsdp_0/") for p in paths), paths  # sharded state
    assert any(p.startswith("optimizer_0/") for p in paths), paths
    assert_same_training(
        tmp_path / "fsdp" / "out" / "final",
        tmp_path / "single" / "out" / "final",
        steps=STEPS,
        weights="model.safetensors",  # gathered whole: loads without FSDP
    )


def test_ddp_sigterm_stops_every_rank_at_one_checkpoint_and_resume_equals_one_process(
    tmp_path: Path,
) -> None:
    """DDP with 2 ranks x 2 rows, stopped by SIGTERM and resumed, trains what one process
    trains with 4 rows a step uninterrupted: the loss is normalised by the tokens of all ranks,
    every rank stops at the same step, and the data position and RNG are restored."""
    steps = 30
    # One row per example, 160 rows: 40 global batches of 4 rows each in the first epoch, so no
    # batch at an epoch's end is padded with repeated rows (accelerate's even_batches does that
    # for DDP, and one process would not).
    long_run = {
        "data": {"max_seq_length": 256, "packing": False},
        "training": {"max_steps": steps},
    }
    records = alpaca_examples(160, seed=5)
    config = make_run(
        tmp_path / "job",
        merged(merged(TWO_RANKS, long_run), {"training": {"save_steps": 100}}),
        records,
    )
    reference = make_run(
        tmp_path / "reference",
        merged(merged(ONE_PROCESS, long_run), {"training": {"save_steps": 100}}),
        records,
    )
    progress = tmp_path / "progress.json"
    process = train_ranks(config, env={"TUNING_PROGRESS_FILE": str(progress)})
    _wait_for_step(progress, 3, process)
    process.send_signal(signal.SIGTERM)
    code, stderr = finish(process)

    assert code == 75, stderr[-3000:]
    assert "distributed: ddp on 2 process(es)" in stderr
    assert ranks_reported(stderr) == "{0: 75, 1: 75}"
    run = Store(str(tmp_path / "job" / "out"))
    [stopped_at] = checkpoint.published_steps(run)  # one checkpoint, published once
    assert 3 <= stopped_at < steps
    manifest = checkpoint.read_manifest(run, checkpoint.step_prefix(stopped_at))
    paths = {entry["path"] for entry in manifest["files"]}
    assert {"rng_state_0.pth", "rng_state_1.pth", "optimizer.pt"} <= paths  # every rank's part
    layout = json.loads(run.get_bytes(f"checkpoints/step-{stopped_at}/distributed.json"))
    assert layout == {"strategy": "ddp", "world_size": 2}
    published = re.search(r"published (\d+\.\d) s after the interruption", stderr)
    assert published, stderr[-3000:]
    assert float(published.group(1)) < 100  # the trainer's deadline

    code, stderr = finish(train_ranks(config))  # the same command resumes
    assert code == 0, stderr[-3000:]
    assert f"resuming from {run.uri(checkpoint.step_prefix(stopped_at))}" in stderr
    assert stderr.count("finished: ") == 1  # rank 0 alone published final/
    assert run_train(str(reference), {}, env={}) == 0
    assert_same_training(
        tmp_path / "job" / "out" / "final",
        tmp_path / "reference" / "out" / "final",
        steps=steps,
    )


def _wait_for_step(progress: Path, step: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if progress.exists() and json.loads(progress.read_text())["step"] >= step:
            return
        if process.poll() is not None:
            raise AssertionError(f"exited early ({process.returncode}):\n{finish(process)[1]}")
        time.sleep(0.01)
    raise AssertionError(f"step {step} not reached")


SITECUSTOMIZE = """
import os
if os.environ.get("RANK") == "1":
    from tuning_trainer import callbacks

    original = callbacks.InterruptCallback.on_step_end

    def crash(self, args, state, control, **kw):
        if state.global_step == 2:
            raise RuntimeError("rank 1 crashed on purpose")
        return original(self, args, state, control, **kw)

    callbacks.InterruptCallback.on_step_end = crash
"""


def test_a_crashing_rank_fails_the_job_with_exit_1_and_leaves_no_process(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    config = make_run(tmp_path / "job", TWO_RANKS, RECORDS)
    path = os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")])

    code, stderr = finish(train_ranks(config, env={"PYTHONPATH": path}))

    assert code == 1, stderr[-3000:]
    assert "rank 1 crashed on purpose" in stderr
    time.sleep(1)
    assert job_processes(str(config)) == []
    run = Store(str(tmp_path / "job" / "out"))
    assert not checkpoint.is_final_complete(run)


def test_a_bad_distributed_config_exits_2_before_any_rank_starts(tmp_path: Path) -> None:
    config = make_run(tmp_path, {"training": {"distributed": "fsdp"}, "model": {"method": "qlora"}})
    code, stderr = finish(train_ranks(config), timeout=60)

    assert code == 2, stderr
    assert "training.distributed = fsdp: QLoRA" in stderr
    assert "starting 2 ranks" not in stderr and "Traceback" not in stderr


# --- the decisions, without processes ---------------------------------------------------------


def config_of(method: str = "lora", distributed_setting: str = "auto") -> RunConfig:
    return RunConfig.model_validate(
        {
            "model": {"base_model": "builtin:tiny-llama", "method": method},
            "data": {"train": "train.jsonl", "max_seq_length": 4096},
            "training": {
                "distributed": distributed_setting,
                "per_device_train_batch_size": 1,
                "gradient_checkpointing": True,
            },
        }
    )


@pytest.mark.parametrize(
    ("method", "world", "gpu_gib", "expected"),
    [
        ("lora", 1, 22.35, "none"),  # one GPU: no torchrun
        ("lora", 4, 44.7, "ddp"),  # fits one L40S: a replica per GPU
        ("lora", 4, 14.0, "fsdp"),  # does not fit: the base weights are sharded
        ("full", 8, 80.0, "fsdp"),  # a full fine-tune is always sharded
        ("qlora", 4, 22.35, "ddp"),
        ("lora", 2, None, "ddp"),  # CPU ranks: no memory test
    ],
)
def test_auto_chooses_the_strategy_from_method_and_memory(
    method: str, world: int, gpu_gib: float | None, expected: str
) -> None:
    choice = estimate.choose_strategy(config_of(method), world, gpu_gib, llama_8b_shape())
    assert choice.strategy == expected, choice.reason


def test_fsdp_holds_less_per_gpu_than_ddp_and_less_with_more_gpus() -> None:
    def total(strategy: str, world: int) -> float:
        memory = estimate.memory_per_gpu(
            llama_8b_shape(), "full", "bf16", strategy, world, 4096, True, 16, "adamw_torch"
        )
        return memory.total

    assert total("fsdp", 8) < total("fsdp", 4) < total("ddp", 4)
    # 8B full in bf16 with AdamW: 8 bytes a weight, ~60 GiB before activations on one GPU
    assert 55 < total("none", 1) < 75


def test_impossible_choices_are_config_errors_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"training\.distributed = fsdp: QLoRA"):
        estimate.choose_strategy(config_of("qlora", "fsdp"), 4, 22.35, llama_8b_shape())
    with pytest.raises(ConfigError, match=r"training\.distributed = auto: QLoRA"):
        estimate.choose_strategy(config_of("qlora"), 4, 4.0, llama_8b_shape())
    sharded = {"strategy": "fsdp", "world_size": 4}
    with pytest.raises(ConfigError, match="trained with fsdp on 4"):
        estimate.choose_strategy(config_of("lora", "ddp"), 4, 80.0, llama_8b_shape(), sharded)
    with pytest.raises(ConfigError, match=r"trained on 4 process\(es\) and this machine runs 8"):
        estimate.choose_strategy(config_of("full"), 8, 80.0, llama_8b_shape(), sharded)
    replicated = {"strategy": "ddp", "world_size": 2}
    with pytest.raises(ConfigError, match="global batch"):  # DDP too: the batch would change
        estimate.choose_strategy(config_of("lora", "ddp"), 4, 80.0, llama_8b_shape(), replicated)
    with pytest.raises(ConfigError, match="trained with fsdp on 4"):  # one GPU, sharded files
        estimate.choose_strategy(config_of("full"), 1, 80.0, llama_8b_shape(), sharded)
    one = {"strategy": "none", "world_size": 1}
    with pytest.raises(ConfigError, match="trained with none on 1"):  # auto full -> fsdp
        estimate.choose_strategy(config_of("full"), 4, 80.0, llama_8b_shape(), one)
    resumed = estimate.choose_strategy(config_of("lora"), 4, 80.0, llama_8b_shape(), sharded)
    assert (resumed.strategy, resumed.reason) == ("fsdp", "as the checkpoint it resumes from")


@pytest.mark.parametrize(
    ("outcomes", "launcher", "expected"),
    [
        ({0: 0, 1: 0}, 0, 0),
        ({0: 75, 1: 75}, 1, 75),
        ({0: 75}, 1, 1),  # rank 1 died without reporting: not a complete stop
        ({0: 2, 1: 2}, 1, 2),
        ({0: 1, 1: 75}, 1, 1),
        ({}, 1, 1),
        ({0: 0, 1: 0}, 1, 1),  # torchrun itself failed after the ranks
    ],
)
def test_the_job_exit_code_combines_every_rank(
    outcomes: dict[int, int], launcher: int, expected: int
) -> None:
    assert distributed.combined_exit(outcomes, 2, launcher) == expected
