"""The chunked loss: the same loss and gradients as the full logits, without materialising them."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional
from tuning_trainer.data import IGNORE_INDEX
from tuning_trainer.loss import causal_lm_loss, chunked_loss_applies, linear_cross_entropy

VOCAB, HIDDEN, TOKENS = 1000, 32, 70


def inputs(bias: bool, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(TOKENS, HIDDEN, generator=generator, requires_grad=True)
    weight = torch.randn(VOCAB, HIDDEN, generator=generator, requires_grad=True)
    extra = torch.randn(VOCAB, generator=generator, requires_grad=True) if bias else None
    targets = torch.randint(0, VOCAB, (TOKENS,), generator=generator)
    targets[::3] = IGNORE_INDEX
    return hidden, weight, extra, targets


def reference(hidden, weight, bias, targets, num_items=None):
    logits = functional.linear(hidden, weight, bias).float()
    total = functional.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / (num_items if num_items is not None else (targets != IGNORE_INDEX).sum())


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("num_items", [None, 123])
def test_loss_and_gradients_match_the_full_logits(bias: bool, num_items: int | None) -> None:
    hidden, weight, extra, targets = inputs(bias)
    expected = reference(hidden, weight, extra, targets, num_items)
    expected.backward()
    wanted = [t.grad.clone() for t in (hidden, weight, extra) if t is not None]
    for t in (hidden, weight, extra):
        if t is not None:
            t.grad = None

    chunk_bytes = 4 * VOCAB * 16  # 16 tokens per chunk: several chunks and a ragged last one
    loss = linear_cross_entropy(hidden, weight, extra, targets, num_items, chunk_bytes)
    (2.0 * loss).backward()  # an upstream gradient other than 1 is applied

    torch.testing.assert_close(loss, expected)
    got = [t.grad for t in (hidden, weight, extra) if t is not None]
    for g, w in zip(got, wanted, strict=True):
        torch.testing.assert_close(g, 2.0 * w, atol=1e-6, rtol=1e-5)


def test_frozen_output_layer_gets_no_gradient_and_prompt_positions_get_zero() -> None:
    hidden, weight, _, targets = inputs(bias=False)
    weight.requires_grad_(False)
    linear_cross_entropy(hidden, weight, None, targets).backward()
    assert weight.grad is None
    assert (hidden.grad[targets == IGNORE_INDEX] == 0).all()
    assert (hidden.grad[targets != IGNORE_INDEX] != 0).any()


def test_no_gradient_work_under_no_grad_and_a_batch_without_targets_is_zero() -> None:
    hidden, weight, _, targets = inputs(bias=False)
    with torch.no_grad():
        torch.testing.assert_close(
            linear_cross_entropy(hidden, weight, None, targets),
            reference(hidden, weight, None, targets),
        )
    none = torch.full_like(targets, IGNORE_INDEX)
    loss = linear_cross_entropy(hidden, weight, None, none)
    loss.backward()
    assert loss.item() == 0.0 and (hidden.grad == 0).all()


def test_under_bf16_autocast_it_matches_the_autocast_reference() -> None:
    hidden, weight, _, targets = inputs(bias=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = reference(hidden, weight, None, targets)
        loss = linear_cross_entropy(hidden, weight, None, targets, chunk_bytes=4 * VOCAB * 16)
    torch.testing.assert_close(loss, expected, atol=2e-2, rtol=1e-2)


def tied_qwen2(vocab: int):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        use_cache=False,
    )
    return Qwen2ForCausalLM(config)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_model_loss_and_trained_gradients_match_the_models_own(method: str) -> None:
    from peft import LoraConfig, get_peft_model

    model = tied_qwen2(VOCAB)
    if method == "lora":
        lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
    assert chunked_loss_applies(model)
    ids = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(1))
    labels = ids.clone()
    labels[:, :8] = IGNORE_INDEX
    shift = torch.cat([labels[:, 1:], torch.full((2, 1), IGNORE_INDEX)], dim=1)

    def gradients(loss: torch.Tensor) -> dict[str, torch.Tensor]:
        model.zero_grad()
        loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    base = model.get_base_model() if method == "lora" else model
    ours = causal_lm_loss(model, base, {"input_ids": ids, "labels": labels, "shift_labels": shift})
    ours_grads = gradients(ours)
    theirs = model(input_ids=ids, labels=labels).loss
    theirs_grads = gradients(theirs)

    torch.testing.assert_close(ours, theirs)
    assert ours_grads.keys() == theirs_grads.keys() and ours_grads
    for name, grad in theirs_grads.items():
        torch.testing.assert_close(ours_grads[name], grad, atol=1e-6, rtol=1e-4, msg=name)


def test_models_with_soft_capped_logits_use_their_own_loss() -> None:
    from transformers import Gemma2Config, Gemma2ForCausalLM

    config = Gemma2Config(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
    )
    assert not chunked_loss_applies(Gemma2ForCausalLM(config))


def test_fp16_gradients_keep_their_precision_under_loss_scaling() -> None:
    # fp16 training multiplies the loss by a large scale; 1/num_items must not be applied to
    # fp16 values before that scale arrives, or small gradients flush to zero.
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(256, 64, generator=generator)
    weight = (0.05 * torch.randn(8192, 64, generator=generator)).half()
    targets = torch.randint(0, 8192, (256,), generator=generator)
    ours = hidden.half().requires_grad_()
    (65536.0 * linear_cross_entropy(ours, weight, None, targets, num_items=4096)).backward()
    exact = hidden.clone().requires_grad_()
    (65536.0 * reference(exact, weight.float(), None, targets, num_items=4096)).backward()

    error = (ours.grad.float() - exact.grad).norm() / exact.grad.norm()
    assert error < 2e-3
    assert (ours.grad != 0).float().mean() > 0.999
