"""Run config: schema file, precedence, path resolution and every validation message."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import boto3
import jsonschema
import pytest
import yaml
from trainer_testlib import REPO, write_yaml
from tuning_trainer.cli import main
from tuning_trainer.config import load_config
from tuning_trainer.errors import ConfigError

SCHEMA_PATH = REPO / "trainer-image" / "run-config.schema.json"
MINIMAL = "model:\n  base_model: builtin:tiny-llama\ndata:\n  train: train.jsonl\n"


def _config(tmp_path: Path, text: str = MINIMAL) -> Path:
    return write_yaml(tmp_path / "run.yaml", text)


def test_committed_schema_equals_what_the_schema_command_prints() -> None:
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert main(["schema"]) == 0
    assert SCHEMA_PATH.read_text() == printed.getvalue(), (
        "run-config.schema.json is stale: run `tuning-trainer schema > "
        "trainer-image/run-config.schema.json`"
    )


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_example_configs_pass_both_the_json_schema_and_the_model(name: str) -> None:
    path = REPO / "configs" / name
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(path.read_text()))
    load_config(str(path), env={})


def test_json_schema_rejects_unknown_keys_like_the_model() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    document = yaml.safe_load(MINIMAL)
    document["training"] = {"learning_rat": 0.1}
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(document))
    assert any("learning_rat" in error.message for error in errors)


def test_env_overrides_yaml_and_cli_overrides_env(tmp_path: Path) -> None:
    path = _config(
        tmp_path, MINIMAL + "training:\n  learning_rate: 0.1\n  seed: 7\nlora:\n  r: 4\n"
    )
    env = {"LLM_TRAINING__LEARNING_RATE": "2e-4", "LLM_LORA__R": "32"}

    loaded = load_config(str(path), env=env, overrides={"lora.r": 64})

    assert loaded.config.training.learning_rate == pytest.approx(2e-4)  # env beat YAML
    assert loaded.config.lora.r == 64  # CLI beat env
    assert loaded.config.training.seed == 7  # YAML beat the default
    assert loaded.config.training.logging_steps == 10  # the default


def test_env_list_values_are_read_as_yaml(tmp_path: Path) -> None:
    env = {"LLM_LORA__TARGET_MODULES": "[q_proj, v_proj]"}
    assert load_config(str(_config(tmp_path)), env=env).config.lora.target_modules == [
        "q_proj",
        "v_proj",
    ]


def test_unknown_yaml_key_is_rejected_with_its_path_and_the_allowed_keys(tmp_path: Path) -> None:
    path = _config(tmp_path, MINIMAL + "training:\n  learning_rat: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path), env={})
    message = str(err.value)
    assert "training.learning_rat: unknown key" in message
    assert str(path) in message
    assert "learning_rate" in message  # the allowed keys are listed


def test_unknown_section_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"trainng: unknown key"):
        load_config(str(_config(tmp_path, MINIMAL + "trainng:\n  seed: 1\n")), env={})


def test_bad_env_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(str(_config(tmp_path)), env={"LLM_TRAINING__LEARNING_RATE": "fast"})
    assert "environment variable LLM_TRAINING__LEARNING_RATE" in str(err.value)
    assert "training.learning_rate = 'fast'" in str(err.value)


def test_unknown_env_key_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"lora\.rank: unknown key \(from environment variable LLM_LORA__RANK\)"
    ):
        load_config(str(_config(tmp_path)), env={"LLM_LORA__RANK": "8"})


def test_out_of_range_value_names_field_value_and_limit(tmp_path: Path) -> None:
    path = _config(tmp_path, MINIMAL + "lora:\n  dropout: 1.5\n")
    with pytest.raises(ConfigError, match=r"lora\.dropout = 1\.5 .*less than 1"):
        load_config(str(path), env={})


def test_bad_enum_lists_the_allowed_values(tmp_path: Path) -> None:
    path = _config(tmp_path, MINIMAL.replace("model:\n", "model:\n  method: dora\n"))
    with pytest.raises(ConfigError, match=r"model\.method = 'dora'.*'lora', 'qlora' or 'full'"):
        load_config(str(path), env={})


def test_missing_required_field_is_named(tmp_path: Path) -> None:
    path = _config(tmp_path, "model:\n  base_model: builtin:tiny-llama\ndata: {}\n")
    with pytest.raises(ConfigError, match=r"data\.train: required but missing"):
        load_config(str(path), env={})


def test_cli_flag_value_error_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"command line \(training\.max_steps\)"):
        load_config(str(_config(tmp_path)), env={}, overrides={"training.max_steps": 0})


def test_eval_steps_without_eval_file_is_rejected(tmp_path: Path) -> None:
    path = _config(tmp_path, MINIMAL + "training:\n  eval_steps: 5\n")
    with pytest.raises(ConfigError, match=r"eval_steps is set but data\.eval is not"):
        load_config(str(path), env={})


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = _config(tmp_path, MINIMAL + "training: [unclosed\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+: not valid YAML"):
        load_config(str(path), env={})


def test_duplicate_top_level_section_names_file_key_and_both_lines(tmp_path: Path) -> None:
    text = MINIMAL + "training:\n  learning_rate: 0.1\nlora:\n  r: 4\ntraining:\n  seed: 7\n"
    path = _config(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_config(str(path), env={})
    assert str(raised.value).startswith(
        f"{path}:9: duplicate key 'training' at lines 5 and 9: YAML would silently keep only "
        "the last one"
    )
    assert "\n" not in str(raised.value)


def test_duplicate_nested_key_names_its_path_and_both_lines(tmp_path: Path) -> None:
    text = MINIMAL + "training:\n  learning_rate: 0.1\n  seed: 7\n  learning_rate: 0.2\n"
    path = _config(tmp_path, text)
    with pytest.raises(
        ConfigError, match=rf"{path}:8: duplicate key 'training\.learning_rate' at lines 6 and 8"
    ):
        load_config(str(path), env={})


def test_duplicate_key_in_a_flow_mapping_on_one_line_is_refused(tmp_path: Path) -> None:
    path = _config(tmp_path, MINIMAL + "lora: {r: 4, alpha: 8, r: 16}\n")
    with pytest.raises(ConfigError, match=r":5: duplicate key 'lora\.r' at lines 5 and 5"):
        load_config(str(path), env={})


def test_a_key_merged_in_with_yaml_merge_may_still_be_overridden(tmp_path: Path) -> None:
    path = _config(tmp_path, MINIMAL + "lora:\n  <<: {r: 2, alpha: 8}\n  r: 4\n")
    lora = load_config(str(path), env={}).config.lora
    assert (lora.r, lora.alpha) == (4, 8)


def test_train_exits_2_on_a_duplicate_key_with_one_line(tmp_path: Path, capsys) -> None:
    path = _config(tmp_path, MINIMAL + "training:\n  seed: 1\ntraining:\n  seed: 2\n")
    code = main(["train", "--config", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        f"tuning-trainer: error: {path}:7: duplicate key 'training' at lines 5 and 7: YAML "
        "would silently keep only the last one; give each key once\n"
    )


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.yaml"):
        load_config(str(tmp_path / "nope.yaml"), env={})


def test_relative_data_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    config = load_config(str(_config(tmp_path)), env={}).config
    assert config.data.train == str(tmp_path / "train.jsonl")
    assert config.output.uri == str(tmp_path / "outputs")


def test_relative_data_paths_resolve_against_data_root_from_env(tmp_path: Path) -> None:
    env = {"LLM_DATA__ROOT": "s3://data-bucket/", "LLM_OUTPUT__URI": "s3://out/runs/r1"}
    config = load_config(str(_config(tmp_path)), env=env).config
    assert config.data.train == "s3://data-bucket/train.jsonl"
    assert config.output.uri == "s3://out/runs/r1"


def test_config_read_from_s3_resolves_data_against_its_prefix(moto) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="cfg")
    s3.put_object(Bucket="cfg", Key="configs/team/run.yaml", Body=MINIMAL.encode())

    config = load_config("s3://cfg/configs/team/run.yaml", env={}).config

    assert config.data.train == "s3://cfg/configs/team/train.jsonl"
