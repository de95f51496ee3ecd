"""Precision and attention decisions per GPU generation (DESIGN.md section 6), without a GPU."""

from __future__ import annotations

import pytest
from tuning_trainer.config import RunConfig
from tuning_trainer.errors import ConfigError
from tuning_trainer.model import plan_hardware

V100 = (7, 0)
A10G = (8, 6)


def config(**sections) -> RunConfig:
    document = {"model": {"base_model": "builtin:tiny-llama"}, "data": {"train": "t.jsonl"}}
    for section, values in sections.items():
        document.setdefault(section, {}).update(values)
    return RunConfig.model_validate(document)


def test_auto_on_cpu_is_fp32_with_sdpa() -> None:
    plan = plan_hardware(config(), cuda=False)
    assert (plan.device, plan.precision, plan.attn_implementation) == ("cpu", "fp32", "sdpa")


def test_auto_on_ampere_is_bf16() -> None:
    assert plan_hardware(config(), cuda=True, capability=A10G).precision == "bf16"


def test_auto_on_v100_is_fp16_with_sdpa() -> None:
    plan = plan_hardware(config(), cuda=True, capability=V100)
    assert (plan.precision, plan.attn_implementation) == ("fp16", "sdpa")


def test_bf16_on_v100_is_refused_with_the_capability() -> None:
    with pytest.raises(
        ConfigError, match=r"precision = 'bf16' needs compute capability >= 8\.0; this GPU has 7\.0"
    ):
        plan_hardware(config(training={"precision": "bf16"}), cuda=True, capability=V100)


def test_fp16_on_cpu_is_refused_naming_what_works_there() -> None:
    with pytest.raises(
        ConfigError,
        match=r"precision = 'fp16' needs a CUDA GPU \(loss scaling\); on CPU use 'auto' \(fp32\), "
        r"'fp32' or 'bf16' \(CPU autocast\)",
    ):
        plan_hardware(config(training={"precision": "fp16"}), cuda=False)


def test_bf16_on_cpu_is_allowed() -> None:
    plan = plan_hardware(config(training={"precision": "bf16"}), cuda=False)
    assert (plan.device, plan.precision) == ("cpu", "bf16")


def test_qlora_without_cuda_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"method = 'qlora' needs a CUDA GPU"):
        plan_hardware(config(model={"method": "qlora"}), cuda=False)


def test_flash_attention_without_the_package_or_gpu_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"'flash_attention_2' needs the flash-attn package"):
        plan_hardware(config(model={"attn_implementation": "flash_attention_2"}), cuda=False)
