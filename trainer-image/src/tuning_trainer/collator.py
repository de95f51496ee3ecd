"""Batches of rows for the Trainer: packed micro-batches as one row, or padded rows.

    python -m pytest trainer-image/tests/test_packing.py     # the golden tests of this module

With packing, every example of the micro-batch goes into one row, end to end, with no padding
and no attention mask: position ids restart at 0 for each example and ``cu_seq_lens_q``/``_k``
give the document boundaries. FlashAttention 2 reads them in its variable-length kernel; under
sdpa or eager the model runs :mod:`tuning_trainer.attention`, which attends within each
document. So attention costs Σ Lᵢ² over the documents instead of the row's L², and no LxL mask
is ever built.

``shift_labels`` holds each token's target (the next token of the same document, or -100): the
last token of one document never learns to predict the first token of the next. The Trainer
counts the loss's tokens from it, and :mod:`tuning_trainer.loss` and transformers' loss both
read it.

Without packing, rows are padded to the longest of the batch with a 2D attention mask.

The collator also counts real and padded tokens, which the progress callback turns into
tokens/s (the DataLoader must run in-process, ``dataloader_num_workers=0``, for the counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tuning_trainer.data import IGNORE_INDEX, Row


class RowCollator:
    def __init__(self, pad_token_id: int, packing: bool) -> None:
        self.pad_token_id = pad_token_id
        self.packing = packing

    def __call__(self, rows: Sequence[Row]) -> dict[str, Any]:
        return self._flattened(rows) if self.packing else self._padded(rows)

    def _padded(self, rows: Sequence[Row]) -> dict[str, Any]:
        width = max(len(row.input_ids) for row in rows)
        count = len(rows)
        input_ids = torch.full((count, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((count, width), IGNORE_INDEX, dtype=torch.long)
        shift_labels = torch.full((count, width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((count, width), dtype=torch.long)
        for i, row in enumerate(rows):
            length = len(row.input_ids)
            input_ids[i, :length] = torch.tensor(row.input_ids)
            labels[i, :length] = torch.tensor(row.labels)
            shift_labels[i, :length] = torch.tensor(shifted(row))
            attention_mask[i, :length] = 1
        return {
            "input_ids": input_ids,
            "labels": labels,
            "shift_labels": shift_labels,
            "attention_mask": attention_mask,
        }

    def _flattened(self, rows: Sequence[Row]) -> dict[str, Any]:
        input_ids = [token for row in rows for token in row.input_ids]
        lengths = [length for row in rows for length in row.sequence_lengths]
        bounds = torch.zeros(len(lengths) + 1, dtype=torch.int32)
        bounds[1:] = torch.tensor(lengths).cumsum(0)
        return {
            "input_ids": torch.tensor([input_ids]),
            "labels": torch.tensor([[label for row in rows for label in row.labels]]),
            "shift_labels": torch.tensor([[label for row in rows for label in shifted(row)]]),
            "position_ids": torch.tensor([[p for row in rows for p in row.position_ids]]),
            "cu_seq_lens_q": bounds,
            "cu_seq_lens_k": bounds,
            "max_length_q": max(lengths),
            "max_length_k": max(lengths),
        }


def shifted(row: Row) -> list[int]:
    """Each token's target within its own document: labels moved left by one, -100 at the end."""
    targets: list[int] = []
    start = 0
    for length in row.sequence_lengths:
        targets += [*row.labels[start + 1 : start + length], IGNORE_INDEX]
        start += length
    return targets
