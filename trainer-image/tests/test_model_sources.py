"""Base models from a local folder and from an s3:// prefix (synced once to a cache)."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
import torch
from tuning_trainer import model
from tuning_trainer.config import RunConfig
from tuning_trainer.errors import ConfigError
from tuning_trainer.storage import Store


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The builtin tiny model and tokenizer saved the way a Hub model is laid out."""
    folder = tmp_path_factory.mktemp("base-model")
    tokenizer = model.builtin_tokenizer()
    model.build_builtin_model("tiny-llama", len(tokenizer), "sdpa").save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def config_for(base_model: str, cache: Path | None = None) -> RunConfig:
    return RunConfig.model_validate(
        {
            "model": {"base_model": base_model, "cache_dir": str(cache) if cache else None},
            "data": {"train": "t.jsonl"},
        }
    )


def first_weight(lm) -> torch.Tensor:
    return next(p for n, p in lm.named_parameters() if "embed_tokens" in n).detach()


def test_local_folder_loads_the_saved_weights_with_lora(saved_model: Path) -> None:
    config = config_for(str(saved_model))
    plan = model.plan_hardware(config, cuda=False)

    lm = model.load_model(config, plan, vocab_size=0)

    reference = model.build_builtin_model("tiny-llama", 259, "sdpa")
    assert torch.equal(first_weight(lm), first_weight(reference))
    assert any("lora_A" in name for name, _ in lm.named_parameters())


def test_s3_prefix_is_synced_once_and_then_read_from_the_cache(
    saved_model: Path, tmp_path: Path, moto
) -> None:
    boto3.client("s3").create_bucket(Bucket="models")
    store = Store("s3://models/base/tiny")
    for path in saved_model.iterdir():
        store.upload(path, path.name)
    config = config_for("s3://models/base/tiny", cache=tmp_path / "cache")
    model.check_base_model(config)

    first = model.local_model_dir(config)
    store.delete_prefix("")  # the second run must not need S3 at all
    second = model.local_model_dir(config)

    assert first == second == str(tmp_path / "cache" / "models" / "base" / "tiny")
    tokenizer = model.load_tokenizer(config)
    assert tokenizer.eos_token == "</s>"
    lm = model.load_model(config, model.plan_hardware(config, cuda=False), len(tokenizer))
    assert lm is not None


def test_missing_s3_model_is_bad_input(moto) -> None:
    boto3.client("s3").create_bucket(Bucket="models")
    with pytest.raises(ConfigError, match=r"no config\.json under that S3 prefix"):
        model.check_base_model(config_for("s3://models/nothing-here"))


def test_malformed_model_name_lists_the_accepted_forms() -> None:
    with pytest.raises(
        ConfigError, match=r"expected a Hugging Face id \(org/name\), an s3:// prefix"
    ):
        model.check_base_model(config_for("not a model"))


def test_a_tokenizer_without_pad_token_pads_with_eos(saved_model: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(saved_model)
    tokenizer.pad_token = None
    tokenizer.chat_template = None
    tokenizer.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text((saved_model / "config.json").read_text())

    loaded = model.load_tokenizer(config_for(str(tmp_path)))

    assert loaded.pad_token_id == loaded.eos_token_id  # labels are masked by position anyway
    assert loaded.chat_template == model.DEFAULT_CHAT_TEMPLATE
