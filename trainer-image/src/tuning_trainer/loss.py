"""The causal-LM loss without the full logits: the output layer and cross-entropy in chunks.

    python -m pytest trainer-image/tests/test_loss.py     # same loss and gradients as the model's

For a 152k-token vocabulary the logits are the largest activation of a fine-tune: 4,096 tokens
of fp32 logits are 2.5 GB, and the loss keeps a second copy for its softmax and a third for the
gradient. Here the output layer runs only on the positions that have a target (prompt tokens
of a completion-only loss never needed logits) and in chunks of :data:`CHUNK_BYTES` of logits;
each chunk's gradient with respect to the hidden states (and the output weight, when it trains)
is computed at once and the chunk's logits are freed. The backward pass then only scales the
stored gradients.

The model still runs its own forward through its top-level module (so a DDP wrapper and PEFT
see a normal call; FSDP, which shards the output weight outside that call, is not supported
here); ``logits_to_keep`` set to an empty index makes it skip its output
layer, and a forward hook on the decoder takes the final hidden states. Architectures whose
logits are not exactly ``lm_head(hidden)`` (soft-capping, logit scaling) are not in
:data:`CHUNKED_MODEL_TYPES` and use the model's own loss.
"""

from __future__ import annotations

from typing import Any

import torch

from tuning_trainer.data import IGNORE_INDEX

CHUNK_BYTES = 256 * 2**20  # fp32 logits per chunk
# Model types whose causal-LM head is a plain linear layer over the decoder's final hidden
# states and whose forward accepts ``logits_to_keep`` as a tensor of positions.
CHUNKED_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "phi3"})


class _LinearCrossEntropy(torch.autograd.Function):
    """Forward computes the loss and, chunk by chunk, the unscaled gradients (kept in fp32).

    The scale (1 / token count, times the upstream gradient, which carries fp16's loss scale)
    is applied in fp32 in the backward pass: scaling before a cast to fp16 would flush small
    gradients to zero.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, scale, chunk, needs_grad):
        ctx.dtypes = (hidden.dtype, weight.dtype, None if bias is None else bias.dtype)
        ctx.scale = scale
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        fp32 = {"dtype": torch.float32, "device": hidden.device}
        grad_hidden = torch.empty(hidden.shape, **fp32) if needs_grad[0] else None
        grad_weight = torch.zeros(weight.shape, **fp32) if needs_grad[1] else None
        grad_bias = torch.zeros(bias.shape, **fp32) if needs_grad[2] else None
        for start in range(0, hidden.shape[0], chunk):
            h = hidden[start : start + chunk]
            t = targets[start : start + chunk]
            logits = h @ weight.t()
            if bias is not None:
                logits = logits + bias
            logits = logits.float()
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
            if not any(needs_grad):
                continue
            grad = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
            grad[torch.arange(t.numel(), device=t.device), t] -= 1.0
            if grad_hidden is not None:
                grad_hidden[start : start + chunk] = (grad.to(weight.dtype) @ weight).float()
            if grad_weight is not None:
                grad_weight.addmm_(grad.t(), h.float())
            if grad_bias is not None:
                grad_bias += grad.sum(0)
        ctx.save_for_backward(
            *(g if g is not None else torch.empty(0) for g in (grad_hidden, grad_weight, grad_bias))
        )
        ctx.present = [g is not None for g in (grad_hidden, grad_weight, grad_bias)]
        return total * scale

    @staticmethod
    def backward(ctx, grad_output):
        factor = grad_output.float() * ctx.scale
        grads = [
            (g * factor).to(dtype) if present else None
            for g, present, dtype in zip(ctx.saved_tensors, ctx.present, ctx.dtypes, strict=True)
        ]
        return grads[0], grads[1], grads[2], None, None, None, None


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    num_items: int | torch.Tensor | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> torch.Tensor:
    """``cross_entropy(hidden @ weight.T + bias, targets)`` summed over targets != -100.

    Divided by ``num_items`` when given (the Trainer's token count across gradient accumulation),
    else by the number of targets. ``hidden`` is (tokens, hidden); ``targets`` is (tokens,).
    """
    keep = torch.nonzero(targets.reshape(-1) != IGNORE_INDEX).reshape(-1)
    hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, keep)
    targets = targets.reshape(-1).index_select(0, keep)
    count = num_items if num_items is not None else keep.numel()
    scale = 1.0 / max(float(count), 1.0)
    dtype = torch.get_autocast_dtype("cpu" if hidden.device.type == "cpu" else "cuda")
    if torch.is_autocast_enabled(hidden.device.type):
        hidden, weight = hidden.to(dtype), weight.to(dtype)
        bias = bias.to(dtype) if bias is not None else None
    elif hidden.dtype != weight.dtype:
        hidden = hidden.to(weight.dtype)
    chunk = max(1, chunk_bytes // (4 * weight.shape[0]))
    grad_enabled = torch.is_grad_enabled()
    needs_grad = tuple(
        grad_enabled and t is not None and t.requires_grad for t in (hidden, weight, bias)
    )
    return _LinearCrossEntropy.apply(hidden, weight, bias, targets, scale, chunk, needs_grad)


def causal_model(model: Any) -> Any:
    """The transformers ``*ForCausalLM`` inside a PEFT wrapper, or the model itself."""
    get_base_model = getattr(model, "get_base_model", None)
    return get_base_model() if callable(get_base_model) else model


def chunked_loss_applies(model: Any) -> bool:
    """True when the model's logits are exactly its output layer over the final hidden states."""
    base = causal_model(model)
    head = base.get_output_embeddings()
    return base.config.model_type in CHUNKED_MODEL_TYPES and type(head) is torch.nn.Linear


def causal_lm_loss(
    model: Any, base: Any, inputs: dict[str, Any], num_items: int | torch.Tensor | None = None
) -> torch.Tensor:
    """The loss of a batch carrying ``shift_labels`` (:mod:`tuning_trainer.collator`).

    ``model`` is what the Trainer calls (possibly wrapped for DDP/FSDP or PEFT) and ``base`` the
    transformers model inside it (:func:`causal_model`). The forward runs through ``model`` with
    no output layer; :func:`linear_cross_entropy` computes the loss from the final hidden states.
    """
    features = {k: v for k, v in inputs.items() if k not in ("labels", "shift_labels")}
    device = inputs["input_ids"].device
    captured: list[torch.Tensor] = []

    def keep(_module: Any, _args: Any, output: Any) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output.last_hidden_state)

    hook = base.get_decoder().register_forward_hook(keep)
    try:
        model(**features, logits_to_keep=torch.empty(0, dtype=torch.long, device=device))
    finally:
        hook.remove()
    head = base.get_output_embeddings()
    return linear_cross_entropy(
        captured[-1], head.weight, head.bias, inputs["shift_labels"], num_items
    )
