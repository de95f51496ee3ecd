"""Batches of rows for the Trainer: padding, per-document positions, and the attention mask.

    python -m pytest trainer-image/tests/test_packing.py     # the golden test of this module

A packed row holds several examples. Position ids restart at 0 for each of them, but position
ids only separate documents under FlashAttention 2's variable-length path, and only for a batch
of one row; under sdpa or eager attention the second document would attend to the first
(DESIGN.md section 6). So with FlashAttention 2 the collator flattens the batch into one row
(no padding at all), and otherwise builds an explicit block-diagonal causal 4D mask: boolean for
sdpa, additive float for eager. Padding forms its own block there, so no query row is fully
masked (which would make NaNs).

The collator also counts real and padded tokens, which the progress callback turns into
tokens/s (the DataLoader must run in-process, ``dataloader_num_workers=0``, for the counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tuning_trainer.data import IGNORE_INDEX, Row


class RowCollator:
    def __init__(self, pad_token_id: int, attn_implementation: str, packing: bool) -> None:
        self.pad_token_id = pad_token_id
        self.attn_implementation = attn_implementation
        self.packing = packing
        self.real_tokens = 0  # non-padding tokens handed to the model so far
        self.padded_tokens = 0  # all tokens, padding included

    def __call__(self, rows: Sequence[Row]) -> dict[str, Any]:
        if self.packing and self.attn_implementation == "flash_attention_2":
            return self._flattened(rows)
        width = max(len(row.input_ids) for row in rows)
        count = len(rows)
        input_ids = torch.full((count, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((count, width), IGNORE_INDEX, dtype=torch.long)
        position_ids = torch.zeros((count, width), dtype=torch.long)
        document = torch.zeros((count, width), dtype=torch.long)
        for i, row in enumerate(rows):
            length = len(row.input_ids)
            input_ids[i, :length] = torch.tensor(row.input_ids)
            labels[i, :length] = torch.tensor(row.labels)
            position_ids[i, :length] = torch.tensor(row.position_ids)
            position_ids[i, length:] = torch.arange(width - length)
            start = 0
            for number, sequence_length in enumerate(row.sequence_lengths, start=1):
                document[i, start : start + sequence_length] = number
                start += sequence_length
            # padding stays document 0: a block of its own
        real = sum(len(row.input_ids) for row in rows)
        self.real_tokens += real
        self.padded_tokens += count * width
        batch = {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}
        if not self.packing:
            batch["attention_mask"] = (document > 0).long()
        else:
            batch["attention_mask"] = block_causal_mask(document, self.attn_implementation)
        return batch

    def _flattened(self, rows: Sequence[Row]) -> dict[str, Any]:
        """FlashAttention 2: every row of the batch in one sequence, no padding and no mask.

        transformers recognises packed documents from restarting position ids only when the
        batch has a single row, and then runs the variable-length kernel per document.
        """
        input_ids = [token for row in rows for token in row.input_ids]
        self.real_tokens += len(input_ids)
        self.padded_tokens += len(input_ids)
        return {
            "input_ids": torch.tensor([input_ids]),
            "labels": torch.tensor([[label for row in rows for label in row.labels]]),
            "position_ids": torch.tensor([[p for row in rows for p in row.position_ids]]),
        }


def block_causal_mask(document: torch.Tensor, attn_implementation: str) -> torch.Tensor:
    """(batch, 1, seq, seq) mask: query i sees key j iff j <= i and both are in one document."""
    width = document.shape[1]
    same = document[:, :, None] == document[:, None, :]
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    allowed = (same & causal)[:, None, :, :]
    if attn_implementation == "sdpa":
        return allowed
    mask = torch.zeros(allowed.shape, dtype=torch.float32)
    return mask.masked_fill(~allowed, torch.finfo(torch.float32).min)
