"""The GPU check's side that runs without a GPU: it refuses plainly, and its dry run builds the
configs (the 8B one on the meta device only) and prints a plan that fits its time budget.

    .venv/bin/python -m pytest trainer-image/tests/test_gpu_check.py -q
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from trainer_testlib import REPO
from tuning_trainer import model

BENCH = REPO / "trainer-image" / "bench"


def load_gpu_check(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", BENCH / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def gpu_check(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # the check registers its shapes as builtin models: keep that out of the other tests
    monkeypatch.setattr(model, "BUILTIN_MODELS", dict(model.BUILTIN_MODELS))
    return load_gpu_check(monkeypatch)


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            found[name.strip().lower()] = version.strip()
    return found


def test_without_a_gpu_it_exits_2_saying_it_needs_one(
    gpu_check: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    code = gpu_check.main(["--work", str(tmp_path)])

    captured = capsys.readouterr()
    assert code == 2
    assert "needs a CUDA GPU" in captured.err and "--dry-run" in captured.err
    assert captured.out == ""


def test_dry_run_prints_both_models_every_row_and_an_estimate_under_8_minutes(
    gpu_check: ModuleType, capsys, tmp_path: Path
) -> None:
    code = gpu_check.main(["--dry-run", "--work", str(tmp_path)])

    out = capsys.readouterr().out
    assert code == 0
    assert "Llama-3.2-1B shape" in out and "1.24B parameters" in out
    assert "Llama-3.1-8B shape" in out and "8.03B parameters, 7.50B in matrix" in out
    for key in ("1b-sdpa", "1b-fa2", "1b-qlora", "1b-fp16", "1b-mask", "1b-own-loss"):
        assert f"| {key} |" in out
    assert "| 1b-trl-bfd |" in out and "| 1b-trl-bfd-rows |" in out
    for key in ("8b-sdpa", "8b-fa2", "8b-qlora", "8b-fp16"):
        assert f"| {key} |" in out
    minutes = float(re.search(r"Estimated total: ([\d.]+) min", out).group(1))
    assert 0 < minutes < 8
    assert "k*N + 12*L*w*s" in out  # the FLOPs formula is stated


def test_dry_run_writes_each_rows_run_config_as_the_trainer_loads_it(
    gpu_check: ModuleType, tmp_path: Path
) -> None:
    from tuning_trainer.config import load_config

    gpu_check.main(["--dry-run", "--sizes", "1b", "--work", str(tmp_path)])

    configs = {
        row.key: load_config(str(tmp_path / row.key / f"{row.key}.yaml"), env={}).config
        for row in gpu_check.rows_for(["1b"])
        if row.trainer == "tuning"
    }
    assert configs["1b-sdpa"].model.base_model == "builtin:gpu-check-llama-1b"
    assert configs["1b-fa2"].model.attn_implementation == "flash_attention_2"
    assert configs["1b-fp16"].training.precision == "fp16"
    assert configs["1b-qlora"].model.method == "qlora"
    assert configs["1b-qlora"].model.base_model == str(tmp_path.resolve() / "random-1b")
    assert {c.training.max_steps for c in configs.values()} == {6}  # N + 1, resume at N = 5
    assert {c.training.save_steps for c in configs.values()} == {5}


def test_the_check_pins_torch_and_trl_as_the_development_lock_does() -> None:
    check = pins(BENCH / "gpu-check-requirements.txt")
    development = pins(REPO / "requirements.lock")

    assert check == {"torch": development["torch"], "trl": development["trl"]}
    assert "-r ../requirements.lock" in (BENCH / "gpu-check-requirements.txt").read_text()
