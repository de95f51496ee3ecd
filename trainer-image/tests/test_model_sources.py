"""Base models from a local folder and from an s3:// prefix (synced once to a cache, never half)."""

from __future__ import annotations

import logging
import threading
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


# --- the S3 sync: once, never half ------------------------------------------------------------


@pytest.fixture
def s3_base(saved_model: Path, moto) -> Store:
    boto3.client("s3").create_bucket(Bucket="models")
    store = Store("s3://models/base/tiny")
    for path in saved_model.iterdir():
        store.upload(path, path.name)
    return store


def record_downloads(monkeypatch: pytest.MonkeyPatch, before=None) -> list[str]:
    """Every file the S3 sync downloads, in order; ``before(relative)`` runs first."""
    downloaded: list[str] = []
    original = Store.download

    def download(self: Store, relative: str, local) -> None:
        if before is not None:
            before(relative)
        downloaded.append(relative)
        original(self, relative, local)

    monkeypatch.setattr(Store, "download", download)
    return downloaded


def test_a_tokenizer_sync_then_a_full_sync_download_each_file_once(
    s3_base: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_for(s3_base.root, cache=tmp_path / "cache")
    downloaded = record_downloads(monkeypatch)

    model.local_model_dir(config, include_weights=False)  # load_tokenizer's sync
    tokenizer_files = list(downloaded)
    model.local_model_dir(config)  # load_model's sync
    model.local_model_dir(config)

    assert "model.safetensors" not in tokenizer_files and "tokenizer.json" in tokenizer_files
    assert sorted(downloaded) == sorted(s3_base.list(""))  # every file, once


def test_a_sync_cut_off_half_way_is_not_used_and_the_next_one_fetches_only_the_rest(
    s3_base: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_for(s3_base.root, cache=tmp_path / "cache")

    def connection_lost(relative: str) -> None:
        if relative == "model.safetensors":
            raise ConnectionError("connection reset")

    with monkeypatch.context() as patch:
        cut_off = record_downloads(patch, before=connection_lost)
        with pytest.raises(ConnectionError):
            model.local_model_dir(config)
    downloaded = record_downloads(monkeypatch)
    folder = model.local_model_dir(config)

    assert cut_off and "model.safetensors" in downloaded
    assert set(cut_off).isdisjoint(downloaded)  # what the first sync had fetched is reused
    assert set(cut_off) | set(downloaded) == set(s3_base.list(""))
    assert (Path(folder) / "model.safetensors").stat().st_size == s3_base.sizes("")[
        "model.safetensors"
    ]


def test_a_cached_file_lost_since_the_sync_is_fetched_again(
    s3_base: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_for(s3_base.root, cache=tmp_path / "cache")
    folder = Path(model.local_model_dir(config))
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # e.g. a scratch volume cleaned half way
    downloaded = record_downloads(monkeypatch)

    model.local_model_dir(config)

    assert downloaded == ["model.safetensors"]
    assert weights.stat().st_size == s3_base.sizes("")["model.safetensors"]


def test_two_runs_syncing_at_once_download_each_file_once(
    s3_base: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    config = config_for(s3_base.root, cache=tmp_path / "cache")
    second_run_waits = threading.Event()

    class WaitingSeen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "waiting for another run" in record.getMessage():
                second_run_waits.set()

    handler = WaitingSeen()
    caplog.set_level(logging.INFO, logger="tuning_trainer.model")
    logging.getLogger("tuning_trainer.model").addHandler(handler)
    # the run holding the lock downloads only once the other one is queued behind it
    downloaded = record_downloads(monkeypatch, before=lambda _: second_run_waits.wait(60))
    results: list[str] = []
    errors: list[BaseException] = []

    def sync() -> None:
        try:
            results.append(model.local_model_dir(config))
        except BaseException as err:  # reported below, in the test's thread
            errors.append(err)

    runs = [threading.Thread(target=sync) for _ in range(2)]
    try:
        for run in runs:
            run.start()
        for run in runs:
            run.join(120)
    finally:
        logging.getLogger("tuning_trainer.model").removeHandler(handler)

    assert not errors, errors
    assert second_run_waits.is_set()
    assert len(results) == 2 and results[0] == results[1]
    assert sorted(downloaded) == sorted(s3_base.list(""))  # once, by one of the runs
