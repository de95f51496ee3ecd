"""docs/costs.md's "Choosing an instance" table: which allowed instance types hold a 7B-70B
fine-tune, by the trainer's own memory estimate, with their GPUs and us-east-1 prices.

    make docs                                                  # rewrites the block
    .venv/bin/python scripts/docs/instance_table.py            # the same, this block only
    .venv/bin/python scripts/docs/instance_table.py --check    # exit 1 when it is out of date

Every cell comes from ``tuning_trainer.estimate``: ``fitting_types`` (``choose_strategy`` and
the FIT_SHARE rule, exactly what ``tuning-trainer validate`` prints as "fits on") for one stated
run setting (:data:`SETTING`), with each model's shape counted on the meta device from its
published config.json (:data:`MODELS`; docs/external-names.md gives the sources). The types,
GPUs and prices are the trainer's ``instance_prices.json``, itself generated from
lib/instance-types.ts and lib/pricing.ts. ``make test-docs`` fails when the block in
docs/costs.md differs from what this prints (test/docs/test_instance_table.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# The trainer tests' copy of Llama-3.1-8B's config.json is the repository's one copy of it.
sys.path.insert(0, str(ROOT / "trainer-image" / "tests"))

from trainer_testlib import LLAMA_31_8B  # noqa: E402
from tuning_trainer import estimate  # noqa: E402
from tuning_trainer.config import RunConfig  # noqa: E402

DOCUMENT = ROOT / "docs" / "costs.md"
BLOCK = "choosing-an-instance"
METHODS = ("lora", "qlora", "full")
METHOD_NAMES = {"lora": "LoRA", "qlora": "QLoRA", "full": "full"}
# The table's second sequence length: the cells that change show which fits are borderline.
LONGER_SEQ_LENGTH = 4096

# The run every cell assumes: the trainer's defaults where they are realistic for a 7B-70B
# fine-tune, one row per GPU per micro-batch, recomputation on.
SETTING: dict[str, Any] = {
    "lora": {"r": 16, "target_modules": "all-linear"},
    "data": {"train": "train.jsonl", "max_seq_length": 2048, "packing": True},
    "training": {
        "per_device_train_batch_size": 1,
        "gradient_checkpointing": True,
        "precision": "auto",
        "optim": "adamw_torch",
        "distributed": "auto",
    },
}


@dataclass(frozen=True)
class Model:
    name: str
    config_class: str  # the transformers config class of its config.json's model_type
    config: dict[str, Any]  # the config.json values that set the shape


# config.json values, looked up on 2026-12-01 (docs/external-names.md, "Model shapes of the
# instance table"). The rest of each config (RoPE, norms, token ids) does not change the shape.
MODELS = (
    Model(
        "Qwen2.5-7B",
        "Qwen2Config",
        {
            "vocab_size": 152_064,
            "hidden_size": 3584,
            "intermediate_size": 18_944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "tie_word_embeddings": False,
        },
    ),
    Model("Llama-3.1-8B", "LlamaConfig", LLAMA_31_8B),
    Model(
        "Qwen2.5-14B",
        "Qwen2Config",
        {
            "vocab_size": 152_064,
            "hidden_size": 5120,
            "intermediate_size": 13_824,
            "num_hidden_layers": 48,
            "num_attention_heads": 40,
            "num_key_value_heads": 8,
            "tie_word_embeddings": False,
        },
    ),
    Model(
        "Qwen2.5-32B",
        "Qwen2Config",
        {
            "vocab_size": 152_064,
            "hidden_size": 5120,
            "intermediate_size": 27_648,
            "num_hidden_layers": 64,
            "num_attention_heads": 40,
            "num_key_value_heads": 8,
            "tie_word_embeddings": False,
        },
    ),
    Model(
        "Llama-3.1-70B",
        "LlamaConfig",
        {
            "vocab_size": 128_256,
            "hidden_size": 8192,
            "intermediate_size": 28_672,
            "num_hidden_layers": 80,
            "num_attention_heads": 64,
            "num_key_value_heads": 8,
            "tie_word_embeddings": False,
        },
    ),
)


def shape(model: Model) -> estimate.ModelShape:
    """The model's weights counted on the meta device: no memory, no download."""
    return _shape(model.name)


@cache
def _shape(name: str) -> estimate.ModelShape:
    import transformers

    model = next(m for m in MODELS if m.name == name)
    config_class = getattr(transformers, model.config_class)
    return estimate.model_shape(config_class(**model.config))


def run_config(model: Model, method: str, setting: dict[str, Any]) -> RunConfig:
    return RunConfig.model_validate(
        {"model": {"base_model": model.name, "method": method}, **setting}
    )


def with_length(setting: dict[str, Any], max_seq_length: int) -> dict[str, Any]:
    return {**setting, "data": {**setting["data"], "max_seq_length": max_seq_length}}


@dataclass(frozen=True)
class Group:
    """The sizes of one family with one GPU count: same GPUs, so the same fit."""

    family: str
    gpus: int
    types: tuple[str, ...]

    @property
    def label(self) -> str:
        sizes = [t.split(".", 1)[1] for t in self.types]
        if len(sizes) == 1:
            return f"`{self.types[0]}`"
        return f"`{self.family}`: {', '.join(sizes)}"

    @property
    def short(self) -> str:
        """As ``validate`` names a group in its "fits on" line."""
        return (
            f"`{self.types[0]}`" if len(self.types) == 1 else f"{self.family} {self.gpus}-GPU sizes"
        )


def groups() -> list[Group]:
    """Allowed types by family and GPU count, in instance_prices.json's order."""
    found: dict[tuple[str, int], list[str]] = {}
    for instance_type in estimate.supported_instance_types():
        key = (instance_type.split(".")[0], estimate.gpu_count(instance_type))
        found.setdefault(key, []).append(instance_type)
    return [Group(family, gpus, tuple(types)) for (family, gpus), types in found.items()]


# (group label, model name, method) -> "none", "ddp", "fsdp" or "no"
Fits = dict[tuple[str, str, str], str]


def fits(setting: dict[str, Any]) -> Fits:
    """What ``validate`` says for every group, model and method: ``fitting_types``'s strategy,
    or ``no`` for a type it leaves out."""
    result: Fits = {}
    for model in MODELS:
        for method in METHODS:
            fitting = dict(estimate.fitting_types(run_config(model, method, setting), shape(model)))
            for group in groups():
                chosen = {fitting.get(t, "no") for t in group.types}
                if len(chosen) != 1:  # the sizes of a group share their GPUs: never differs
                    raise AssertionError(f"{model.name} {method}: {group.label} sizes disagree")
                result[(group.label, model.name, method)] = chosen.pop()
    return result


def _described(instance_type: str) -> dict[str, Any]:
    return estimate.prices()["instance_types"][instance_type]


def _usd_range(group: Group, price: Callable[[str], float]) -> str:
    values = [price(t) for t in group.types]
    low, high = min(values), max(values)
    return f"{low:.2f}" if low == high else f"{low:.2f}-{high:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table as scripts/docs/markdown.ts writes them."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *map(line, rows)])


def _setting_text(setting: dict[str, Any]) -> str:
    training, data, lora = setting["training"], setting["data"], setting["lora"]
    return (
        f"per_device_train_batch_size {training['per_device_train_batch_size']}, "
        f"max_seq_length {data['max_seq_length']}, gradient_checkpointing on, "
        f"precision {training['precision']} (bf16), LoRA r={lora['r']} on "
        f"{lora['target_modules']}, optim {training['optim']}, "
        f"distributed {training['distributed']}"
    )


def render() -> str:
    """The block's markdown: the setting, one row per family and GPU count, and the cells that
    change at a longer sequence length."""
    base = fits(SETTING)
    spot = estimate.prices()["spot_snapshot"]
    rows = []
    for group in groups():
        first = _described(group.types[0])
        rows.append(
            [
                group.label,
                f"{group.gpus} x {first['gpu_model']}",
                f"{first['gpu_memory_gib']:g}",
                _usd_range(group, lambda t: _described(t)["on_demand_usd_per_hour"]),
                _usd_range(group, lambda t: _described(t)["spot"]["mean_usd_per_hour"]),
                *(
                    " / ".join(base[(group.label, model.name, m)] for m in METHODS)
                    for model in MODELS
                ),
            ]
        )
    header = [
        "instance types",
        "GPUs",
        "GiB per GPU (EC2)",
        "on-demand USD/hour",
        f"spot USD/hour (mean, {spot['date']})",
        *(model.name for model in MODELS),
    ]
    longer = fits(with_length(SETTING, LONGER_SEQ_LENGTH))
    short = {group.label: group.short for group in groups()}
    # model and method -> (was, now) -> the groups where the strategy changes so
    changed: dict[tuple[str, str], dict[tuple[str, str], list[str]]] = {}
    for (label, model, method), was in base.items():
        if (now := longer[(label, model, method)]) != was:
            by_change = changed.setdefault((model, method), {})
            by_change.setdefault((was, now), []).append(short[label])
    changes = [
        f"- {model} {METHOD_NAMES[method]}: "
        + "; ".join(f"{was} -> {now} on {', '.join(where)}" for (was, now), where in by.items())
        for (model, method), by in changed.items()
    ]
    return (
        f"ESTIMATED by `tuning_trainer.estimate` for {_setting_text(SETTING)}. Each model cell "
        "reads **LoRA / QLoRA / full**: the strategy `validate` would choose (`none`: one "
        "process on the one GPU; `ddp`; `fsdp`), or `no` where the estimate per GPU exceeds "
        f"{100 * estimate.FIT_SHARE:.0f} % of the GPU's memory. Prices are us-east-1: on demand "
        f"as of {estimate.prices()['us_east_1_date']}, spot the mean across Availability Zones "
        f"on {spot['date']}; a range runs from a family's smallest size to its largest.\n\n"
        + _table(header, rows)
        + f"\n\nAt max_seq_length {LONGER_SEQ_LENGTH} (the rest unchanged) these cells change:"
        + "\n\n"
        + ("\n".join(changes) if changes else "- none")
    )


# --- the marked block in docs/costs.md (markers as scripts/docs/markdown.ts writes them) --------


def markers(name: str) -> tuple[str, str]:
    return (
        f"<!-- BEGIN GENERATED {name}: make docs rewrites this block -->",
        f"<!-- END GENERATED {name} -->",
    )


def read_block(document: str, name: str) -> str | None:
    begin, end = markers(name)
    start, stop = document.find(begin), document.find(end)
    if start < 0 or stop < start:
        return None
    return document[start + len(begin) : stop].strip()


def write_block(document: str, name: str, content: str) -> str:
    begin, end = markers(name)
    start, stop = document.find(begin), document.find(end)
    if start < 0 or stop < start:
        raise ValueError(f"no block {name}: add the lines\n{begin}\n{end}")
    return f"{document[:start]}{begin}\n{content.strip()}\n{document[stop:]}"


def main(argv: list[str]) -> int:
    text = DOCUMENT.read_text()
    content = render()
    relative = DOCUMENT.relative_to(ROOT)
    if "--check" in argv:
        if read_block(text, BLOCK) == content.strip():
            return 0
        print(f"{relative}: block {BLOCK} is out of date; run `make docs`", file=sys.stderr)
        return 1
    updated = write_block(text, BLOCK, content)
    if updated != text:
        DOCUMENT.write_text(updated)
        print(f"{relative}: block {BLOCK} rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
