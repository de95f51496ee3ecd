"""The run configuration: one pydantic model, loaded with precedence defaults < YAML < env < CLI.

    tuning-trainer schema > run-config.schema.json     # the JSON Schema the CDK app validates with

Sections and names follow DESIGN.md section 3. Environment variables override the YAML file as
``LLM_<SECTION>__<KEY>`` (``LLM_TRAINING__LEARNING_RATE=2e-4``); their values are read as YAML
scalars or flow lists (``LLM_LORA__TARGET_MODULES='[q_proj, v_proj]'``). Command-line flags
override both. Unknown keys are errors that name their path and where they came from, so a typo
never silently trains with a default.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tuning_trainer import storage
from tuning_trainer.errors import ConfigError

ENV_PREFIX = "LLM_"
ENV_NESTING = "__"

PositiveInt = Annotated[int, Field(ge=1)]


class _Section(BaseModel):
    # forbid: a misspelt key is an error, not a silently ignored setting
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSection(_Section):
    base_model: str = Field(
        min_length=1,
        description="Hugging Face model id, s3:// prefix, local directory, or builtin:tiny-llama "
        "(a random 2-layer test/demo model with an in-process byte-level tokenizer).",
    )
    method: Literal["lora", "qlora", "full"] = Field(
        "lora", description="lora, qlora (4-bit base, needs CUDA and bitsandbytes) or full."
    )
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = Field(
        "auto",
        description="auto = flash_attention_2 when installed and the GPU supports it, else sdpa.",
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    trust_remote_code: bool = False
    cache_dir: str | None = Field(
        None,
        description="Where an s3:// base model is synced once and reused "
        "(default: ~/.cache/tuning-lab/models).",
    )


class LoraSection(_Section):
    r: int = Field(16, ge=1, le=1024)
    alpha: int = Field(32, ge=1, le=4096)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: Literal["all-linear"] | list[str] = Field(
        "all-linear", description="'all-linear' or module names such as [q_proj, v_proj]."
    )


class DataSection(_Section):
    train: str = Field(min_length=1, description="JSONL file: local path or s3:// URI.")
    eval: str | None = Field(None, description="Optional JSONL evaluation file.")
    root: str | None = Field(
        None,
        description="Base for relative train/eval paths (default: the config file's folder).",
    )
    format: Literal["auto", "alpaca", "messages", "text", "prompt_completion"] = "auto"
    max_seq_length: int = Field(2048, ge=16, le=131072)
    packing: bool = Field(True, description="Pack whole examples into max_seq_length rows.")
    completion_only_loss: bool = Field(
        True, description="Loss only on completions / assistant turns (false: on every token)."
    )
    chat_template: str | None = Field(
        None, description="Jinja chat template overriding the tokenizer's own."
    )
    tools: list[dict[str, Any]] | None = Field(
        None,
        description="Tool definitions ({type: function, function: {name, description, "
        "parameters}}) passed to the chat template as tools= for every conversational record "
        "of the file that has no 'tools' of its own.",
    )
    max_truncated_fraction: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Largest share of examples that may be longer than max_seq_length (cut, or "
        "dropped when no target is left); above it train and validate exit 2. 1 allows any.",
    )

    @field_validator("tools")
    @classmethod
    def _tools_are_named(cls, tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        for index, tool in enumerate(tools or []):
            function = tool.get("function", tool)
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise ValueError(
                    f"tools[{index}] needs a function name: {{type: function, function: "
                    "{name, description, parameters}}"
                )
        return tools


class TrainingSection(_Section):
    num_train_epochs: float = Field(1.0, gt=0, le=1000)
    max_steps: int = Field(-1, ge=-1, description="-1: train num_train_epochs; else >= 1.")
    per_device_train_batch_size: PositiveInt = Field(4, le=4096)
    per_device_eval_batch_size: PositiveInt = Field(4, le=4096)
    gradient_accumulation_steps: PositiveInt = Field(4, le=4096)
    learning_rate: float = Field(2e-4, gt=0, le=1)
    weight_decay: float = Field(0.0, ge=0, le=1)
    warmup_ratio: float = Field(0.03, ge=0, le=1)
    lr_scheduler_type: Literal[
        "linear", "cosine", "cosine_with_restarts", "constant", "constant_with_warmup"
    ] = "cosine"
    max_grad_norm: float = Field(1.0, ge=0)
    optim: Literal["adamw_torch", "adamw_torch_fused", "paged_adamw_8bit", "adamw_8bit"] = (
        "adamw_torch"
    )
    gradient_checkpointing: bool = False
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto",
        description="auto = bf16 on compute capability >= 8.0, fp16 (fp32 adapters, loss "
        "scaling) below, fp32 on CPU. On CPU bf16 is allowed (autocast), fp16 is refused.",
    )
    distributed: Literal["auto", "none", "ddp", "fsdp"] = Field(
        "auto",
        description="How several GPUs share the run, one process each (torchrun): ddp keeps a "
        "whole model per GPU, fsdp shards weights, gradients and optimizer state; none trains "
        "on one GPU. auto: none on one GPU, else ddp for LoRA/QLoRA whose estimated memory fits "
        "one GPU, fsdp for full fine-tuning and what does not fit (validate says which and why).",
    )
    logging_steps: PositiveInt = 10
    save_steps: PositiveInt = 100
    save_total_limit: int | None = Field(3, ge=1, description="Published checkpoints kept.")
    eval_steps: int | None = Field(
        None, ge=1, description="Evaluate every N steps (default: save_steps when data.eval)."
    )
    seed: int = Field(42, ge=0)
    report_to: Literal["tensorboard", "none"] | list[Literal["tensorboard"]] = "tensorboard"

    @field_validator("max_steps")
    @classmethod
    def _max_steps_not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be -1 (train num_train_epochs) or at least 1")
        return value

    @property
    def reporters(self) -> list[str]:
        if isinstance(self.report_to, list):
            return list(self.report_to)
        return [] if self.report_to == "none" else [self.report_to]


class OutputSection(_Section):
    uri: str = Field(
        "outputs",
        description="Run folder: local path (relative to the config's folder) or "
        "s3://bucket/runs/<run-id>.",
    )
    staging_dir: str | None = Field(
        None,
        description="Local folder for checkpoints before they are published "
        "(default: a folder under the system temp dir derived from output.uri).",
    )


class InterruptionSection(_Section):
    deadline_seconds: float = Field(
        100, gt=0, le=3600, description="Time from SIGTERM or spot notice to exit 75."
    )
    spot_polling: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Poll IMDSv2 spot/instance-action; auto = when the metadata token request "
        "succeeds (on EC2); always; never.",
    )
    poll_interval_seconds: float = Field(5, gt=0, le=60)


class RunConfig(_Section):
    """Everything one run needs; the resolved copy is saved as runs/<run-id>/config.yaml."""

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        title="tuning-lab run config",
    )

    model: ModelSection
    lora: LoraSection = Field(default_factory=LoraSection)
    data: DataSection
    training: TrainingSection = Field(default_factory=TrainingSection)
    output: OutputSection = Field(default_factory=OutputSection)
    interruption: InterruptionSection = Field(default_factory=InterruptionSection)

    @model_validator(mode="after")
    def _compatible(self) -> RunConfig:
        if self.training.eval_steps is not None and self.data.eval is None:
            raise ValueError("training.eval_steps is set but data.eval is not: give an eval file")
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the run config, as `tuning-trainer schema` prints it."""
    schema = RunConfig.model_json_schema(mode="validation")
    # Sections are inlined so the schema stays plain (no $ref) for every validator, ajv included.
    definitions = schema.pop("$defs", {})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **_inline(schema, definitions),
    }


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"$ref"}:
            return _inline(definitions[node["$ref"].removeprefix("#/$defs/")], definitions)
        return {key: _inline(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    return node


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"


# --- loading with provenance ------------------------------------------------------------------


@dataclass
class LoadedConfig:
    config: RunConfig
    location: str  # where the YAML came from (local absolute path or s3:// URI)
    sources: dict[tuple[str, ...], str] = field(default_factory=dict)


def load_config(
    location: str,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> LoadedConfig:
    """Read the YAML at ``location``, apply ``LLM_`` env and CLI ``overrides``, validate, resolve.

    ``overrides`` maps dotted paths (``training.learning_rate``) to values already parsed; the
    keys name the flag in error messages via :func:`cli_source`.
    """
    env = os.environ if env is None else env
    location = storage.absolute(location)
    text = _read_config_text(location)
    from_file = _parse_yaml(text, location)
    sources: dict[tuple[str, ...], str] = {}
    merged: dict[str, Any] = {}
    _merge(merged, from_file, sources, f"{location}")
    _merge(merged, _env_overrides(env), sources, None)
    for dotted, value in (overrides or {}).items():
        path = tuple(dotted.split("."))
        _merge(merged, _nest(path, value), sources, f"command line ({dotted})")
    try:
        config = RunConfig.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(_describe(err, sources, location)) from None
    _resolve_relative_paths(config, location)
    return LoadedConfig(config=config, location=location, sources=sources)


def _read_config_text(location: str) -> str:
    try:
        return storage.read_text(location)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {location}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {location} is not UTF-8 text ({err.reason})") from None


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, path: str, first_line: int, second_line: int) -> None:
        super().__init__(path)
        self.path, self.first_line, self.second_line = path, first_line, second_line


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping.

    Plain YAML keeps the last value, so a second ``training:`` block would silently replace the
    first one. Keys brought in by a merge (``<<: *defaults``) may still be overridden.
    """

    def construct_document(self, node: yaml.Node) -> Any:
        self._paths: dict[int, tuple[str, ...]] = {}
        self._checked: set[int] = set()
        self._index_paths(node, ())
        return super().construct_document(node)

    def _index_paths(self, node: yaml.Node, path: tuple[str, ...]) -> None:
        if id(node) in self._paths:
            return  # an alias: indexed where its anchor is
        if isinstance(node, yaml.MappingNode):
            self._paths[id(node)] = path
            for key_node, value_node in node.value:
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
                self._index_paths(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            self._paths[id(node)] = path
            for item in node.value:
                self._index_paths(item, path)

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # Checked here, before the merge keys are spliced into node.value (in place).
        if id(node) not in self._checked:
            self._checked.add(id(node))
            first_lines: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    seen = key in first_lines
                except TypeError:
                    continue  # unhashable: construct_mapping reports it
                if seen:
                    dotted = ".".join((*self._paths.get(id(node), ()), str(key)))
                    raise _DuplicateKey(dotted, first_lines[key], line)
                first_lines[key] = line
        super().flatten_mapping(node)


def _parse_yaml(text: str, location: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: safe
    except _DuplicateKey as err:
        raise ConfigError(
            f"{location}:{err.second_line}: duplicate key '{err.path}' at lines "
            f"{err.first_line} and {err.second_line}: YAML would silently keep only the last "
            "one; give each key once"
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{location}:{mark.line + 1}" if mark else location
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    if data is None:
        raise ConfigError(f"{location}: the config file is empty")
    if not isinstance(data, dict):
        raise ConfigError(f"{location}: the config must be a mapping of sections, got {data!r:.60}")
    return data


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """``LLM_SECTION__KEY=value`` as a nested dict; each leaf remembers its variable name."""
    result: dict[str, Any] = {}
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or ENV_NESTING not in name:
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split(ENV_NESTING))
        if any(not part for part in path):
            raise ConfigError(f"environment variable {name}: expected LLM_<SECTION>__<KEY>")
        node = result
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name} conflicts with another LLM_ one")
        node[path[-1]] = _EnvValue(name, _parse_scalar(env[name]))
    return result


@dataclass(frozen=True)
class _EnvValue:
    variable: str
    value: Any


def _parse_scalar(raw: str) -> Any:
    """Read an env/CLI value the way YAML would (numbers, booleans, null, flow lists)."""
    try:
        return yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        return raw


def parse_assignment(text: str) -> tuple[str, Any]:
    """``section.key=value`` from ``--set``."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or "." not in key:
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. lora.r=16")
    return key.strip(), _parse_scalar(raw)


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    node: Any = value
    for part in reversed(path):
        node = {part: node}
    return node


def _merge(
    into: dict[str, Any],
    new: Mapping[str, Any],
    sources: dict[tuple[str, ...], str],
    source: str | None,
    prefix: tuple[str, ...] = (),
) -> None:
    for key, value in new.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value, sources, source, path)
            continue
        if isinstance(value, Mapping):
            into[key] = {}
            _merge(into[key], value, sources, source, path)
            continue
        if isinstance(value, _EnvValue):
            into[key] = value.value
            sources[path] = f"environment variable {value.variable}"
        else:
            into[key] = value
            if source is not None:
                sources[path] = source


def _describe(err: ValidationError, sources: dict[tuple[str, ...], str], location: str) -> str:
    lines = [f"invalid run config {location}:"]
    for problem in err.errors(include_url=False):
        loc = tuple(str(part) for part in problem["loc"] if not isinstance(part, int))
        loc = _drop_union_tags(loc)
        dotted = ".".join(loc) or "(top level)"
        origin = _source_of(loc, sources, location)
        if problem["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(loc[:-1]))
            lines.append(f"  {dotted}: unknown key (from {origin}); allowed here: {allowed}")
        elif problem["type"] == "missing":
            lines.append(f"  {dotted}: required but missing (in {location})")
        else:
            shown = problem.get("input")
            value = "" if isinstance(shown, dict) else f" = {shown!r}"
            message = problem["msg"].removeprefix("Value error, ")
            lines.append(f"  {dotted}{value} (from {origin}): {message}")
    return "\n".join(dict.fromkeys(lines))  # a union reports one mistake per branch


def _drop_union_tags(loc: tuple[str, ...]) -> tuple[str, ...]:
    # pydantic names union branches in the location (e.g. "literal['all-linear']", "list[str]")
    return tuple(part for part in loc if "[" not in part)


def _source_of(loc: tuple[str, ...], sources: dict[tuple[str, ...], str], location: str) -> str:
    for end in range(len(loc), 0, -1):
        if loc[:end] in sources:
            return sources[loc[:end]]
    return location


def _allowed_keys(section_path: tuple[str, ...]) -> list[str]:
    model: type[BaseModel] = RunConfig
    for part in section_path:
        annotation = model.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


# --- relative paths ---------------------------------------------------------------------------


def _resolve_relative_paths(config: RunConfig, location: str) -> None:
    """Relative data paths resolve against data.root (default: the config's folder)."""
    config_folder = storage.parent(location)
    root = config.data.root or config_folder
    if not storage.is_absolute(root):
        root = storage.join(config_folder, root)
    config.data.root = root
    config.data.train = storage.join(root, config.data.train)
    if config.data.eval is not None:
        config.data.eval = storage.join(root, config.data.eval)
    if not storage.is_absolute(config.output.uri):
        config.output.uri = storage.join(config_folder, config.output.uri)
    base = config.model.base_model
    if base.startswith((".", "/")) or base.startswith("~"):
        config.model.base_model = storage.join(config_folder, os.path.expanduser(base))
