"""The command line: validate's report, and exit 2 with one clear message for every bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from trainer_testlib import make_run
from tuning_trainer.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_validate_reports_statistics_and_trains_nothing(tmp_path: Path, capsys) -> None:
    config = make_run(tmp_path, {"data": {"max_seq_length": 64}})

    code, out, _ = run_cli(capsys, "validate", "--config", str(config))

    assert code == 0
    assert "format alpaca: 48 examples (48 instruction)" in out
    assert "truncated: 0 of 48 examples (0.0 %) longer than max_seq_length 64" in out
    assert "tokens per example p50 " in out and "p95" in out
    assert "% without packing" in out and "% with packing" in out
    assert "optimizer steps per epoch" in out
    assert "nothing was trained" in out
    assert not (tmp_path / "out").exists()


def test_validate_counts_examples_per_shape(tmp_path: Path, capsys) -> None:
    chat = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    call = {"type": "function", "function": {"name": "f", "arguments": {}}}
    with_tool = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "content": "1"},
        {"role": "assistant", "content": "b"},
    ]
    records = [{"messages": chat}, {"messages": chat}, {"messages": with_tool}]
    template = (Path(__file__).parent / "fixtures" / "qwen2.5-tools.jinja").read_text()
    changes = {"data": {"chat_template": template, "max_seq_length": 512}}
    config = make_run(tmp_path, changes, records=records)

    code, out, _ = run_cli(capsys, "validate", "--config", str(config))

    assert code == 0
    assert "format messages: 3 examples (2 conversation, 1 conversation with tools)" in out


def test_validate_counts_truncated_examples_within_the_threshold(tmp_path: Path, capsys) -> None:
    records = [{"text": "x" * 100}, {"text": "short"}]
    changes = {"data": {"max_seq_length": 32, "max_truncated_fraction": 0.5}}
    config = make_run(tmp_path, changes, records=records)

    code, out, _ = run_cli(capsys, "validate", "--config", str(config))

    assert code == 0
    assert (
        "truncated: 1 of 2 examples (50.0 %) longer than max_seq_length 32, 0 of them dropped "
        "(no target left); tokens per example p50 54, p95 101, max 101"
    ) in out


@pytest.mark.parametrize("command", ["validate", "train"])
def test_heavy_truncation_exits_2_after_reporting_it(tmp_path: Path, capsys, command) -> None:
    config = make_run(tmp_path, {"data": {"max_seq_length": 32}})  # examples are 44-63 tokens

    code, out, err = run_cli(capsys, command, "--config", str(config))

    assert code == 2
    assert (
        f"{tmp_path}/train.jsonl:1: 48 of 48 examples (100.0 %) are longer than "
        "data.max_seq_length 32"
    ) in err
    assert "raise data.max_seq_length to 63" in err and "Traceback" not in err
    if command == "validate":
        assert "truncated: 48 of 48 examples (100.0 %)" in out
    assert not (tmp_path / "out" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_truncated_fraction": 1.5}, "data.max_truncated_fraction = 1.5"),
        ({"tools": [{"type": "function"}]}, "data.tools"),
        ({"tools": "get_weather"}, "data.tools"),
    ],
    ids=["fraction-above-1", "tool-without-name", "tools-not-a-list"],
)
def test_bad_data_setting_exits_2_naming_the_key(tmp_path: Path, capsys, changes, message) -> None:
    config = make_run(tmp_path, {"data": changes})
    code, _, err = run_cli(capsys, "validate", "--config", str(config))
    assert code == 2
    assert message in err


@pytest.mark.parametrize(
    ("changes", "env", "message"),
    [
        ({"training": {"learning_rat": 0.1}}, {}, "training.learning_rat: unknown key"),
        ({"lora": {"r": 0}}, {}, "lora.r = 0"),
        ({"model": {"method": "qlora"}}, {}, "method = 'qlora' needs a CUDA GPU"),
        ({"training": {"precision": "fp16"}}, {}, "precision = 'fp16' needs a CUDA GPU"),
        ({"data": {"train": "missing.jsonl"}}, {}, "data file not found:"),
        ({"model": {"base_model": "/no/such/model"}}, {}, "no such model folder"),
        ({"model": {"base_model": "builtin:huge-llama"}}, {}, "unknown builtin; allowed:"),
        ({}, {"LLM_TRAINING__MAX_STEPS": "many"}, "environment variable LLM_TRAINING__MAX_STEPS"),
    ],
    ids=[
        "unknown-key",
        "out-of-range",
        "qlora-cpu",
        "fp16-cpu",
        "no-data",
        "no-model",
        "bad-builtin",
        "bad-env",
    ],
)
def test_bad_input_exits_2_with_a_message_naming_it(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, changes, env, message
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = make_run(tmp_path, changes)

    code, _, err = run_cli(capsys, "train", "--config", str(config))

    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_bad_data_line_exits_2_naming_file_and_line(tmp_path: Path, capsys) -> None:
    config = make_run(tmp_path)
    with open(tmp_path / "train.jsonl", "a") as handle:
        handle.write("{not json}\n")
    code, _, err = run_cli(capsys, "train", "--config", str(config))
    assert code == 2
    assert f"{tmp_path}/train.jsonl:49: malformed JSON" in err


def test_flags_override_the_environment(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("LLM_TRAINING__MAX_STEPS", "500")
    config = make_run(tmp_path)
    code, out, _ = run_cli(
        capsys,
        "validate",
        "--config",
        str(config),
        "--max-steps",
        "7",
        "--set",
        "training.gradient_accumulation_steps=2",
    )
    assert code == 0
    assert "7 steps (max_steps 7" in out
    assert "/ 8 rows per step" in out


@pytest.mark.parametrize(
    ("hub", "why"),
    [
        ({"HF_HUB_OFFLINE": "1"}, "(HF_HUB_OFFLINE is set)"),
        ({"HF_ENDPOINT": "http://127.0.0.1:9"}, "Connection refused"),  # nothing listens on 9
    ],
    ids=["offline", "hub-unreachable"],
)
def test_validate_of_an_unreachable_hub_model_is_one_line_saying_how_to_stage_it(
    tmp_path: Path, hub: dict[str, str], why: str
) -> None:
    """As a laptop without the Hub runs it: a process, since the Hub client reads its
    environment once at import."""
    config = make_run(tmp_path, {"model": {"base_model": "acme/not-cached-7b"}})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(hub, HF_HOME=str(tmp_path / "hf-home"))  # an empty Hub cache

    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tuning_trainer", "validate", "--config", str(config)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr  # one line, no traceback
    assert "model.base_model = 'acme/not-cached-7b': the Hugging Face Hub" in done.stderr
    assert why in done.stderr
    assert "stage it as an s3:// prefix" in done.stderr and "or a local folder" in done.stderr
    assert time.monotonic() - started < 30  # the Hub client alone retries for 60 s
