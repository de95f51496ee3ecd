"""Data: label masks per format (golden), EOS training, and every bad-input message."""

from __future__ import annotations

from pathlib import Path

import pytest
from trainer_testlib import write_jsonl
from tuning_trainer.collator import RowCollator
from tuning_trainer.data import (
    IGNORE_INDEX,
    Row,
    read_dataset,
    tokenize_example,
)
from tuning_trainer.errors import DataError
from tuning_trainer.model import builtin_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return builtin_tokenizer()


def trained_text(tokenizer, record, fmt, completion_only=True) -> str:
    """The text of the labelled positions, with '|' between separate labelled spans."""
    ids, labels = tokenize_example(record, fmt, tokenizer, completion_only)
    assert len(ids) == len(labels)
    pieces, current = [], []
    for token, label in zip(ids, labels, strict=True):
        if label == IGNORE_INDEX:
            if current:
                pieces.append(current)
                current = []
            continue
        assert label == token  # a label is always the token at its own position
        current.append(token)
    if current:
        pieces.append(current)
    return "|".join(tokenizer.decode(p) for p in pieces)


def test_alpaca_trains_only_the_output_and_its_eos(tokenizer) -> None:
    record = {"instruction": "Say hi.", "input": "politely", "output": "Hello there."}
    assert trained_text(tokenizer, record, "alpaca") == "Hello there.</s>"


def test_messages_train_every_assistant_turn_and_nothing_else(tokenizer) -> None:
    record = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "3+3?"},
            {"role": "assistant", "content": "6"},
        ]
    }
    assert trained_text(tokenizer, record, "messages") == "4</s>|6</s>"


def test_prompt_completion_trains_only_the_completion_and_eos(tokenizer) -> None:
    record = {"prompt": "The capital of France is", "completion": " Paris."}
    assert trained_text(tokenizer, record, "prompt_completion") == " Paris.</s>"


def test_text_trains_every_token_after_the_first(tokenizer) -> None:
    assert trained_text(tokenizer, {"text": "abcdef"}, "text") == "bcdef</s>"


def test_completion_only_loss_off_trains_the_prompt_too(tokenizer) -> None:
    record = {"instruction": "Hi", "output": "Yo"}
    trained = trained_text(tokenizer, record, "alpaca", completion_only=False)
    assert trained == "## User:\nHi\n\n### Assistant:\nYo</s>\n\n"  # all but the first '#'


def test_eos_label_survives_when_pad_equals_eos(tokenizer) -> None:
    tokenizer = builtin_tokenizer()
    tokenizer.pad_token = tokenizer.eos_token
    ids, labels = tokenize_example({"text": "ab"}, "text", tokenizer, True)
    row = Row(ids, labels, list(range(len(ids))), [len(ids)])
    short = Row(ids[:2], labels[:2], [0, 1], [2])

    batch = RowCollator(tokenizer.pad_token_id, "sdpa", packing=False)([row, short])

    eos = tokenizer.eos_token_id
    assert batch["labels"][0, len(ids) - 1].item() == eos  # the real EOS is a target
    assert (batch["labels"][1, 2:] == IGNORE_INDEX).all()  # the padding (also eos) is not


def test_auto_detects_each_format(tmp_path: Path) -> None:
    samples = {
        "alpaca": {"instruction": "a", "output": "b"},
        "messages": {
            "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
        },
        "prompt_completion": {"prompt": "a", "completion": "b"},
        "text": {"text": "a"},
    }
    for fmt, record in samples.items():
        path = write_jsonl(tmp_path / f"{fmt}.jsonl", [record, record])
        assert read_dataset(str(path), "auto").format == fmt


def bad(tmp_path: Path, content: bytes | str, fmt: str = "auto") -> str:
    path = tmp_path / "train.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError) as err:
        read_dataset(str(path), fmt)
    return str(err.value)


GOOD = '{"instruction": "a", "output": "b"}\n'


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    message = bad(tmp_path, GOOD + GOOD + '{"instruction": "a", "output": }\n')
    assert f"{tmp_path}/train.jsonl:3: malformed JSON" in message


def test_empty_file_is_rejected(tmp_path: Path) -> None:
    assert "no examples (the file is empty)" in bad(tmp_path, "\n\n")


def test_missing_field_names_line_and_field(tmp_path: Path) -> None:
    message = bad(tmp_path, GOOD + '{"instruction": "a", "input": "x"}\n', fmt="alpaca")
    assert ":2: alpaca record needs 'output' as a string (missing)" in message


def test_wrong_field_type_is_named(tmp_path: Path) -> None:
    message = bad(tmp_path, '{"prompt": "a", "completion": 5}\n', fmt="prompt_completion")
    assert ":1: prompt_completion record needs 'completion' as a string (a int)" in message


def test_unrecognisable_record_lists_the_expected_shapes(tmp_path: Path) -> None:
    message = bad(tmp_path, GOOD + '{"question": "a", "answer": "b"}\n')
    assert ":2: cannot tell the format from keys ['answer', 'question']" in message


def test_unknown_role_lists_the_allowed_roles(tmp_path: Path) -> None:
    line = (
        '{"messages": [{"role": "human", "content": "a"}, {"role": "assistant", "content": "b"}]}\n'
    )
    message = bad(tmp_path, line)
    assert ":1: messages[0] has unknown role 'human'; allowed: system, user, assistant" in message


def test_conversation_without_assistant_turn_is_rejected(tmp_path: Path) -> None:
    message = bad(tmp_path, '{"messages": [{"role": "user", "content": "a"}]}\n')
    assert ":1: the conversation has no assistant turn to train on" in message


def test_non_utf8_bytes_name_the_line(tmp_path: Path) -> None:
    message = bad(tmp_path, GOOD.encode() + b'{"instruction": "caf\xe9", "output": "b"}\n')
    assert ":2: not UTF-8 text" in message


def test_mixed_formats_name_both_lines(tmp_path: Path) -> None:
    message = bad(tmp_path, GOOD + '{"text": "plain"}\n')
    assert "mixed formats: line 1 is alpaca, line 2 is text" in message


def test_missing_data_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data file not found: .*nope\.jsonl"):
        read_dataset(str(tmp_path / "nope.jsonl"), "auto")
