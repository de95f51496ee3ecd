"""The image under SageMaker's training-container contract, through the local harness
(testing/sagemaker_contract.py): no AWS, no Docker, the real `tuning-trainer train` per host.

    python -m pytest trainer-image/tests/test_sagemaker.py

- a managed-spot interruption (SIGTERM) publishes a checkpoint and exits 75; the restarted job
  finds it in /opt/ml/checkpoints (copied in at its start), resumes, never writes into that
  synced folder, completes, leaves the model in /opt/ml/model, and equals the uninterrupted run;
- a job on two hosts (one rank each, torchrun across them over loopback) trains what one
  process trains with the same global batch and publishes final/ once;
- bad input exits 2 with ``bad-input: ...`` as the job's failure reason (never retried);
- the ranks of a job on several hosts get the interface ``resourceconfig.json`` names as
  ``NCCL_SOCKET_IFNAME`` and ``GLOO_SOCKET_IFNAME``, unless the job's environment sets them.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file
from trainer_testlib import assert_same_training, losses, make_run
from tuning_trainer import checkpoint, sagemaker
from tuning_trainer.storage import Store
from tuning_trainer.synthetic import alpaca_examples
from tuning_trainer.train import run_train

from testing.sagemaker_contract import SageMakerJobHarness

RECORDS = alpaca_examples(160, seed=5)
STEPS = 20
# One row per example, so no global batch at an epoch's end is padded (test_distributed.py).
LONG_RUN = {
    "data": {"max_seq_length": 256, "packing": False},
    "training": {"max_steps": STEPS, "save_steps": 100},
}


def wait_for_step(progress: Path, step: int, job: SageMakerJobHarness) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if progress.exists() and json.loads(progress.read_text())["step"] >= step:
            return
        if any(h.process.poll() is not None for h in job.members):
            raise AssertionError("exited early:\n" + job.members[0].output()[-3000:])
        time.sleep(0.01)
    raise AssertionError(f"step {step} not reached")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_managed_spot_interruption_resumes_from_the_copied_checkpoints(tmp_path: Path) -> None:
    config = make_run(tmp_path / "run", LONG_RUN, RECORDS)
    reference = make_run(tmp_path / "reference", LONG_RUN, RECORDS)
    run = tmp_path / "run" / "out"
    progress = tmp_path / "progress.json"
    job = SageMakerJobHarness(
        tmp_path / "job",
        "tl-test-1",
        ["algo-1"],
        checkpoints=run / "checkpoints",
        environment={"TUNING_PROGRESS_FILE": str(progress)},
        hyperparameters={"config": str(config)},  # no $TUNING_CONFIG: the hyperparameter
    )
    try:
        job.start()
        wait_for_step(progress, 3, job)
        job.stop()  # the spot reclaim: SIGTERM
        assert job.wait() == [75], job.members[0].output()[-3000:]
        first = job.members[0]
        assert first.failure.startswith("interrupted: a checkpoint was published")
        [stopped_at] = checkpoint.published_steps(Store(str(run)))
        assert 3 <= stopped_at < STEPS
        assert not any((first.root / "checkpoints").iterdir())  # nothing written there

        job.start()  # SageMaker restarts the job: the checkpoint is copied in first
        copied = job.members[0].root / "checkpoints" / f"step-{stopped_at}"
        listing = sorted(p.relative_to(copied) for p in copied.rglob("*"))
        assert job.wait() == [0], job.members[0].output()[-3000:]
    finally:
        job.kill()

    second = job.members[0]
    assert f"(its copy in {copied})" in second.output()  # resumed without a download
    assert sorted(p.relative_to(copied) for p in copied.rglob("*")) == listing  # untouched
    assert second.failure is None
    assert (second.root / "model" / "adapter_model.safetensors").is_file()
    assert checkpoint.is_final_complete(Store(str(run)))
    assert run_train(str(reference), {}, env={}) == 0
    assert_same_training(run / "final", tmp_path / "reference" / "out" / "final", steps=STEPS)


def test_a_job_on_two_hosts_trains_like_one_process_and_publishes_once(tmp_path: Path) -> None:
    short = {"training": {"max_steps": 6, "save_steps": 3, "per_device_train_batch_size": 2}}
    config = make_run(tmp_path / "run", short, RECORDS)
    reference = make_run(
        tmp_path / "reference",
        {"training": {"max_steps": 6, "save_steps": 3, "per_device_train_batch_size": 4}},
        RECORDS,
    )
    job = SageMakerJobHarness(
        tmp_path / "job",
        "tl-test-2",
        ["localhost", "127.0.0.1"],  # two host names, one loopback; the first is the rendezvous
        checkpoints=tmp_path / "run" / "out" / "checkpoints",
        environment={"TUNING_CONFIG": str(config), "TUNING_RENDEZVOUS_PORT": str(free_port())},
    )
    try:
        job.start()
        codes = job.wait()
    finally:
        job.kill()

    first, second = job.members
    assert codes == [0, 0], first.output()[-2000:] + second.output()[-2000:]
    assert "distributed: ddp on 2 process(es)" in first.output()
    logs = first.output() + second.output()
    assert logs.count("finished: ") == 1  # global rank 0 alone published final/
    assert (first.root / "model" / "adapter_model.safetensors").is_file()
    assert not any((second.root / "model").iterdir())
    run = Store(str(tmp_path / "run" / "out"))
    assert checkpoint.complete_steps(run) == [6, 3]
    assert run_train(str(reference), {}, env={}) == 0
    # Two hosts sum in another order with other thread counts; Adam turns a rounding difference
    # in a near-zero gradient into up to 2 x lr in that weight. Equal losses at every step, and
    # the weights as a whole within 1 %, say the same training happened.
    final, single = tmp_path / "run" / "out" / "final", tmp_path / "reference" / "out" / "final"
    loss_a, loss_b = losses(final), losses(single)
    assert loss_a.keys() == loss_b.keys() == set(range(1, 7))
    for step in loss_a:
        assert loss_a[step] == pytest.approx(loss_b[step], rel=1e-3), step
    a = load_file(final / "adapter_model.safetensors")
    b = load_file(single / "adapter_model.safetensors")
    difference = sum(float((a[n] - b[n]).norm() ** 2) for n in b) ** 0.5
    assert difference / sum(float(b[n].norm() ** 2) for n in b) ** 0.5 < 0.01


def test_bad_input_exits_2_and_says_so_in_the_failure_reason(tmp_path: Path) -> None:
    config = make_run(tmp_path / "run", {"data": {"train": "missing.jsonl"}})
    job = SageMakerJobHarness(
        tmp_path / "job",
        "tl-test-3",
        ["algo-1"],
        checkpoints=tmp_path / "run" / "out" / "checkpoints",
        environment={"TUNING_CONFIG": str(config)},
    )
    job.start()
    assert job.wait(timeout=60) == [2]
    failure = job.members[0].failure
    assert failure.startswith("bad-input: data file not found"), failure
    assert failure.count("\n") == 1


def job_on(tmp_path: Path, hosts: list[str], interface: str = "eth1") -> sagemaker.SageMakerJob:
    """The job as :func:`sagemaker.detect` sees it from the file SageMaker writes on hosts[0]."""
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    described = {"current_host": hosts[0], "hosts": hosts, "network_interface_name": interface}
    (config / "resourceconfig.json").write_text(json.dumps(described))
    job = sagemaker.detect(
        {"TRAINING_JOB_NAME": "tl-test-4", "TUNING_SAGEMAKER_ROOT": str(tmp_path)}
    )
    assert job is not None
    return job


def test_the_ranks_of_a_job_on_two_hosts_use_the_interface_sagemaker_names(
    tmp_path: Path,
) -> None:
    job = job_on(tmp_path, ["algo-1", "algo-2"])

    implied = sagemaker.job_environment(job, {})

    assert implied["NCCL_SOCKET_IFNAME"] == "eth1"
    assert implied["GLOO_SOCKET_IFNAME"] == "eth1"


def test_a_job_on_one_host_leaves_the_interface_to_the_backends(tmp_path: Path) -> None:
    job = job_on(tmp_path, ["algo-1"])

    implied = sagemaker.job_environment(job, {})

    assert "NCCL_SOCKET_IFNAME" not in implied
    assert "GLOO_SOCKET_IFNAME" not in implied


def test_an_interface_set_in_the_jobs_environment_is_kept(tmp_path: Path) -> None:
    job = job_on(tmp_path, ["algo-1", "algo-2"])

    implied = sagemaker.job_environment(job, {"NCCL_SOCKET_IFNAME": "=ens5"})

    assert "NCCL_SOCKET_IFNAME" not in implied  # the user's value stays in the environment
    assert implied["GLOO_SOCKET_IFNAME"] == "eth1"
