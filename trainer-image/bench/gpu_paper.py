"""On paper: what the trainer's two levers mean for a 7B/8B LoRA on A10G and H100.

    .venv/bin/python trainer-image/bench/gpu_paper.py

No GPU is needed: this is arithmetic over the models' published shapes (docs/external-names.md)
and the benchmark's length distribution, so the GPU check can confirm or refute it. It prints
two tables.

Logits memory. The model's own loss (transformers' ``ForCausalLMLoss``) holds, per micro-batch
of T tokens and a V-token vocabulary, the bf16 logits kept in the model output (2 bytes each),
the fp32 log-softmax saved for the backward pass (4) and its fp32 gradient (4): about 10 bytes
per logit at the peak. The chunked loss (``tuning_trainer.loss``) holds one chunk of 256 MiB of
fp32 logits and its bf16 gradient, whatever T is. TRL 1.16's fused head also works in tiles
(4,096 tokens x 32,768 vocabulary entries) and needs no full logits either.

Output-layer FLOPs per micro-batch (frozen head, LoRA): the model's own loss runs the head over
all T positions twice (forward, input gradient); the chunked loss runs it twice over the
positions that have a target only (T x share); TRL 1.16's fused head runs it three times
(forward, recompute, input gradient), over the target positions with Triton (GPU) and over all
positions without it (CPU).

Attention FLOPs per layer and micro-batch, forward: 4 x heads x head_dim x (query-key pairs).
A packed row of L tokens under sdpa with transformers' block-diagonal mask computes all L x L
pairs (an explicit mask rules out the causal kernels); per-document attention, and
FlashAttention 2's variable-length kernel, compute Σ Lᵢ(Lᵢ+1)/2 pairs. Training with gradient
checkpointing runs attention 4 times (forward, recompute, 2x backward).
"""

from __future__ import annotations

import statistics

from tuning_trainer.data import pack_best_fit
from tuning_trainer.synthetic import lognormal_examples

# Published config.json values (docs/external-names.md).
MODELS = {
    "Llama-3.1-8B": {"vocab": 128_256, "hidden": 4096, "layers": 32, "params": 8.03e9},
    "Qwen2.5-7B": {"vocab": 152_064, "hidden": 3584, "layers": 28, "params": 7.62e9},
}
UNTIED = 2  # both models have separate input embeddings and output layer: neither is in the body
BODY = {name: m["params"] - UNTIED * m["vocab"] * m["hidden"] for name, m in MODELS.items()}
GPUS = {"A10G (24 GiB)": 4096, "H100 (80 GiB)": 16384}  # tokens per micro-batch assumed
TEMPLATE_TOKENS = 30  # chat template tokens around one exchange (byte tokenizer, bench template)
CHUNK_BYTES = 256 * 2**20


def lengths_and_share() -> tuple[list[int], float]:
    """Token lengths of the benchmark's records and the share of tokens that have a target.

    The benchmark's log-normal spread (median ~180 characters of text), with documents up to
    4,000 tokens instead of the CPU benchmark's 984 since the rows here are 4k and 16k long.
    """
    records = lognormal_examples(4000, seed=0, min_tokens=20, max_tokens=4000)
    lengths, targets = [], 0
    for r in records:
        length = len(r["instruction"]) + len(r["output"]) + TEMPLATE_TOKENS
        lengths.append(length)
        targets += len(r["output"]) + 1  # the answer and its EOS
    return lengths, targets / sum(lengths)


def pairs_per_token(lengths: list[int], row: int) -> tuple[float, float]:
    """(causal per-document pairs, dense L x L pairs) per token, packing into rows of ``row``."""
    rows = pack_best_fit([min(x, row) for x in lengths], row)
    tokens = sum(min(lengths[i], row) for r in rows for i in r)
    documents = sum(min(lengths[i], row) * (min(lengths[i], row) + 1) / 2 for r in rows for i in r)
    dense = sum(sum(min(lengths[i], row) for i in r) ** 2 for r in rows)
    return documents / tokens, dense / tokens


def main() -> None:
    lengths, share = lengths_and_share()
    print(
        f"length distribution: {len(lengths)} records, median {statistics.median(lengths):.0f} "
        f"tokens, share of tokens with a target {share:.0%}\n"
    )
    print(
        "| model | GPU, tokens per micro-batch | full logits (own loss) | chunked loss "
        "| head GFLOP own loss | chunked | TRL 1.16 fused (GPU) | step GFLOP (LoRA) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, m in MODELS.items():
        for gpu, tokens in GPUS.items():
            logits = tokens * m["vocab"]
            full = 10 * logits
            chunk_tokens = CHUNK_BYTES // (4 * m["vocab"])
            chunked = chunk_tokens * m["vocab"] * (4 + 2)
            head = 2 * m["hidden"] * m["vocab"]  # FLOPs per position per pass
            own = 2 * tokens * head
            ours = 2 * tokens * share * head
            trl = 3 * tokens * share * head
            body = 6 * BODY[name] * tokens  # forward, recompute, input gradients
            print(
                f"| {name} | {gpu}, {tokens} | {full / 2**30:.1f} GiB | {chunked / 2**30:.2f} GiB "
                f"| {own / 1e9:.0f} | {ours / 1e9:.0f} | {trl / 1e9:.0f} "
                f"| {(body + ours) / 1e9:.0f} |"
            )
    print(
        "\n| model | row length | attention pairs per token: per document | dense mask "
        "| attention share of step FLOPs, dense | per document |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, m in MODELS.items():
        for row in (4096, 16384):
            causal, dense = pairs_per_token(lengths, row)
            per_pair = 4 * 4 * m["hidden"] * m["layers"]  # 4 runs x 4 FLOPs x heads*head_dim
            body = 6 * BODY[name]
            dense_share = dense * per_pair / (body + dense * per_pair)
            causal_share = causal * per_pair / (body + causal * per_pair)
            print(
                f"| {name} | {row} | {causal:.0f} | {dense:.0f} | {dense_share:.0%} "
                f"| {causal_share:.0%} |"
            )


if __name__ == "__main__":
    main()
