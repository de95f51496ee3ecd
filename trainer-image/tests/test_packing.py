"""Packing: best-fit rows, per-document positions, and the golden equality with unpacked runs."""

from __future__ import annotations

import pytest
import torch
from tuning_trainer.collator import RowCollator
from tuning_trainer.config import RunConfig
from tuning_trainer.data import (
    IGNORE_INDEX,
    Tokenized,
    TokenizedSet,
    build_rows,
    pack_best_fit,
    padding_fraction,
    tokenize_example,
)
from tuning_trainer.model import (
    HardwarePlan,
    build_builtin_model,
    builtin_tokenizer,
    training_attention,
)

TEXTS = ["hello world", "abc", "the quick brown fox jumps", "xy", "packing keeps documents apart"]


@pytest.fixture(scope="module")
def tokenizer():
    return builtin_tokenizer()


@pytest.fixture(scope="module")
def tokenized(tokenizer) -> TokenizedSet:
    examples = []
    for text in TEXTS:
        ids, labels = tokenize_example({"text": text}, "text", tokenizer, True)
        examples.append(Tokenized(ids, labels, len(ids)))
    return TokenizedSet(examples)


def test_best_fit_keeps_every_example_once_and_within_capacity() -> None:
    lengths = [90, 10, 60, 40, 30, 70, 5, 95]
    rows = pack_best_fit(lengths, capacity=100)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 100 for row in rows)
    assert len(rows) == 4  # 95+5, 90+10, 70+30, 60+40: perfect fits found


def test_position_ids_restart_for_every_document(tokenized: TokenizedSet) -> None:
    rows = build_rows(tokenized, max_seq_length=128, packing=True)
    assert len(rows) == 1
    row = rows[0]
    start = 0
    for length in row.sequence_lengths:
        assert row.position_ids[start : start + length] == list(range(length))
        start += length


def packed_model(tokenizer, attention: str, name: str = "tiny-llama"):
    """A builtin model with the attention a packed training run uses."""
    model = build_builtin_model(name, len(tokenizer), attention).eval()
    plan = HardwarePlan("cpu", "fp32", attention, None)
    config = RunConfig.model_validate(
        {"model": {"base_model": f"builtin:{name}"}, "data": {"train": "t.jsonl", "packing": True}}
    )
    model.set_attn_implementation(training_attention(config, plan, model.config))
    return model


def packing_config(max_seq_length: int = 128) -> RunConfig:
    return RunConfig.model_validate(
        {
            "model": {"base_model": "builtin:tiny-llama"},
            "data": {"train": "t.jsonl", "packing": True, "max_seq_length": max_seq_length},
        }
    )


@pytest.mark.parametrize(
    ("model_type", "extra", "per_document"),
    [
        ("llama", {}, True),
        ("qwen2", {"sliding_window": 32, "use_sliding_window": False}, True),  # unused window
        ("mistral", {"sliding_window": 64}, False),  # a window shorter than a row
        ("mistral", {"sliding_window": None}, True),
        ("gemma2", {}, False),  # soft-capped attention: not plain sdpa
    ],
)
def test_per_document_attention_only_where_it_is_exact(model_type, extra, per_document) -> None:
    from transformers import AutoConfig

    model_config = AutoConfig.for_model(model_type, **extra)
    plan = HardwarePlan("cpu", "fp32", "sdpa", None)
    chosen = training_attention(packing_config(128), plan, model_config)
    assert (chosen != "sdpa") == per_document


def test_a_model_trained_per_document_still_reads_masks_and_caches(tokenizer) -> None:
    # After training the model object may be used in-process (evaluation, generation): padded
    # batches and KV caches must behave as under plain sdpa.
    trained = packed_model(tokenizer, "sdpa")
    plain = build_builtin_model("tiny-llama", len(tokenizer), "sdpa").eval()
    ids = torch.randint(3, 200, (2, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0  # left padding
    with torch.no_grad():
        torch.testing.assert_close(
            trained(input_ids=ids, attention_mask=mask).logits[mask.bool()],
            plain(input_ids=ids, attention_mask=mask).logits[mask.bool()],
        )
        first = trained(input_ids=ids[1:, :8], use_cache=True)
        more = trained(input_ids=ids[1:, 8:], past_key_values=first.past_key_values).logits
        torch.testing.assert_close(more, plain(input_ids=ids[1:]).logits[:, 8:])


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_forward_equals_per_document_forwards(
    tokenizer, tokenized: TokenizedSet, attention: str
) -> None:
    model = packed_model(tokenizer, attention)
    rows = build_rows(tokenized, max_seq_length=16, packing=True)  # several rows, one batch
    assert len(rows) > 1
    batch = RowCollator(tokenizer.pad_token_id, packing=True)(rows)
    documents = split_documents(rows)
    assert "attention_mask" not in batch  # no L x L mask is ever built

    with torch.no_grad():
        packed = model(**without_labels(batch)).logits[0]
        start = 0
        for ids in documents:
            alone = model(input_ids=torch.tensor([ids])).logits[0]
            torch.testing.assert_close(
                packed[start : start + len(ids)], alone, atol=1e-5, rtol=1e-5
            )
            start += len(ids)


def test_transformers_separates_documents_by_position_ids_alone(
    tokenizer, tokenized: TokenizedSet
) -> None:
    # What docs/performance.md says of TRL's bfd packing under plain sdpa: one row, position ids
    # restarting per document, no attention mask and no KV cache (training) -> transformers
    # builds the block-diagonal mask. With a cache (use_cache=True) it does not look.
    model = build_builtin_model("tiny-llama", len(tokenizer), "sdpa").eval()
    rows = build_rows(tokenized, max_seq_length=128, packing=True)
    batch = RowCollator(tokenizer.pad_token_id, packing=True)(rows)
    documents = split_documents(rows)
    ids, positions = batch["input_ids"], batch["position_ids"]

    with torch.no_grad():
        by_positions = model(input_ids=ids, position_ids=positions, use_cache=False).logits[0]
        cached = model(input_ids=ids, position_ids=positions, use_cache=True).logits[0]
        # A plain causal row (TRL's "wrapped" packing): later documents see the earlier ones.
        running = model(input_ids=ids, use_cache=False).logits[0]
    first = len(documents[0])
    last = torch.tensor([documents[-1]])
    with torch.no_grad():
        alone = model(input_ids=last).logits[0]
    torch.testing.assert_close(by_positions[-last.shape[1] :], alone, atol=1e-5, rtol=1e-5)
    assert (running[first:] - by_positions[first:]).abs().max() > 1e-2
    assert (cached[first:] - by_positions[first:]).abs().max() > 1e-2


@pytest.mark.parametrize("packing", [True, False])
def test_loss_equals_the_per_document_loss(tokenizer, tokenized: TokenizedSet, packing) -> None:
    from tuning_trainer.loss import causal_lm_loss

    model = (
        packed_model(tokenizer, "sdpa")
        if packing
        else build_builtin_model("tiny-llama", len(tokenizer), "sdpa").eval()
    )
    rows = build_rows(tokenized, max_seq_length=16, packing=packing)
    batch = RowCollator(tokenizer.pad_token_id, packing)(rows)
    with torch.no_grad():
        loss = causal_lm_loss(model, model, batch)
        total = count = 0
        for example in tokenized.examples:
            labels = torch.tensor([example.labels])
            out = model(input_ids=torch.tensor([example.input_ids]), labels=labels)
            targets = int((labels[0, 1:] != IGNORE_INDEX).sum())
            total, count = total + out.loss * targets, count + targets
    torch.testing.assert_close(loss, total / count, atol=1e-5, rtol=1e-5)


def test_no_token_learns_to_predict_the_next_document(tokenizer, tokenized: TokenizedSet) -> None:
    rows = build_rows(tokenized, max_seq_length=128, packing=True)
    batch = RowCollator(tokenizer.pad_token_id, packing=True)(rows)
    ends = batch["cu_seq_lens_q"][1:] - 1
    assert (batch["shift_labels"][0, ends] == IGNORE_INDEX).all()
    inside = torch.ones(batch["input_ids"].shape[1], dtype=torch.bool)
    inside[ends] = False
    targets = batch["labels"][0, 1:][inside[:-1]]
    torch.testing.assert_close(batch["shift_labels"][0, :-1][inside[:-1]], targets)


def split_documents(rows) -> list[list[int]]:
    documents = []
    for row in rows:
        start = 0
        for length in row.sequence_lengths:
            documents.append(row.input_ids[start : start + length])
            start += length
    return documents


def without_labels(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k not in ("labels", "shift_labels")}


def test_padding_fraction_counts_padding_of_random_batches() -> None:
    assert padding_fraction([10, 10, 10, 10], batch_size=2) == 0.0
    assert padding_fraction([10, 30], batch_size=2) == pytest.approx(0.5 * 20 / 30 * 2 / 2)


def test_flash_attention_batches_are_one_flat_row_that_transformers_sees_as_packed(
    tokenizer, tokenized: TokenizedSet
) -> None:
    from transformers.modeling_flash_attention_utils import _is_packed_sequence

    rows = build_rows(tokenized, max_seq_length=16, packing=True)  # several rows
    assert len(rows) > 1

    batch = RowCollator(tokenizer.pad_token_id, packing=True)(rows)

    total = sum(len(row.input_ids) for row in rows)
    assert batch["input_ids"].shape == batch["labels"].shape == (1, total)
    assert "attention_mask" not in batch  # no padding, no mask: the varlen kernel per document
    assert _is_packed_sequence(batch["position_ids"], batch_size=1)
    starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
    assert len(starts) == sum(len(row.sequence_lengths) for row in rows)
