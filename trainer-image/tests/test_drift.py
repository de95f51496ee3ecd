"""No silent drift: resuming or re-running a run with a changed config (tuning_trainer.drift)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import yaml
from trainer_testlib import BASE_CONFIG, make_run
from tuning_trainer import checkpoint, drift, storage
from tuning_trainer.cli import main
from tuning_trainer.config import RunConfig
from tuning_trainer.train import run_train

STEPS = 4  # checkpoints at steps 2 and 4, then final/


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished run that each test copies, so only a few tests train at all."""
    folder = tmp_path_factory.mktemp("trained")
    config = make_run(folder, {"training": {"max_steps": STEPS, "save_steps": 2}})
    assert run_train(str(config), {}, env={}) == 0
    return folder


def copy_run(template: Path, target: Path, finished: bool) -> Path:
    """The template run under ``target``, its saved configs pointing there; returns run.yaml."""
    shutil.copytree(template, target, dirs_exist_ok=True)
    for saved in (target / "out").rglob("config.yaml"):
        saved.write_text(saved.read_text().replace(str(template), str(target)))
    if not finished:
        shutil.rmtree(target / "out" / "final")  # as if interrupted after the step-4 checkpoint
    return target / "run.yaml"


def train_cli(capsys: pytest.CaptureFixture[str], config: Path, *flags: str) -> tuple[int, str]:
    code = main(["train", "--config", str(config), *flags])
    return code, capsys.readouterr().err


def saved_training(run: Path) -> dict:
    return yaml.safe_load((run / "out" / "config.yaml").read_text())["training"]


def test_resume_with_a_new_learning_rate_exits_2_with_the_diff_and_keeps_config_yaml(
    template: Path, tmp_path: Path, capsys
) -> None:
    config = copy_run(template, tmp_path, finished=False)
    saved_before = (tmp_path / "out" / "config.yaml").read_bytes()

    code, err = train_cli(capsys, config, "--learning-rate", "0.02")

    assert code == 2
    assert "training.learning_rate: 0.01 -> 0.02  (the checkpoint's optimizer" in err
    assert "start a new run: another output.uri" in err
    assert "Traceback" not in err
    assert (tmp_path / "out" / "config.yaml").read_bytes() == saved_before
    assert not (tmp_path / "out" / "final").exists()


def test_a_new_lora_rank_exits_2_before_the_checkpoint_is_loaded(
    template: Path, tmp_path: Path, capsys
) -> None:
    config = copy_run(template, tmp_path, finished=False)

    code, err = train_cli(capsys, config, "--set", "lora.r=4")

    assert code == 2
    assert "lora.r: 8 -> 4  (the checkpoint's adapter was trained with the old LoRA" in err
    assert "size mismatch" not in err and "Traceback" not in err


def test_a_finished_run_with_another_config_exits_2_instead_of_nothing_to_do(
    template: Path, tmp_path: Path, capsys
) -> None:
    config = copy_run(template, tmp_path, finished=True)
    manifest = (tmp_path / "out" / "final" / "manifest.json").read_bytes()

    code, err = train_cli(capsys, config, "--set", "training.seed=1")

    assert code == 2
    assert "a finished run is never trained again" in err
    assert "training.seed: 0 -> 1" in err
    assert (tmp_path / "out" / "final" / "manifest.json").read_bytes() == manifest


def test_a_finished_run_is_not_extended_even_with_the_flag(
    template: Path, tmp_path: Path, capsys
) -> None:
    config = copy_run(template, tmp_path, finished=True)

    code, err = train_cli(capsys, config, "--max-steps", "6", "--allow-config-change")

    assert code == 2
    assert "training.max_steps: 4 -> 6  (a finished run is not extended)" in err


def test_a_harmless_change_on_a_finished_run_is_logged_and_not_recorded(
    template: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = copy_run(template, tmp_path, finished=True)
    saved_before = (tmp_path / "out" / "config.yaml").read_bytes()

    with caplog.at_level(logging.WARNING, logger="tuning_trainer.drift"):
        code = run_train(str(config), {"training.logging_steps": 5}, env={})

    assert code == 0
    assert "training.logging_steps: 1 -> 5" in caplog.text
    assert "not recorded: the run is finished" in caplog.text
    assert (tmp_path / "out" / "config.yaml").read_bytes() == saved_before


def test_a_harmless_change_on_resume_is_allowed_logged_and_recorded(
    template: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = copy_run(template, tmp_path, finished=False)
    overrides = {"training.logging_steps": 2, "training.save_total_limit": 1}

    with caplog.at_level(logging.WARNING, logger="tuning_trainer.drift"):
        code = run_train(str(config), overrides, env={})

    assert code == 0
    assert "harmless keys" in caplog.text
    assert "training.logging_steps: 1 -> 2" in caplog.text
    assert "training.save_total_limit: 2 -> 1" in caplog.text
    assert saved_training(tmp_path)["logging_steps"] == 2
    assert checkpoint.is_final_complete(storage.Store(str(tmp_path / "out")))


def test_a_new_max_steps_without_the_flag_exits_2_naming_the_flag(
    template: Path, tmp_path: Path, capsys
) -> None:
    config = copy_run(template, tmp_path, finished=False)

    code, err = train_cli(capsys, config, "--max-steps", "6")

    assert code == 2
    assert "training.max_steps: 4 -> 6  (allowed with --allow-config-change)" in err
    assert saved_training(tmp_path)["max_steps"] == STEPS


def test_allow_config_change_extends_max_steps_and_records_it(
    template: Path, tmp_path: Path, capsys, caplog: pytest.LogCaptureFixture
) -> None:
    config = copy_run(template, tmp_path, finished=False)

    with caplog.at_level(logging.WARNING, logger="tuning_trainer.drift"):
        code, err = train_cli(capsys, config, "--max-steps", "6", "--allow-config-change")

    assert code == 0, err
    assert "--allow-config-change: continuing this run" in caplog.text
    assert "training.max_steps: 4 -> 6" in caplog.text
    assert saved_training(tmp_path)["max_steps"] == 6
    final = checkpoint.read_manifest(storage.Store(str(tmp_path / "out")), checkpoint.FINAL)
    assert final is not None and final["step"] == 6


def test_a_refused_change_with_the_flag_is_still_refused_with_its_reason(
    template: Path, tmp_path: Path, capsys
) -> None:
    config = copy_run(template, tmp_path, finished=False)

    code, err = train_cli(
        capsys,
        config,
        "--max-steps",
        "6",
        "--set",
        "training.lr_scheduler_type=cosine",
        "--allow-config-change",
    )

    assert code == 2
    assert (
        "training.lr_scheduler_type: constant -> cosine  (refused even with "
        "--allow-config-change: the checkpoint's optimizer and learning-rate scheduler" in err
    )
    assert "training.max_steps: 4 -> 6  (allowed by the flag)" in err
    assert saved_training(tmp_path)["max_steps"] == STEPS


def test_a_checkpoint_folder_given_to_resume_from_is_checked_too(
    template: Path, tmp_path: Path, capsys
) -> None:
    # a fresh run folder, resumed from another run's checkpoint trained at another rank
    config = make_run(tmp_path, {"training": {"max_steps": STEPS}, "lora": {"r": 4}})
    step = template / "out" / "checkpoints" / "step-2"

    code, err = train_cli(capsys, config, "--resume-from-checkpoint", str(step))

    assert code == 2
    assert f"({step}/config.yaml)" in err and "lora.r: 8 -> 4" in err


def test_a_run_without_a_checkpoint_takes_the_new_config(tmp_path: Path) -> None:
    # a config.yaml but nothing trained (stopped before the first checkpoint): nothing to protect
    config = make_run(tmp_path, {"training": {"max_steps": 2}})
    old = RunConfig.model_validate({**BASE_CONFIG, "data": {"train": "elsewhere.jsonl"}})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "config.yaml").write_text(old.to_yaml())

    assert run_train(str(config), {}, env={}) == 0
    assert saved_training(tmp_path)["max_steps"] == 2


# --- the comparison itself --------------------------------------------------------------------


def test_a_key_an_older_saved_config_lacks_counts_as_its_default() -> None:
    config = RunConfig.model_validate(BASE_CONFIG)
    saved = config.model_dump(mode="json")
    del saved["training"]["max_grad_norm"]  # as if written before the key existed

    assert drift.compare(drift.parse_saved(yaml.safe_dump(saved)), config) == []


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("training.logging_steps", "harmless"),
        ("interruption.deadline_seconds", "harmless"),
        ("output.staging_dir", "harmless"),
        ("training.num_train_epochs", "allowed"),
        ("data.eval", "allowed"),
        ("data.chat_template", "refused"),
        ("data.max_seq_length", "refused"),
        ("model.revision", "refused"),
        ("training.per_device_train_batch_size", "refused"),
        ("training.some_future_key", "refused"),
    ],
)
def test_each_key_is_sorted_into_its_kind(key: str, kind: str) -> None:
    assert drift.Change(key, 1, 2).kind == kind
