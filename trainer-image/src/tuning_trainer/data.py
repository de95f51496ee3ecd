"""JSONL training data: reading, format detection, validation, tokenization with label masks.

    tuning-trainer validate --config run.yaml     # runs all of this and prints statistics

Formats (one per file; ``auto`` detects it from the first record's keys), after TRL's dataset
types:

- ``text`` (language modeling): ``text``; every token is trained.
- ``messages`` (conversational language modeling, tool calling): ``messages: [{role, content}]``
  with roles system, user, assistant and tool, rendered with the tokenizer's chat template.
  Assistant turns may carry ``tool_calls`` (content empty or missing); a record's ``tools`` list
  (or ``data.tools`` for the whole file) goes to the template as ``tools=``.
- ``prompt_completion``: ``prompt`` and ``completion`` as strings (concatenated, no template) or
  both as lists of messages (rendered together with the chat template).
- ``alpaca``: ``instruction``, optional ``input``, ``output``; rendered as one user turn and one
  assistant turn with the chat template.

Content may be a string or a list of text parts (``[{"type": "text", "text": ...}]``). Anything
the text-only trainer or the chat template cannot represent (an image part, an unknown role, a
malformed tool call, a template that drops tool calls or tool results) is an error naming
file:line and the field, never a silently different example.

With ``completion_only_loss`` (the default) labels are the assistant turns (for conversational
prompt-completion: those of the completion) or the plain completion, including the end-of-turn
or EOS token that ends them; tool results, system and user turns are masked. Trained spans are
found by character spans of the rendered conversation, never by comparing token ids (pad may
equal eos). The first token of every example is never a target, so a packed row trains exactly
what the same examples would train one by one.

Examples longer than ``max_seq_length`` are cut at the end (those left without a target are
dropped); more than ``data.max_truncated_fraction`` of them cut is an error (see
:func:`check_truncation`).
"""

from __future__ import annotations

import bisect
import json
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tuning_trainer import storage
from tuning_trainer.errors import DataError

if TYPE_CHECKING:
    from tuning_trainer.config import DataSection

IGNORE_INDEX = -100
FORMATS = ("alpaca", "messages", "prompt_completion", "text")
ROLES = ("system", "user", "assistant", "tool")
NON_TEXT_PARTS = ("image", "image_url", "input_image", "audio", "input_audio", "video", "file")
TOOL_CALL_SHAPE = '{"type": "function", "function": {"name": ..., "arguments": {...}}}'
TOOL_SHAPE = (
    '{"type": "function", "function": {"name": ..., "description": ..., "parameters": {...}}}'
)
TOOL_TEMPLATE_ADVICE = (
    "set data.chat_template to one that supports tools (the model's own instruct template, "
    "e.g. Qwen2.5 or Llama 3.1)"
)


@dataclass
class Example:
    line: int
    record: dict[str, Any]
    shape: str = ""


@dataclass
class Dataset:
    uri: str
    format: str
    examples: list[Example]

    @property
    def shapes(self) -> Counter[str]:
        return Counter(example.shape for example in self.examples)


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
    uri: str = ""
    truncated_lines: list[int] = field(default_factory=list)  # file lines of the cut examples
    longest_line: int = 0

    @property
    def lengths(self) -> list[int]:
        return [len(t.input_ids) for t in self.examples]

    @property
    def count(self) -> int:
        """Examples read, kept or dropped."""
        return len(self.lengths_before_truncation)


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
        try:
            shape = _check_record(record, record_format)
        except DataError as err:
            raise DataError(f"{uri}:{number}: {err}") from None
        examples.append(Example(number, record, shape))
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


def _check_record(record: dict[str, Any], fmt: str) -> str:
    """Raise DataError (without file:line) for a record that cannot train; return its shape."""
    if fmt == "messages" or _conversational_prompt_completion(record, fmt):
        conversation = to_conversation(record, fmt)
        uses_tools = conversation.tools is not None or any(
            m["role"] == "tool" or m.get("tool_calls") for m in conversation.messages
        )
        base = "conversation" if fmt == "messages" else "conversational prompt-completion"
        return f"{base} with tools" if uses_tools else base
    if "tools" in record:
        raise DataError(
            f"'tools' is only used by conversational records ({fmt} is not): give 'messages', "
            "or 'prompt' and 'completion' as lists of messages"
        )
    if fmt == "alpaca":
        _need_string(record, "instruction", fmt)
        _need_string(record, "output", fmt)
        if record.get("input") is not None and not isinstance(record["input"], str):
            raise DataError("alpaca field 'input' must be a string")
        return "instruction"
    if fmt == "prompt_completion":
        _need_string(record, "prompt", fmt, allow_empty=True)
        _need_string(record, "completion", fmt)
        return "prompt-completion"
    _need_string(record, "text", fmt)
    return "language modeling"


def _conversational_prompt_completion(record: dict[str, Any], fmt: str) -> bool:
    return fmt == "prompt_completion" and (
        isinstance(record.get("prompt"), list) or isinstance(record.get("completion"), list)
    )


def _need_string(record: dict[str, Any], key: str, fmt: str, allow_empty: bool = False) -> None:
    value = record.get(key)
    if not isinstance(value, str):
        got = "missing" if key not in record else f"a {type(value).__name__}"
        raise DataError(f"{fmt} record needs '{key}' as a string ({got})")
    if not allow_empty and not value.strip():
        raise DataError(f"{fmt} field '{key}' is empty")


# --- conversations: normalised messages, tools, which turns train ------------------------------


@dataclass
class Conversation:
    """Messages ready for ``apply_chat_template``, and where each came from in the record."""

    messages: list[dict[str, Any]]
    paths: list[str]  # "messages[2]", "completion[0]": the field each message came from
    tools: list[dict[str, Any]] | None
    tools_field: str  # "tools" or "data.tools"
    first_trained: int  # assistant turns from this message on are trained


def to_conversation(
    record: dict[str, Any], fmt: str, default_tools: list[dict[str, Any]] | None = None
) -> Conversation:
    """The record as chat messages; a DataError names the field (the caller adds file:line)."""
    if fmt == "alpaca":
        messages = to_messages(record, fmt)
        return Conversation(messages, ["instruction", "output"], None, "tools", 0)
    if fmt == "messages":
        messages, paths = _messages(record.get("messages"), "messages")
        first_trained = 0
    elif fmt == "prompt_completion":
        prompt, completion = record.get("prompt"), record.get("completion")
        if not (isinstance(prompt, list) and isinstance(completion, list)):
            raise DataError(
                "'prompt' and 'completion' must both be strings or both be lists of messages "
                f"(got a {type(prompt).__name__} and a {type(completion).__name__})"
            )
        prompt_messages, prompt_paths = _messages(prompt, "prompt")
        completion_messages, completion_paths = _messages(completion, "completion")
        if not any(m["role"] == "assistant" for m in completion_messages):
            raise DataError("'completion' has no assistant turn to train on")
        messages = prompt_messages + completion_messages
        paths = prompt_paths + completion_paths
        first_trained = len(prompt_messages)
    else:
        raise DataError(f"{fmt} records are not conversations")
    _check_turn_order(messages, paths)
    if "tools" in record and record["tools"] is not None:
        tools, tools_field = _tools(record["tools"], "tools"), "tools"
    else:
        tools, tools_field = default_tools or None, "data.tools"
    return Conversation(messages, paths, tools, tools_field, first_trained)


def to_messages(record: dict[str, Any], fmt: str) -> list[dict[str, Any]]:
    """An alpaca or messages record as plain chat messages (the benchmark feeds these to TRL)."""
    if fmt == "messages":
        return _messages(record["messages"], "messages")[0]
    prompt = record["instruction"]
    if record.get("input"):
        prompt = f"{prompt}\n\n{record['input']}"
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]


def _messages(value: Any, name: str) -> tuple[list[dict[str, Any]], list[str]]:
    if not isinstance(value, list) or not value:
        raise DataError(f"'{name}' must be a non-empty list of {{role, content}} messages")
    messages, paths = [], []
    for index, message in enumerate(value):
        path = f"{name}[{index}]"
        messages.append(_message(message, path))
        paths.append(path)
    return messages, paths


def _message(message: Any, path: str) -> dict[str, Any]:
    if not isinstance(message, dict) or "role" not in message:
        raise DataError(f"{path} needs 'role' and 'content'")
    role = message["role"]
    if role not in ROLES:
        raise DataError(f"{path} has unknown role {role!r}; allowed: {', '.join(ROLES)}")
    result = dict(message)  # other keys (name, tool_call_id, ...) are the template's to use
    calls = message.get("tool_calls")
    if calls is not None:
        if role != "assistant":
            raise DataError(f"{path}.tool_calls: only assistant turns make tool calls ({role!r})")
        if not isinstance(calls, list):
            raise DataError(f"{path}.tool_calls must be a list of {TOOL_CALL_SHAPE}")
        result["tool_calls"] = [
            _tool_call(call, f"{path}.tool_calls[{i}]") for i, call in enumerate(calls)
        ]
        if not result["tool_calls"]:
            del result["tool_calls"]
    if message.get("content") is None and result.get("tool_calls"):
        result["content"] = ""  # a pure tool call: templates expect a string
    elif "content" not in message or message["content"] is None:
        raise DataError(f"{path} needs 'content' (a string or a list of text parts)")
    else:
        result["content"] = _text(message["content"], f"{path}.content")
    if role == "assistant" and not result["content"].strip() and not result.get("tool_calls"):
        raise DataError(
            f"{path} is an empty assistant turn (no content, no tool_calls): it would only "
            "teach the model to stop; give its answer or remove the turn"
        )
    return result


def _text(content: Any, path: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise DataError(
            f"{path} must be a string or a list of text parts, got a {type(content).__name__}"
        )
    texts = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
            continue
        what = f"an {kind!r} part" if kind in NON_TEXT_PARTS else f"not a text part ({part!r:.60})"
        raise DataError(
            f"{path}[{index}] is {what}: this trainer trains text-only models; give the "
            'content as a string or as [{"type": "text", "text": ...}] parts'
        )
    return "".join(texts)


def _tool_call(call: Any, path: str) -> dict[str, Any]:
    function = call.get("function", call) if isinstance(call, dict) else None
    if not isinstance(function, dict):
        raise DataError(f"{path} must be {TOOL_CALL_SHAPE}")
    name = function.get("name")
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"{path}.function.name must be a non-empty string ({TOOL_CALL_SHAPE})")
    if "arguments" not in function:
        raise DataError(f"{path}.function.arguments is missing: give an object, {{}} for none")
    arguments = function["arguments"]
    if isinstance(arguments, str):  # the OpenAI API's JSON-encoded arguments
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as err:
            raise DataError(
                f"{path}.function.arguments is a string but not JSON ({err.msg}, column "
                f"{err.colno}): give an object or a JSON-encoded object"
            ) from None
    if not isinstance(arguments, dict):
        raise DataError(
            f"{path}.function.arguments must be a JSON object, got a {type(arguments).__name__}"
        )
    normalised: dict[str, Any] = {
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }
    if "id" in call:
        normalised["id"] = call["id"]
    return normalised


def _tools(value: Any, name: str) -> list[dict[str, Any]] | None:
    if isinstance(value, str):  # TRL accepts a JSON-encoded list too
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise DataError(f"'{name}' is a string but not JSON ({err.msg})") from None
    if not isinstance(value, list):
        raise DataError(f"'{name}' must be a list of {TOOL_SHAPE}")
    for index, tool in enumerate(value):
        if not _tool_name(tool):
            raise DataError(f"{name}[{index}] needs a function name: {TOOL_SHAPE}")
    return value or None


def _tool_name(tool: Any) -> str | None:
    function = tool.get("function", tool) if isinstance(tool, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) and name.strip() else None


def _check_turn_order(messages: list[dict[str, Any]], paths: list[str]) -> None:
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError("the conversation has no assistant turn to train on")
    for index, message in enumerate(messages):
        if message["role"] != "tool":
            continue
        previous = messages[index - 1] if index else None
        if previous is None or not (previous["role"] == "tool" or previous.get("tool_calls")):
            raise DataError(
                f"{paths[index]} is a tool result with no assistant tool_calls before it: put "
                "the assistant turn that made the call first"
            )


# --- tokenization ----------------------------------------------------------------------------


def tokenize_example(
    record: dict[str, Any],
    fmt: str,
    tokenizer: Any,
    completion_only: bool,
    tools: list[dict[str, Any]] | None = None,
) -> tuple[list[int], list[int]]:
    """Token ids and labels (IGNORE_INDEX where no loss), untruncated.

    ``tools`` is the file's tool list (``data.tools``); a record's own ``tools`` wins.
    """
    eos = tokenizer.eos_token_id
    if fmt in ("alpaca", "messages") or _conversational_prompt_completion(record, fmt):
        ids, trained = _tokenize_chat(to_conversation(record, fmt, tools), tokenizer)
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


def _tokenize_chat(conversation: Conversation, tokenizer: Any) -> tuple[list[int], list[bool]]:
    messages, tools = conversation.messages, conversation.tools
    text = _render(tokenizer, messages, tools, generation_prompt=False)
    spans: dict[int, tuple[int, int]] = {}  # message index -> trained characters
    for index in range(conversation.first_trained, len(messages)):
        if messages[index]["role"] != "assistant":
            continue
        before = (
            _render(tokenizer, messages[:index], tools, generation_prompt=True) if index else ""
        )
        through = _render(tokenizer, messages[: index + 1], tools, generation_prompt=False)
        if not (text.startswith(through) and through.startswith(before)):
            raise DataError(
                f"{conversation.paths[index]}: the chat template does not render conversations "
                "prefix by prefix, so assistant turns cannot be located: set "
                "data.chat_template, or data.completion_only_loss: false"
            )
        spans[index] = (len(before), len(through.rstrip()))
    _check_rendered(conversation, text, spans)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    trained = [
        any(start <= offset[0] < end for start, end in spans.values())
        for offset in encoded["offset_mapping"]
    ]
    return list(encoded["input_ids"]), trained


def _check_rendered(
    conversation: Conversation, text: str, spans: dict[int, tuple[int, int]]
) -> None:
    """Refuse a template that silently drops tool calls, tool results, tools or any turn."""
    for index, message in enumerate(conversation.messages):
        path, role = conversation.paths[index], message["role"]
        start, end = spans.get(index, (0, len(text)))
        region = text[start:end]
        for number, call in enumerate(message.get("tool_calls") or []):
            name = call["function"]["name"]
            if name not in region:
                raise DataError(
                    f"{path}.tool_calls[{number}]: the chat template does not render tool calls "
                    f"({name!r} is missing from the rendered turn), so the model would learn an "
                    f"empty answer: {TOOL_TEMPLATE_ADVICE}"
                )
        content = message["content"].strip()
        if content and content not in region and _json_text(content) not in region:
            if role == "tool":
                raise DataError(
                    f"{path}: the chat template does not render 'tool' messages (tool "
                    f"results): {TOOL_TEMPLATE_ADVICE}"
                )
            raise DataError(
                f"{path}: the chat template drops this {role} turn's content: set "
                "data.chat_template to one that renders every turn"
            )
    for index, tool in enumerate(conversation.tools or []):
        name = _tool_name(tool)
        if name is not None and name not in text:
            raise DataError(
                f"{conversation.tools_field}[{index}]: the chat template does not render tool "
                f"definitions (tools=; {name!r} is missing), so the model would learn to call "
                f"tools it never sees: {TOOL_TEMPLATE_ADVICE}"
            )


def _json_text(content: str) -> str:
    # templates such as Llama 3.1's write tool results with tojson
    return json.dumps(content, ensure_ascii=False)


def _render(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    generation_prompt: bool,
) -> str:
    return tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=generation_prompt
    )


def tokenize_dataset(
    dataset: Dataset,
    tokenizer: Any,
    max_seq_length: int,
    completion_only: bool,
    tools: list[dict[str, Any]] | None = None,
) -> TokenizedSet:
    result = TokenizedSet(examples=[], uri=dataset.uri)
    longest = -1
    for example in dataset.examples:
        try:
            ids, labels = tokenize_example(
                example.record, dataset.format, tokenizer, completion_only, tools
            )
        except DataError as err:
            raise DataError(f"{dataset.uri}:{example.line}: {err}") from None
        except Exception as err:  # a template that raises on this record
            raise DataError(f"{dataset.uri}:{example.line}: cannot render: {err}") from None
        result.lengths_before_truncation.append(len(ids))
        if len(ids) > longest:
            longest, result.longest_line = len(ids), example.line
        if len(ids) > max_seq_length:
            result.truncated += 1
            result.truncated_lines.append(example.line)
            ids, labels = ids[:max_seq_length], labels[:max_seq_length]
        if all(label == IGNORE_INDEX for label in labels):
            result.dropped_without_target += 1
            continue
        result.examples.append(Tokenized(ids, labels, result.lengths_before_truncation[-1]))
    return result


def load_tokenized(uri: str, settings: DataSection, tokenizer: Any) -> tuple[Dataset, TokenizedSet]:
    """Read, validate and tokenize one file as the run config's ``data`` section says."""
    dataset = read_dataset(uri, settings.format)
    tokenized = tokenize_dataset(
        dataset,
        tokenizer,
        settings.max_seq_length,
        settings.completion_only_loss,
        settings.tools,
    )
    return dataset, tokenized


# --- truncation policy -----------------------------------------------------------------------


def truncation_summary(tokenized: TokenizedSet, max_seq_length: int) -> str:
    """One line: how many examples are cut and dropped, and the length percentiles."""
    stats = length_summary(tokenized.lengths_before_truncation)
    count = tokenized.count
    return (
        f"truncated: {tokenized.truncated} of {count} examples "
        f"({100 * tokenized.truncated / count:.1f} %) longer than max_seq_length "
        f"{max_seq_length}, {tokenized.dropped_without_target} of them dropped (no target left); "
        f"tokens per example p50 {stats['median']:.0f}, p95 {stats['p95']}, max {stats['max']}"
    )


def check_truncation(tokenized: TokenizedSet, max_seq_length: int, max_fraction: float) -> None:
    """Exit 2 when more than ``max_fraction`` of the examples would be cut at max_seq_length,
    or when no example keeps a target.

    A cut example trains on an answer without its end (no EOS: the model learns not to stop),
    or is dropped when its prompt alone fills the row: either way the model trains on another
    data set than the one given.
    """
    count, cut = tokenized.count, tokenized.truncated
    if tokenized.examples and (cut == 0 or cut / count <= max_fraction):
        return  # with no example left, even max_fraction 1 cannot train
    stats = length_summary(tokenized.lengths_before_truncation)
    dropped = tokenized.dropped_without_target
    raise DataError(
        f"{tokenized.uri}:{tokenized.truncated_lines[0]}: {cut} of {count} examples "
        f"({100 * cut / count:.1f} %) are longer than data.max_seq_length {max_seq_length}, "
        f"the first on this line: {dropped} would lose their whole target and be dropped, "
        f"{cut - dropped} would train on a target cut before its end (no EOS); tokens per "
        f"example p50 {stats['median']:.0f}, p95 {stats['p95']}, max {stats['max']} (line "
        f"{tokenized.longest_line}): raise data.max_seq_length to {stats['max']} to keep every "
        f"example whole, or filter out the long examples (data.max_truncated_fraction "
        f"{max_fraction:g} allows at most {100 * max_fraction:g} % cut)"
    )


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
