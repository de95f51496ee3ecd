"""Packing: best-fit rows, per-document positions, and the golden equality with unpacked runs."""

from __future__ import annotations

import pytest
import torch
from tuning_trainer.collator import RowCollator
from tuning_trainer.data import (
    Tokenized,
    TokenizedSet,
    build_rows,
    pack_best_fit,
    padding_fraction,
    tokenize_example,
)
from tuning_trainer.model import build_builtin_model, builtin_tokenizer

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


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_forward_equals_per_document_forwards(
    tokenizer, tokenized: TokenizedSet, attention: str
) -> None:
    model = build_builtin_model("tiny-llama", len(tokenizer), attention).eval()
    rows = build_rows(tokenized, max_seq_length=128, packing=True)
    batch = RowCollator(tokenizer.pad_token_id, attention, packing=True)(rows)
    batch.pop("labels")

    with torch.no_grad():
        packed = model(**batch).logits[0]
        start = 0
        for length in rows[0].sequence_lengths:
            ids = torch.tensor([rows[0].input_ids[start : start + length]])
            alone = model(input_ids=ids).logits[0]
            torch.testing.assert_close(packed[start : start + length], alone, atol=1e-5, rtol=1e-5)
            start += length


def test_without_the_block_mask_documents_would_leak(tokenizer, tokenized: TokenizedSet) -> None:
    # The reason the mask exists: position ids alone do not separate documents under sdpa.
    model = build_builtin_model("tiny-llama", len(tokenizer), "sdpa").eval()
    rows = build_rows(tokenized, max_seq_length=128, packing=True)
    batch = RowCollator(tokenizer.pad_token_id, "sdpa", packing=True)(rows)
    with torch.no_grad():
        masked = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        unmasked = model(
            input_ids=batch["input_ids"], attention_mask=torch.ones_like(batch["input_ids"])
        ).logits
    assert (masked - unmasked).abs().max() > 1e-2


def test_packed_loss_equals_unpacked_loss(tokenizer, tokenized: TokenizedSet) -> None:
    model = build_builtin_model("tiny-llama", len(tokenizer), "sdpa").eval()

    def loss(packing: bool) -> torch.Tensor:
        rows = build_rows(tokenized, max_seq_length=128, packing=packing)
        batch = RowCollator(tokenizer.pad_token_id, "sdpa", packing)(rows)
        with torch.no_grad():
            return model(**batch).loss

    torch.testing.assert_close(loss(True), loss(False), atol=1e-5, rtol=1e-5)


def test_padding_fraction_counts_padding_of_random_batches() -> None:
    assert padding_fraction([10, 10, 10, 10], batch_size=2) == 0.0
    assert padding_fraction([10, 30], batch_size=2) == pytest.approx(0.5 * 20 / 30 * 2 / 2)


def test_flash_attention_batches_are_one_flat_row_that_transformers_sees_as_packed(
    tokenizer, tokenized: TokenizedSet
) -> None:
    from transformers.modeling_flash_attention_utils import _is_packed_sequence

    rows = build_rows(tokenized, max_seq_length=16, packing=True)  # several rows
    assert len(rows) > 1

    batch = RowCollator(tokenizer.pad_token_id, "flash_attention_2", packing=True)(rows)

    total = sum(len(row.input_ids) for row in rows)
    assert batch["input_ids"].shape == batch["labels"].shape == (1, total)
    assert "attention_mask" not in batch  # no padding, no mask: the varlen kernel per document
    assert _is_packed_sequence(batch["position_ids"], batch_size=1)
    starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
    assert len(starts) == sum(len(row.sequence_lengths) for row in rows)
