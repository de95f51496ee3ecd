"""Data: label masks per data shape (golden), EOS training, truncation, every bad-input message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from trainer_testlib import write_jsonl
from tuning_trainer.collator import RowCollator
from tuning_trainer.data import (
    IGNORE_INDEX,
    Row,
    check_truncation,
    read_dataset,
    tokenize_dataset,
    tokenize_example,
)
from tuning_trainer.errors import DataError
from tuning_trainer.model import builtin_tokenizer

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def tokenizer():
    return builtin_tokenizer()


@pytest.fixture(scope="module")
def qwen_tokenizer():
    """The builtin byte-level tokenizer with a Qwen2.5-style template that supports tools."""
    tokenizer = builtin_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = (FIXTURES / "qwen2.5-tools.jinja").read_text()
    return tokenizer


def trained_text(tokenizer, record, fmt, completion_only=True, tools=None) -> str:
    """The text of the labelled positions, with '|' between separate labelled spans."""
    ids, labels = tokenize_example(record, fmt, tokenizer, completion_only, tools)
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


def test_text_parts_train_like_a_string(tokenizer) -> None:
    record = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "2+2?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "4"}]},
        ]
    }
    assert trained_text(tokenizer, record, "messages") == "4</s>"


def test_conversational_prompt_completion_trains_only_the_completion(tokenizer) -> None:
    record = {
        "prompt": [
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "3+3?"},
        ],
        "completion": [{"role": "assistant", "content": "6"}],
    }
    assert trained_text(tokenizer, record, "prompt_completion") == "6</s>"


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def weather_call(arguments: Any = None) -> dict[str, Any]:
    arguments = {"city": "Paris"} if arguments is None else arguments
    return {"type": "function", "function": {"name": "get_weather", "arguments": arguments}}


def tool_conversation(call: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You answer weather questions."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "tool_calls": [call or weather_call()]},  # no content at all
        {"role": "tool", "name": "get_weather", "content": '{"temperature_c": 18}'},
        {"role": "assistant", "content": "It is 18 °C in Paris."},
    ]


TOOL_TURNS_TRAINED = (
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    "<|im_end|>|It is 18 °C in Paris.<|im_end|>"
)


def test_tool_calling_trains_the_calls_and_answers_not_the_results(qwen_tokenizer) -> None:
    record = {"tools": [WEATHER_TOOL], "messages": tool_conversation()}

    trained = trained_text(qwen_tokenizer, record, "messages")

    assert trained == TOOL_TURNS_TRAINED


def test_tool_definitions_reach_the_template(qwen_tokenizer) -> None:
    record = {"tools": [WEATHER_TOOL], "messages": tool_conversation()}
    ids, _ = tokenize_example(record, "messages", qwen_tokenizer, True)
    assert '"name": "get_weather", "description": "Current weather in a city"' in (
        qwen_tokenizer.decode(ids)
    )


def test_openai_style_json_arguments_train_the_same_call(qwen_tokenizer) -> None:
    call = {"id": "call_1", **weather_call('{"city": "Paris"}')}
    record = {"tools": [WEATHER_TOOL], "messages": tool_conversation(call)}
    assert trained_text(qwen_tokenizer, record, "messages") == TOOL_TURNS_TRAINED


def test_file_level_tools_apply_to_records_without_their_own(qwen_tokenizer) -> None:
    record = {"messages": tool_conversation()}
    ids, _ = tokenize_example(record, "messages", qwen_tokenizer, True, tools=[WEATHER_TOOL])
    assert "<tools>" in qwen_tokenizer.decode(ids)
    assert trained_text(qwen_tokenizer, record, "messages", tools=[WEATHER_TOOL]) == (
        TOOL_TURNS_TRAINED
    )


def test_parallel_calls_and_their_results_are_one_trained_turn(qwen_tokenizer) -> None:
    london = weather_call({"city": "London"})
    messages = [
        {"role": "user", "content": "Paris or London warmer?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [weather_call(), london]},
        {"role": "tool", "content": "18"},
        {"role": "tool", "content": "12"},
        {"role": "assistant", "content": "Paris."},
    ]
    trained = trained_text(qwen_tokenizer, {"messages": messages}, "messages")
    assert trained == (
        'Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
        '</tool_call>\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "London"}}'
        "\n</tool_call><|im_end|>|Paris.<|im_end|>"
    )


def test_conversational_prompt_completion_with_a_tool_call(qwen_tokenizer) -> None:
    record = {
        "tools": [WEATHER_TOOL],
        "prompt": [{"role": "user", "content": "Weather in Paris?"}],
        "completion": [{"role": "assistant", "content": "", "tool_calls": [weather_call()]}],
    }
    assert trained_text(qwen_tokenizer, record, "prompt_completion") == (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
        "<|im_end|>"
    )


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

    batch = RowCollator(tokenizer.pad_token_id, packing=False)([row, short])

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
    assert ":1: messages[0] has unknown role 'human'; allowed: system, user, assistant, tool" in (
        message
    )


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


def test_auto_detects_conversational_prompt_completion(tmp_path: Path) -> None:
    record = {
        "prompt": [{"role": "user", "content": "a"}],
        "completion": [{"role": "assistant", "content": "b"}],
    }
    dataset = read_dataset(str(write_jsonl(tmp_path / "pc.jsonl", [record])), "auto")
    assert (dataset.format, dataset.examples[0].shape) == (
        "prompt_completion",
        "conversational prompt-completion",
    )


def user_then(*turns: dict[str, Any], **record: Any) -> str:
    """One messages record (a user turn, then ``turns``) as a JSONL line."""
    import json

    return json.dumps({"messages": [{"role": "user", "content": "q"}, *turns], **record}) + "\n"


ANSWER = {"role": "assistant", "content": "a"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            user_then({"role": "assistant", "content": [{"type": "image", "url": "x.png"}]}),
            ":1: messages[1].content[0] is an 'image' part: this trainer trains text-only models",
        ),
        (
            user_then({"role": "assistant", "content": [{"kind": "text"}]}),
            ":1: messages[1].content[0] is not a text part",
        ),
        (
            user_then({"role": "assistant", "tool_calls": [weather_call("{city: Paris")]}),
            ":1: messages[1].tool_calls[0].function.arguments is a string but not JSON",
        ),
        (
            user_then({"role": "assistant", "tool_calls": [weather_call(["Paris"])]}),
            ":1: messages[1].tool_calls[0].function.arguments must be a JSON object, got a list",
        ),
        (
            user_then({"role": "assistant", "tool_calls": [{"function": {"arguments": {}}}]}),
            ":1: messages[1].tool_calls[0].function.name must be a non-empty string",
        ),
        (
            user_then({"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}),
            ":1: messages[1].tool_calls[0].function.arguments is missing",
        ),
        (
            user_then({"role": "assistant", "tool_calls": {"name": "f"}}),
            ":1: messages[1].tool_calls must be a list of",
        ),
        (
            user_then({"role": "user", "content": "x", "tool_calls": [weather_call()]}, ANSWER),
            ":1: messages[1].tool_calls: only assistant turns make tool calls ('user')",
        ),
        (
            user_then({"role": "tool", "content": "18"}, ANSWER),
            ":1: messages[1] is a tool result with no assistant tool_calls before it",
        ),
        (
            user_then({"role": "assistant", "content": "  "}),
            ":1: messages[1] is an empty assistant turn (no content, no tool_calls)",
        ),
        (
            user_then({"role": "assistant"}),
            ":1: messages[1] needs 'content' (a string or a list of text parts)",
        ),
        (
            user_then(ANSWER, tools=[{"type": "function", "function": {"description": "x"}}]),
            ":1: tools[0] needs a function name",
        ),
        (
            user_then(ANSWER, tools="[not json"),
            ":1: 'tools' is a string but not JSON",
        ),
        (
            '{"prompt": "a", "completion": [{"role": "assistant", "content": "b"}]}\n',
            ":1: 'prompt' and 'completion' must both be strings or both be lists of messages",
        ),
        (
            '{"prompt": [{"role": "user", "content": "a"}], '
            '"completion": [{"role": "user", "content": "b"}]}\n',
            ":1: 'completion' has no assistant turn to train on",
        ),
        (
            '{"text": "a", "tools": []}\n',
            ":1: 'tools' is only used by conversational records (text is not)",
        ),
    ],
    ids=[
        "image-part",
        "unknown-part",
        "arguments-not-json",
        "arguments-not-object",
        "call-without-name",
        "call-without-arguments",
        "tool-calls-not-a-list",
        "user-tool-calls",
        "orphan-tool-result",
        "empty-assistant",
        "missing-content",
        "tool-without-name",
        "tools-not-json",
        "mixed-prompt-completion",
        "completion-without-assistant",
        "tools-on-text",
    ],
)
def test_unrepresentable_record_names_line_and_field(tmp_path: Path, line, message) -> None:
    assert message in bad(tmp_path, line)


def tokenize_error(tmp_path: Path, records: list[Any], tokenizer, tools=None) -> str:
    path = write_jsonl(tmp_path / "train.jsonl", records)
    dataset = read_dataset(str(path), "auto")
    with pytest.raises(DataError) as err:
        tokenize_dataset(dataset, tokenizer, 4096, True, tools)
    return str(err.value)


def test_tool_calls_without_template_support_name_the_call(tmp_path: Path, tokenizer) -> None:
    records = [{"messages": tool_conversation()}]

    message = tokenize_error(tmp_path, records, tokenizer)  # the builtin template: no tools

    expected = (
        f"{tmp_path}/train.jsonl:1: messages[2].tool_calls[0]: the chat template does not render "
        "tool calls ('get_weather' is missing from the rendered turn)"
    )
    assert expected in message
    assert "set data.chat_template to one that supports tools" in message


def test_tool_results_dropped_by_the_template_are_named(tmp_path: Path) -> None:
    tokenizer = builtin_tokenizer()  # a template that renders calls but skips tool messages
    tokenizer.chat_template = (
        "{%- for m in messages -%}{%- if m.role != 'tool' -%}{{ m.role }}: {{ m.content }}"
        "{%- for c in m.tool_calls or [] %} call {{ c.function.name }}{% endfor %}\n"
        "{%- endif -%}{%- endfor -%}{%- if add_generation_prompt %}assistant: {% endif -%}"
    )
    message = tokenize_error(tmp_path, [{"messages": tool_conversation()}], tokenizer)
    assert ":1: messages[3]: the chat template does not render 'tool' messages" in message


def test_tools_the_template_ignores_are_named(tmp_path: Path, tokenizer) -> None:
    records = [{"messages": [{"role": "user", "content": "q"}, ANSWER], "tools": [WEATHER_TOOL]}]
    message = tokenize_error(tmp_path, records, tokenizer)
    assert ":1: tools[0]: the chat template does not render tool definitions" in message


def test_file_level_tools_the_template_ignores_name_the_config_key(
    tmp_path: Path, tokenizer
) -> None:
    records = [{"messages": [{"role": "user", "content": "q"}, ANSWER]}]
    message = tokenize_error(tmp_path, records, tokenizer, tools=[WEATHER_TOOL])
    assert ":1: data.tools[0]: the chat template does not render tool definitions" in message


def test_truncation_over_the_threshold_names_the_file_line_and_the_fix(
    tmp_path: Path, tokenizer
) -> None:
    records = [{"text": "short"}, {"text": "x" * 40}, {"text": "y" * 80}]
    dataset = read_dataset(str(write_jsonl(tmp_path / "train.jsonl", records)), "text")
    tokenized = tokenize_dataset(dataset, tokenizer, 32, True)

    with pytest.raises(DataError) as err:
        check_truncation(tokenized, 32, max_fraction=0.5)

    assert str(err.value).startswith(
        f"{tmp_path}/train.jsonl:2: 2 of 3 examples (66.7 %) are longer than "
        "data.max_seq_length 32, the first on this line: 0 would lose their whole target and "
        "be dropped, 2 would train on a target cut before its end (no EOS); tokens per example "
        "p50 41, p95 81, max 81 (line 3): raise data.max_seq_length to 81"
    )
    assert "data.max_truncated_fraction 0.5 allows at most 50 % cut" in str(err.value)


def test_truncation_within_the_threshold_is_counted_not_refused(tmp_path: Path, tokenizer) -> None:
    records = [{"prompt": "p" * 40, "completion": "c"}, {"prompt": "a", "completion": "b"}]
    dataset = read_dataset(str(write_jsonl(tmp_path / "train.jsonl", records)), "auto")

    tokenized = tokenize_dataset(dataset, tokenizer, 32, True)
    check_truncation(tokenized, 32, max_fraction=0.5)

    assert (tokenized.truncated, tokenized.dropped_without_target) == (1, 1)
    assert tokenized.truncated_lines == [1] and len(tokenized.examples) == 1
