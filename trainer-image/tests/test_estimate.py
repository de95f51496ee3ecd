"""`validate --instance-type`: a labelled time and cost estimate, and the numbers behind it.

.venv/bin/python -m pytest trainer-image/tests/test_estimate.py -q
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from trainer_testlib import llama_8b_shape, make_run
from tuning_trainer import estimate, validate
from tuning_trainer.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_validate_prints_an_estimate_labelled_as_such_with_its_derivation(
    tmp_path: Path, capsys
) -> None:
    config = make_run(tmp_path)

    code, out, _ = run_cli(
        capsys,
        "validate",
        "--config",
        str(config),
        "--instance-type",
        "g5.2xlarge",
        "--region",
        "us-east-1",
    )

    assert code == 0
    assert "estimate g5.2xlarge in us-east-1: an ESTIMATE, not a measurement or a quote" in out
    assert "NVIDIA A10G (22.35 GiB), trains in bf16" in out
    assert "to train = " in out and "per epoch" in out
    assert "4 x N + 12 x L x w x s" in out
    assert "ASSUMED 25-50 % of the peak for lora" in out
    assert "ASSUMED 5-15 min startup" in out
    assert "USD on demand at 1.212 USD/h (lib/pricing.ts, us-east-1" in out
    assert "spot: at most that" in out
    assert "nothing was trained" in out


def test_validate_without_an_instance_type_prints_no_time_or_cost(tmp_path: Path, capsys) -> None:
    code, out, _ = run_cli(capsys, "validate", "--config", str(make_run(tmp_path)))

    assert code == 0
    assert "estimate " not in out and "USD" not in out
    assert "parallel none on 1 process(es) (this machine): one process" in out  # a CPU here
    assert "global batch 4 rows" in out


def test_validate_on_a_multi_gpu_type_prints_the_strategy_batch_and_memory(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validate.model, "base_shape", lambda config: llama_8b_shape())
    config = make_run(tmp_path, {"model": {"method": "full"}})
    code, out, _ = run_cli(
        capsys, "validate", "--config", str(config), "--instance-type", "p4d.24xlarge"
    )

    assert code == 0, out
    assert "parallel fsdp on 8 process(es) (p4d.24xlarge): a full fine-tune" in out
    assert "global batch 32 rows of up to 128 tokens" in out  # 4 x 1 x 8
    assert "learning_rate 0.01 is used as given (not rescaled)" in out
    assert re.search(r"memory per GPU, ESTIMATED: ~[\d.]+ GiB = weights .* of 40.0 GiB: fits", out)
    assert "(40 GiB)" in out  # p4d's A100 has 40 GB, as EC2 reports it
    # 8B full: FSDP over 8 GPUs only; never on one GPU
    fits = out.split("fits on", 1)[1].split("\n", 1)[0]
    assert "g5 1-GPU sizes" not in fits and "p4d.24xlarge (8 GPUs, fsdp)" in fits


def test_an_unknown_instance_type_exits_2_before_any_work_naming_the_allowed_ones(
    tmp_path: Path, capsys
) -> None:
    config = make_run(tmp_path)

    code, out, err = run_cli(
        capsys, "validate", "--config", str(config), "--instance-type", "p3.2xlarge"
    )

    assert code == 2
    assert "--instance-type 'p3.2xlarge': not an instance type tuning-lab runs on" in err
    assert "allowed: g4dn.xlarge, " in err and "g6e.16xlarge" in err
    assert out == ""  # refused before the config and data were read


def test_a_region_without_a_price_table_gets_the_marked_up_us_east_1_price(
    tmp_path: Path, capsys
) -> None:
    config = make_run(tmp_path)

    _, out, _ = run_cli(
        capsys,
        "validate",
        "--config",
        str(config),
        "--instance-type",
        "g5.2xlarge",
        "--region",
        "me-south-1",
    )

    assert estimate.on_demand_price("g5.2xlarge", "me-south-1") == (round(1.212 * 1.75, 4), True)
    assert "at 2.121 USD/h (us-east-1 x 1.75: lib/pricing.ts has no me-south-1 price" in out


def test_time_is_tokens_over_assumed_speed_plus_startup_and_cost_is_time_times_price() -> None:
    shape = estimate.ModelShape(
        parameters=8_000_000_000,
        matmul_weights=7_500_000_000,
        layers=32,
        query_width=4096,
        output_weights=525_336_576,
    )

    e = estimate.estimate_run(
        "g5.2xlarge", "us-east-1", shape, "lora", "auto", False, tokens=1e8, pairs_per_token=0
    )

    flops = 4 * 7.5e9  # LoRA: forward and input gradient of every matmul weight, no attention
    assert e.flops_per_token == flops
    assert e.tokens_per_second == pytest.approx((0.25 * 62.5e12 / flops, 0.50 * 62.5e12 / flops))
    assert e.train_hours == pytest.approx(
        (1e8 / e.tokens_per_second[1] / 3600, 1e8 / e.tokens_per_second[0] / 3600)
    )
    assert e.total_hours == pytest.approx((e.train_hours[0] + 5 / 60, e.train_hours[1] + 15 / 60))
    assert e.usd == pytest.approx((e.total_hours[0] * 1.212, e.total_hours[1] * 1.212))


def test_gradient_checkpointing_adds_the_forward_again() -> None:
    shape = llama_8b_shape()

    plain = estimate.estimate_run("g6e.xlarge", "us-east-1", shape, "lora", "auto", False, 1e6, 100)
    checkpointed = estimate.estimate_run(
        "g6e.xlarge", "us-east-1", shape, "lora", "auto", True, 1e6, 100
    )

    recompute = 2 * shape.matmul_weights + 4 * 32 * 4096 * 100
    assert checkpointed.flops_per_token == pytest.approx(plain.flops_per_token + recompute)


def test_llama_31_8b_counts_its_published_weights_on_the_meta_device() -> None:
    shape = llama_8b_shape()

    assert shape.parameters == 8_030_261_248
    assert shape.matmul_weights == 8_030_261_248 - 128_256 * 4096 - 65 * 4096  # no embed, norms
    assert (shape.layers, shape.query_width, shape.output_weights) == (32, 4096, 128_256 * 4096)


def test_causal_pairs_count_each_documents_keys_only() -> None:
    assert estimate.causal_pairs_per_token([1, 3]) == (1 + 6) / 4


def test_t4_instances_train_in_fp16_and_use_its_fp16_peak() -> None:
    shape = llama_8b_shape()

    e = estimate.estimate_run("g4dn.xlarge", "us-east-1", shape, "qlora", "auto", False, 1e6, 0)

    assert e.precision == "fp16"
    assert e.tokens_per_second[1] == pytest.approx(0.35 * 65e12 / (4 * shape.matmul_weights))


def test_every_instance_type_the_stack_accepts_has_its_gpu_described() -> None:
    types = estimate.supported_instance_types()

    gpus = {t: estimate.check_instance_type(t).name for t in types}

    assert len(types) >= 20 and gpus["g5.xlarge"] == "NVIDIA A10G"
    assert gpus["g4dn.xlarge"] == "NVIDIA T4" and gpus["g6e.xlarge"] == "NVIDIA L40S"


@pytest.mark.parametrize(
    ("device_name", "gpu"),
    [
        ("NVIDIA H200", "NVIDIA H200 SXM"),
        ("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM"),
        ("NVIDIA H100 PCIe", "NVIDIA H100 PCIe"),
        ("NVIDIA A100-SXM4-80GB", "NVIDIA A100"),
        ("NVIDIA A10G", "NVIDIA A10G"),
        ("NVIDIA L4", "NVIDIA L4"),
        ("NVIDIA L40S", "NVIDIA L40S"),
        ("Tesla T4", "NVIDIA T4"),
        ("Tesla V100-SXM2-16GB", "NVIDIA V100 SXM2"),
        ("Tesla V100-PCIE-32GB", "NVIDIA V100 PCIe"),
    ],
)
def test_device_names_find_their_datasheet_peak(device_name: str, gpu: str) -> None:
    assert estimate.gpu_for_device_name(device_name).name == gpu


@pytest.mark.parametrize("device_name", ["NVIDIA H100 NVL", "NVIDIA L40", "NVIDIA B200"])
def test_gpus_without_a_known_peak_get_none_rather_than_a_wrong_one(device_name: str) -> None:
    assert estimate.gpu_for_device_name(device_name) is None


def test_a_model_whose_weights_do_not_fit_the_gpu_is_warned_about(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validate.model, "base_shape", lambda config: llama_8b_shape())
    config = make_run(tmp_path)

    code, out, _ = run_cli(
        capsys, "validate", "--config", str(config), "--instance-type", "g4dn.xlarge"
    )

    assert code == 0
    assert "memory base weights ~15.0 GiB (16-bit) of the GPU's 16 GiB" in out
    assert "WARNING: the weights alone need ~15 GiB of the NVIDIA T4's 16 GiB" in out
    assert "use model.method qlora" in out
