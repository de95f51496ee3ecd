"""Attention over a packed row, one document at a time: cost Σ Lᵢ², no LxL mask.

    python -m pytest trainer-image/tests/test_packing.py     # packed forward == separate forwards

A packed micro-batch is one row of several documents whose position ids restart at 0
(:mod:`tuning_trainer.collator`). transformers 5.23 recognises that row and, for sdpa and eager,
builds a dense block-diagonal (L, L) mask: correct, but the attention still computes every
off-diagonal block and the mask alone grows as L² (a 16k-token row needs a 256M-entry mask per
layer call). The functions here instead cut the row at the documents' boundaries and run
transformers' sdpa function (or Llama's eager one) on each document with a plain causal mask;
GQA, scaling and dropout stay theirs. That is exact for the architectures in
:data:`DOCUMENT_MODEL_TYPES` (no attention soft-capping, no sinks); a sliding window shorter
than a document is refused, so :func:`tuning_trainer.model.training_attention` keeps
transformers' own attention for models whose window is shorter than ``max_seq_length``. On
GPU, FlashAttention 2 does the same in one variable-length kernel and is used instead when it
is installed.

They are registered with transformers' ``AttentionInterface`` under :data:`DOCUMENT_ATTENTION`
names, with a mask function that builds no mask for a training row (no attention mask, no KV
cache) and transformers' own mask otherwise; a call with a mask (padded rows, generation) goes
to the inner function unchanged.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch

DOCUMENT_ATTENTION = {"sdpa": "tuning_documents_sdpa", "eager": "tuning_documents_eager"}
# Architectures whose attention is exactly sdpa/Llama-eager over (query, key, value): per-document
# attention is exact for them.
DOCUMENT_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "phi3"})


def document_bounds(position_ids: torch.Tensor) -> list[int]:
    """Cumulative document starts of a one-row packed batch: [0, end₁, end₂, …, L].

    A document starts where the position id does not continue the previous one (the rule
    transformers' ``find_packed_sequence_indices`` uses).
    """
    positions = position_ids.reshape(-1)
    starts = torch.nonzero(positions[1:] != positions[:-1] + 1).reshape(-1) + 1
    return [0, *starts.tolist(), positions.numel()]


def _bounds(query: torch.Tensor, kwargs: dict[str, Any]) -> list[int] | None:
    cumulative = kwargs.get("cu_seq_lens_q")
    if cumulative is not None:
        return [int(x) for x in cumulative.tolist()]
    position_ids = kwargs.get("position_ids")
    if position_ids is None or query.shape[0] != 1:
        return None
    return document_bounds(position_ids)


def _per_document(inner_name: str):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.models.llama.modeling_llama import eager_attention_forward

    def forward(
        module: torch.nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, None]:
        cached = key.shape[2] != query.shape[2]  # generation with a KV cache: not a packed row
        bounds = None if attention_mask is not None or cached else _bounds(query, kwargs)
        if kwargs.get("sliding_window") is not None and bounds is not None:
            longest = max(b - a for a, b in itertools.pairwise(bounds))
            if longest > kwargs["sliding_window"]:
                raise ValueError(
                    f"per-document attention does not apply a sliding window; a document of "
                    f"{longest} tokens exceeds this model's window of {kwargs['sliding_window']}: "
                    "use model.attn_implementation flash_attention_2 or data.packing false"
                )
        if bounds is None:
            return _run(inner_name, module, query, key, value, attention_mask, kwargs)
        positions, outputs = [], []
        for index, real in _groups(bounds, query.device):
            # (heads, documents, width, dim) -> (documents, heads, width, dim)
            q, k, v = (t[0][:, index].transpose(0, 1) for t in (query, key, value))
            out = _run(inner_name, module, q, k, v, None, kwargs)[0]  # (docs, width, heads, dim)
            positions.append(index[real])
            outputs.append(out[real])
        heads, dim = outputs[0].shape[1:]
        result = query.new_zeros(query.shape[2], heads, dim)
        return result.index_copy(0, torch.cat(positions), torch.cat(outputs))[None], None

    def _run(name, module, query, key, value, mask, kwargs):
        rest = {k: v for k, v in kwargs.items() if k not in _ROW_KWARGS}
        if name == "sdpa":  # no mask: sdpa runs causal
            return sdpa_attention_forward(module, query, key, value, mask, **rest)
        if mask is None:  # eager applies only the mask it is given
            mask = _causal_additive(query.shape[2], query.dtype, query.device)
        return eager_attention_forward(module, query, key, value, mask, **rest)

    return forward


def _width(length: int) -> int:
    """The padded length of a document: a power of two up to 64, then a multiple of 32."""
    if length <= 64:
        return max(16, 1 << (length - 1).bit_length())
    return -(-length // 32) * 32


def _groups(bounds: list[int], device: torch.device):
    """Documents of one padded width, as (index, real): token positions (docs, width) to gather.

    Documents are padded at the end by repeating their last position. Under a causal mask no
    real query sees a padded key, so the real outputs are exact; ``real`` marks them. Padding
    to a few widths runs each group in one batched call and keeps the number of distinct shapes
    small: with one shape per document length, bf16 training on a CPU with AMX grew its memory
    by ~100 MB per step (memory the kernels keep per shape; fp32 did not grow), and with widths
    bucketed it levels off.
    """
    groups: dict[int, list[tuple[int, int]]] = {}
    for start, end in itertools.pairwise(bounds):
        groups.setdefault(_width(end - start), []).append((start, end))
    for width, documents in groups.items():
        offsets = torch.arange(width)
        starts = torch.tensor([start for start, _ in documents])[:, None]
        lengths = torch.tensor([end - start for start, end in documents])[:, None]
        index = starts + torch.minimum(offsets, lengths - 1)
        yield index.to(device), (offsets < lengths).to(device)


_ROW_KWARGS = {
    "position_ids",
    "cu_seq_lens_q",
    "cu_seq_lens_k",
    "max_length_q",
    "max_length_k",
    "sliding_window",
}


def _causal_additive(length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    blocked = torch.ones(length, length, dtype=torch.bool, device=device).triu(1)
    mask = torch.zeros(length, length, dtype=dtype, device=device)
    return mask.masked_fill(blocked, torch.finfo(dtype).min)[None, None]


def _mask(inner_name: str):
    """No mask for a training row (the attention finds the documents), else transformers' own."""
    from transformers.masking_utils import eager_mask, sdpa_mask

    inner = sdpa_mask if inner_name == "sdpa" else eager_mask

    def build(*, q_length, kv_length, attention_mask=None, q_offset=0, **kwargs):
        training_row = attention_mask is None and kv_length == q_length
        if training_row and isinstance(q_offset, int) and q_offset == 0:
            return None
        return inner(
            q_length=q_length,
            kv_length=kv_length,
            attention_mask=attention_mask,
            q_offset=q_offset,
            **kwargs,
        )

    return build


def register() -> None:
    """Make the :data:`DOCUMENT_ATTENTION` names known to transformers (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    for inner, name in DOCUMENT_ATTENTION.items():
        AttentionInterface.register(name, _per_document(inner))
        AttentionMaskInterface.register(name, _mask(inner))
