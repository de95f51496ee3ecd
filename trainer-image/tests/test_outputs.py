"""What serving stacks load: the base named on every adapter, `tuning-trainer export`, token counts.

.venv/bin/python -m pytest trainer-image/tests/test_outputs.py -q
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import boto3
import pytest
import torch
import yaml
from trainer_testlib import make_run
from transformers import AutoModelForCausalLM, AutoTokenizer
from tuning_trainer import export, model
from tuning_trainer.cli import main
from tuning_trainer.config import RunConfig, load_config
from tuning_trainer.storage import Store
from tuning_trainer.synthetic import alpaca_examples
from tuning_trainer.train import prepare_data, run_train

SHORT = {"training": {"max_steps": 4, "save_steps": 2}}
PROMPT = "### User:\nReverse the word.\n\n### Assistant:\n"


@pytest.fixture(scope="module")
def saved_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A base model in a local folder, laid out as on the Hub (the builtin tiny model, saved)."""
    folder = tmp_path_factory.mktemp("base-model")
    tokenizer = model.builtin_tokenizer()
    model.build_builtin_model("tiny-llama", len(tokenizer), "sdpa").save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def builtin_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("builtin-run")
    assert run_train(str(make_run(folder, SHORT)), {}, env={}) == 0
    return folder / "out"


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory, saved_base: Path) -> Path:
    folder = tmp_path_factory.mktemp("local-run")
    config = make_run(folder, {**SHORT, "model": {"base_model": str(saved_base)}})
    assert run_train(str(config), {}, env={}) == 0
    return folder / "out"


def adapter_config(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "adapter_config.json").read_text())


def card_metadata(folder: Path) -> dict[str, Any]:
    """The YAML front matter of the model card peft writes (README.md)."""
    return yaml.safe_load((folder / "README.md").read_text().split("---")[1])


def next_token_logits(lm: Any, tokenizer: Any) -> torch.Tensor:
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        return lm.eval()(input_ids=ids).logits[0, -1].float()


# --- the base model's name -------------------------------------------------------------------


def test_a_builtin_run_names_its_base_in_final_checkpoints_and_the_model_card(
    builtin_run: Path,
) -> None:
    for folder in [builtin_run / "final", builtin_run / "checkpoints" / "step-2"]:
        assert adapter_config(folder)["base_model_name_or_path"] == "builtin:tiny-llama", folder
    assert card_metadata(builtin_run / "final")["base_model"] == "builtin:tiny-llama"


def test_a_local_base_is_named_by_its_folder(local_run: Path, saved_base: Path) -> None:
    assert adapter_config(local_run / "final")["base_model_name_or_path"] == str(saved_base)
    assert card_metadata(local_run / "final")["base_model"] == str(saved_base)


def test_a_hub_base_is_named_by_its_id_and_revision(tmp_path: Path) -> None:
    hub = RunConfig.model_validate(
        {"model": {"base_model": "Qwen/Qwen2.5-0.5B", "revision": "v1.0"}, "data": {"train": "t"}}
    )
    offline = RunConfig.model_validate(
        {"model": {"base_model": "builtin:tiny-llama"}, "data": {"train": "t"}}
    )  # the weights: a stand-in, as no test downloads
    lm = model.load_model(offline, model.plan_hardware(offline, cuda=False), vocab_size=259)
    lm.get_base_model().config.name_or_path = "/root/.cache/huggingface/hub/somewhere"

    export.label_base_model(lm, hub)
    lm.save_pretrained(tmp_path)

    saved = adapter_config(tmp_path)
    assert saved["base_model_name_or_path"] == "Qwen/Qwen2.5-0.5B"
    assert saved["revision"] == "v1.0"
    assert card_metadata(tmp_path)["base_model"] == "Qwen/Qwen2.5-0.5B"


def test_an_s3_base_is_named_by_its_uri_and_such_a_run_exports_from_s3(
    saved_base: Path, tmp_path: Path, moto
) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="models")
    s3.create_bucket(Bucket="outputs")
    base = Store("s3://models/base/tiny")
    for path in saved_base.iterdir():
        base.upload(path, path.name)
    config = make_run(
        tmp_path / "run",
        {
            **SHORT,
            "model": {"base_model": "s3://models/base/tiny", "cache_dir": str(tmp_path / "cache")},
            "output": {"uri": "s3://outputs/runs/s3-base"},
        },
    )
    assert run_train(str(config), {}, env={}) == 0
    run = Store("s3://outputs/runs/s3-base")

    saved = json.loads(run.get_bytes("final/adapter_config.json"))
    assert saved["base_model_name_or_path"] == "s3://models/base/tiny"  # not the cache folder
    assert "base_model: s3://models/base/tiny" in run.get_bytes("final/README.md").decode()

    out = tmp_path / "merged"
    assert main(["export", "s3://outputs/runs/s3-base", "--out", str(out), "--merge"]) == 0
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in name for name, _ in merged.named_parameters())


# --- loading the final model -----------------------------------------------------------------


def test_auto_peft_model_loads_the_final_model_on_its_local_base(
    local_run: Path, saved_base: Path
) -> None:
    from peft import AutoPeftModelForCausalLM

    final = local_run / "final"
    tokenizer = AutoTokenizer.from_pretrained(final)

    tuned = AutoPeftModelForCausalLM.from_pretrained(final, dtype="auto", device_map="auto")

    base = AutoModelForCausalLM.from_pretrained(saved_base)
    assert any("lora_A" in name for name, _ in tuned.named_parameters())
    tuned_logits = next_token_logits(tuned, tokenizer)
    assert not torch.allclose(tuned_logits, next_token_logits(base, tokenizer))


def test_a_builtin_final_model_loads_with_transformers_alone(builtin_run: Path) -> None:
    final = builtin_run / "final"
    tokenizer = AutoTokenizer.from_pretrained(final)
    assert (final / "model.safetensors").is_file() and (final / "config.json").is_file()

    tuned = AutoModelForCausalLM.from_pretrained(final)  # the base beside it, then the adapter

    base = model.build_builtin_model("tiny-llama", len(tokenizer), "sdpa")
    assert any("lora_A" in name for name, _ in tuned.named_parameters())
    tuned_logits = next_token_logits(tuned, tokenizer)
    assert not torch.allclose(tuned_logits, next_token_logits(base, tokenizer))


# --- tuning-trainer export -------------------------------------------------------------------


@pytest.mark.parametrize("run", ["builtin_run", "local_run"])
def test_export_merge_writes_a_plain_model_that_predicts_like_the_adapter(
    run: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from peft import PeftModel

    final = request.getfixturevalue(run) / "final"
    out = tmp_path / "merged"

    assert main(["export", str(final.parent), "--out", str(out), "--merge"]) == 0

    for name in ["model.safetensors", "config.json", "generation_config.json", "tokenizer.json"]:
        assert (out / name).is_file(), name
    assert not (out / "adapter_config.json").exists()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(final).chat_template
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    eos = merged.generation_config.eos_token_id
    assert tokenizer.eos_token_id in (eos if isinstance(eos, list) else [eos])
    base_id = adapter_config(final)["base_model_name_or_path"]
    base = (
        model.build_builtin_model("tiny-llama", len(tokenizer), "sdpa")
        if base_id.startswith("builtin:")
        else AutoModelForCausalLM.from_pretrained(base_id)
    )
    adapted = PeftModel.from_pretrained(base, final)
    torch.testing.assert_close(
        next_token_logits(merged, tokenizer),
        next_token_logits(adapted, tokenizer),
        rtol=1e-4,
        atol=1e-4,
    )
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    generated = merged.generate(
        input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, do_sample=False
    )
    assert generated.shape[1] > ids.shape[1]


def test_export_without_merge_copies_the_final_folder_as_published(
    builtin_run: Path, tmp_path: Path
) -> None:
    final = builtin_run / "final"
    out = tmp_path / "copy"

    assert main(["export", str(final), "--out", str(out)]) == 0

    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in final.iterdir())
    assert (out / "adapter_model.safetensors").read_bytes() == (
        final / "adapter_model.safetensors"
    ).read_bytes()


def test_export_of_a_run_without_a_complete_final_model_exits_2_naming_it(
    builtin_run: Path, tmp_path: Path, capsys
) -> None:
    run = tmp_path / "unfinished"
    shutil.copytree(builtin_run, run)
    (run / "final" / "manifest.json").unlink()  # as when the run stopped before publishing it

    code = main(["export", str(run), "--out", str(tmp_path / "merged"), "--merge"])

    stderr = capsys.readouterr().err
    assert code == 2
    assert f"{run}/final/manifest.json is missing" in stderr
    assert "newest complete checkpoint is step 4" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "merged").exists()


def test_export_of_a_final_model_changed_after_publishing_exits_2_naming_the_file(
    builtin_run: Path, tmp_path: Path, capsys
) -> None:
    run = tmp_path / "changed"
    shutil.copytree(builtin_run, run)
    weights = run / "final" / "adapter_model.safetensors"
    changed = bytearray(weights.read_bytes())
    changed[-1] ^= 0xFF  # same size, other content
    weights.write_bytes(bytes(changed))

    code = main(["export", str(run), "--out", str(tmp_path / "merged"), "--merge"])

    assert code == 2
    assert "adapter_model.safetensors does not match its sha256" in capsys.readouterr().err


def test_export_into_a_folder_that_is_not_empty_exits_2(
    builtin_run: Path, tmp_path: Path, capsys
) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")

    code = main(["export", str(builtin_run), "--out", str(tmp_path / "out")])

    assert code == 2
    assert "is not an empty folder" in capsys.readouterr().err
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_export_with_an_unreachable_base_model_exits_2_and_names_the_flag(
    local_run: Path, tmp_path: Path, capsys
) -> None:
    missing = tmp_path / "no-such-model"

    out = str(tmp_path / "merged")
    code = main(["export", str(local_run), "--out", out, "--merge", "--base-model", str(missing)])

    stderr = capsys.readouterr().err
    assert code == 2
    assert f"base model '{missing}'" in stderr and "--base-model" in stderr


# --- tokens seen -----------------------------------------------------------------------------


@pytest.mark.parametrize("packing", [True, False])
def test_num_input_tokens_seen_counts_real_tokens_not_padding(
    packing: bool, tmp_path: Path
) -> None:
    config_path = make_run(
        tmp_path,
        {
            "data": {"packing": packing},
            "training": {"max_steps": -1, "num_train_epochs": 2, "save_steps": 1000},
        },
        records=alpaca_examples(16, seed=3),
    )
    rows = prepare_data(load_config(str(config_path), env={}).config).train_rows
    real_tokens = sum(len(row.input_ids) for row in rows)

    assert run_train(str(config_path), {}, env={}) == 0

    state = json.loads((tmp_path / "out" / "final" / "trainer_state.json").read_text())
    assert state["num_input_tokens_seen"] == 2 * real_tokens  # two epochs
    logged = [e["num_input_tokens_seen"] for e in state["log_history"] if "loss" in e]
    assert logged == sorted(logged) and logged[-1] == 2 * real_tokens
