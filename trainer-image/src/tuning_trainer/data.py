"""JSONL training data: reading, format detection, validation, tokenization with label masks.

    tuning-trainer validate --config run.yaml     # runs all of this and prints statistics

Formats (one per file; ``auto`` detects it from the first record's keys):

- ``alpaca``: ``instruction``, optional ``input``, ``output``; rendered as one user turn and one
  assistant turn with the tokenizer's chat template.
- ``messages``: ``messages: [{role: system|user|assistant, content}]`` with the chat template.
- ``prompt_completion``: ``prompt`` and ``completion``, concatenated (no template).
- ``text``: ``text``; every token is trained.

With ``completion_only_loss`` (the default) labels are the assistant turns / completion only,
including the EOS that ends them, found by character spans of the rendered conversation, never by
comparing token ids (pad may equal eos). The first token of every example is never a target, so
a packed row trains exactly what the same examples would train one by one.
"""

from __future__ import annotations

import bisect
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tuning_trainer import storage
from tuning_trainer.errors import DataError

IGNORE_INDEX = -100
FORMATS = ("alpaca", "messages", "prompt_completion", "text")
ROLES = ("system", "user", "assistant")


@dataclass
class Example:
    line: int
    record: dict[str, Any]


@dataclass
class Dataset:
    uri: str
    format: str
    examples: list[Example]


@dataclass
class Tokenized:
    input_ids: list[int]
    labels: list[int]
    length_before_truncation: int


@dataclass
class TokenizedSet:
    examples: list[Tokenized]
    truncated: int = 0
    dropped_without_target: int = 0
    lengths_before_truncation: list[int] = field(default_factory=list)

    @property
    def lengths(self) -> list[int]:
        return [len(t.input_ids) for t in self.examples]


# --- reading and validating ------------------------------------------------------------------


def read_dataset(uri: str, fmt: str) -> Dataset:
    """Parse and validate every record; the first problem stops with file:line and the fix."""
    try:
        raw = storage.read_bytes(uri)
    except FileNotFoundError:
        raise DataError(f"data file not found: {uri}") from None
    examples: list[Example] = []
    detected: dict[str, int] = {}  # format -> first line seen
    for number, line_bytes in enumerate(raw.splitlines(), start=1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(
                f"{uri}:{number}: not UTF-8 text (byte {err.start}: {line_bytes[err.start]:#04x})"
            ) from None
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(
                f"{uri}:{number}: malformed JSON: {err.msg} (column {err.colno})"
            ) from None
        if not isinstance(record, dict):
            raise DataError(f"{uri}:{number}: each line must be a JSON object, got {record!r:.40}")
        record_format = fmt if fmt != "auto" else _detect(record, uri, number)
        detected.setdefault(record_format, number)
        if len(detected) > 1:
            (first, first_line), (second, second_line) = list(detected.items())[:2]
            raise DataError(
                f"{uri}: mixed formats: line {first_line} is {first}, line {second_line} is "
                f"{second}; use one format per file"
            )
        _check_record(record, record_format, uri, number)
        examples.append(Example(number, record))
    if not examples:
        raise DataError(f"{uri}: no examples (the file is empty)")
    return Dataset(uri, next(iter(detected)), examples)


def _detect(record: dict[str, Any], uri: str, line: int) -> str:
    if "messages" in record:
        return "messages"
    if "instruction" in record and "output" in record:
        return "alpaca"
    if "prompt" in record and "completion" in record:
        return "prompt_completion"
    if "text" in record:
        return "text"
    raise DataError(
        f"{uri}:{line}: cannot tell the format from keys {sorted(record)}; expected "
        "messages | instruction+output (alpaca) | prompt+completion | text"
    )


def _check_record(record: dict[str, Any], fmt: str, uri: str, line: int) -> None:
    where = f"{uri}:{line}"
    if fmt == "alpaca":
        _need_string(record, "instruction", where, fmt)
        _need_string(record, "output", where, fmt)
        if record.get("input") is not None and not isinstance(record["input"], str):
            raise DataError(f"{where}: alpaca field 'input' must be a string")
    elif fmt == "prompt_completion":
        _need_string(record, "prompt", where, fmt, allow_empty=True)
        _need_string(record, "completion", where, fmt)
    elif fmt == "text":
        _need_string(record, "text", where, fmt)
    elif fmt == "messages":
        _check_messages(record.get("messages"), where)


def _need_string(
    record: dict[str, Any], key: str, where: str, fmt: str, allow_empty: bool = False
) -> None:
    value = record.get(key)
    if not isinstance(value, str):
        got = "missing" if key not in record else f"a {type(value).__name__}"
        raise DataError(f"{where}: {fmt} record needs '{key}' as a string ({got})")
    if not allow_empty and not value.strip():
        raise DataError(f"{where}: {fmt} field '{key}' is empty")


def _check_messages(messages: Any, where: str) -> None:
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: 'messages' must be a non-empty list of {{role, content}}")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise DataError(f"{where}: messages[{index}] needs 'role' and 'content'")
        if message["role"] not in ROLES:
            raise DataError(
                f"{where}: messages[{index}] has unknown role {message['role']!r}; "
                f"allowed: {', '.join(ROLES)}"
            )
        if not isinstance(message["content"], str):
            raise DataError(f"{where}: messages[{index}].content must be a string")
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError(f"{where}: the conversation has no assistant turn to train on")


# --- tokenization ----------------------------------------------------------------------------


def to_messages(record: dict[str, Any], fmt: str) -> list[dict[str, str]]:
    if fmt == "messages":
        return [{"role": m["role"], "content": m["content"]} for m in record["messages"]]
    prompt = record["instruction"]
    if record.get("input"):
        prompt = f"{prompt}\n\n{record['input']}"
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]


def tokenize_example(
    record: dict[str, Any], fmt: str, tokenizer: Any, completion_only: bool
) -> tuple[list[int], list[int]]:
    """Token ids and labels (IGNORE_INDEX where no loss), untruncated."""
    eos = tokenizer.eos_token_id
    if fmt in ("alpaca", "messages"):
        ids, trained = _tokenize_chat(to_messages(record, fmt), tokenizer)
        if not completion_only:
            trained = [True] * len(ids)
    elif fmt == "prompt_completion":
        prompt = tokenizer(record["prompt"], add_special_tokens=True)["input_ids"]
        completion = tokenizer(record["completion"], add_special_tokens=False)["input_ids"]
        if not completion or completion[-1] != eos:
            completion = [*completion, eos]
        ids = prompt + completion
        trained = [not completion_only] * len(prompt) + [True] * len(completion)
    else:
        ids = tokenizer(record["text"], add_special_tokens=True)["input_ids"]
        if not ids or ids[-1] != eos:
            ids = [*ids, eos]
        trained = [True] * len(ids)
    labels = [token if keep else IGNORE_INDEX for token, keep in zip(ids, trained, strict=True)]
    if labels:
        labels[0] = IGNORE_INDEX  # never predicted: nothing precedes it within the example
    return ids, labels


def _tokenize_chat(messages: list[dict[str, str]], tokenizer: Any) -> tuple[list[int], list[bool]]:
    text = _render(tokenizer, messages, generation_prompt=False)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:index], generation_prompt=True) if index else ""
        through = _render(tokenizer, messages[: index + 1], generation_prompt=False)
        if not (text.startswith(through) and through.startswith(before)):
            raise DataError(
                "the chat template does not render conversations prefix by prefix, so assistant "
                "turns cannot be located: set data.chat_template, or data.completion_only_loss: "
                "false"
            )
        spans.append((len(before), len(through.rstrip())))
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    trained = [
        any(start <= offset[0] < end for start, end in spans)
        for offset in encoded["offset_mapping"]
    ]
    return list(encoded["input_ids"]), trained


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )


def tokenize_dataset(
    dataset: Dataset, tokenizer: Any, max_seq_length: int, completion_only: bool
) -> TokenizedSet:
    result = TokenizedSet(examples=[])
    for example in dataset.examples:
        try:
            ids, labels = tokenize_example(
                example.record, dataset.format, tokenizer, completion_only
            )
        except DataError as err:
            raise DataError(f"{dataset.uri}:{example.line}: {err}") from None
        except Exception as err:  # a template that raises on this record
            raise DataError(f"{dataset.uri}:{example.line}: cannot render: {err}") from None
        result.lengths_before_truncation.append(len(ids))
        if len(ids) > max_seq_length:
            result.truncated += 1
            ids, labels = ids[:max_seq_length], labels[:max_seq_length]
        if all(label == IGNORE_INDEX for label in labels):
            result.dropped_without_target += 1
            continue
        result.examples.append(Tokenized(ids, labels, result.lengths_before_truncation[-1]))
    if not result.examples:
        raise DataError(
            f"{dataset.uri}: no example keeps a training target within max_seq_length="
            f"{max_seq_length}: raise data.max_seq_length"
        )
    return result


# --- rows: packed or one example each ---------------------------------------------------------


@dataclass
class Row:
    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]
    sequence_lengths: list[int]


def pack_best_fit(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Best-fit decreasing: whole examples into as few rows of ``capacity`` tokens as it finds.

    Returns the example indices of each row. Deterministic (ties keep input order).
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (free tokens, row index), sorted
    for index in order:
        need = lengths[index]
        slot = bisect.bisect_left(free, (need, -1))
        if slot < len(free):
            room, row = free.pop(slot)
        else:
            room, row = capacity, len(rows)
            rows.append([])
        rows[row].append(index)
        if room - need > 0:
            bisect.insort(free, (room - need, row))
    return rows


def build_rows(tokenized: TokenizedSet, max_seq_length: int, packing: bool) -> list[Row]:
    examples = tokenized.examples
    groups = (
        pack_best_fit([len(e.input_ids) for e in examples], max_seq_length)
        if packing
        else [[i] for i in range(len(examples))]
    )
    rows = []
    for group in groups:
        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for index in group:
            example = examples[index]
            ids += example.input_ids
            labels += example.labels
            positions += range(len(example.input_ids))
        rows.append(Row(ids, labels, positions, [len(examples[i].input_ids) for i in group]))
    return rows


class RowDataset:
    """The rows as a map-style dataset for the Trainer's DataLoader."""

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Row:
        return self.rows[index]


def padding_fraction(row_lengths: Sequence[int], batch_size: int, seed: int = 0) -> float:
    """Share of padding tokens when rows are batched in random order and padded to the longest."""
    import random

    order = list(range(len(row_lengths)))
    random.Random(seed).shuffle(order)
    real = padded = 0
    for start in range(0, len(order), batch_size):
        batch = [row_lengths[i] for i in order[start : start + batch_size]]
        real += sum(batch)
        padded += max(batch) * len(batch)
    return 1 - real / padded if padded else 0.0


def length_summary(lengths: Sequence[int]) -> dict[str, float]:
    ordered = sorted(lengths)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "min": ordered[0],
        "median": statistics.median(ordered),
        "p95": p95,
        "max": ordered[-1],
        "total": sum(ordered),
    }
