"""The benchmark's correctness check passes a correct packed batch and fails a leaking one."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from tuning_trainer.collator import RowCollator
from tuning_trainer.data import Tokenized, TokenizedSet, build_rows, tokenize_example
from tuning_trainer.loss import causal_lm_loss
from tuning_trainer.model import build_builtin_model, builtin_tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench

TEXTS = ["hello world", "the quick brown fox jumps", "xy", "packing keeps documents apart"]


@pytest.fixture(scope="module")
def packed():
    tokenizer = builtin_tokenizer()
    examples = []
    for text in TEXTS:
        ids, labels = tokenize_example({"text": text}, "text", tokenizer, True)
        examples.append(Tokenized(ids, labels, len(ids)))
    rows = build_rows(TokenizedSet(examples), max_seq_length=128, packing=True)
    batch = RowCollator(tokenizer.pad_token_id, packing=True)(rows)
    model = build_builtin_model("tiny-llama", len(tokenizer), "sdpa").train()
    model.config.use_cache = False  # as in training: transformers then reads the packed row
    return model, batch


def test_a_batch_whose_documents_stay_apart_passes(packed) -> None:
    model, batch = packed
    with torch.no_grad():
        loss = float(causal_lm_loss(model, model, batch))

    result = bench.check_batch(model, batch, bench.split_documents(batch), loss)

    assert result["correct"] and result["documents"] == len(TEXTS), result


def test_a_batch_whose_documents_see_each_other_fails(packed) -> None:
    # TRL's "wrapped" packing: one running sequence, positions that never restart
    model, batch = packed
    documents = bench.split_documents(batch)  # the true documents, from the restarting ids
    leaking = {k: v for k, v in batch.items() if not k.startswith(("cu_seq", "max_length"))}
    leaking["position_ids"] = torch.arange(batch["input_ids"].shape[1])[None]
    with torch.no_grad():
        loss = float(model(**leaking, use_cache=False).loss)

    result = bench.check_batch(model, leaking, documents, loss)

    assert not result["correct"] and result["logit_error"] > 1e-2
