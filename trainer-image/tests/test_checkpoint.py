"""Checkpoint publishing and discovery, on a local folder and on moto's S3."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from tuning_trainer import checkpoint
from tuning_trainer.storage import Store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return Store(str(tmp_path / "run"))
    request.getfixturevalue("moto")
    boto3.client("s3").create_bucket(Bucket="outputs")
    return Store("s3://outputs/runs/r1")


def local_checkpoint(folder: Path, step: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(bytes([step % 256]) * (1000 + step))
    (folder / "optimizer.pt").write_bytes(b"opt" * step)
    (folder / "nested").mkdir()
    (folder / "nested" / "state.json").write_text(f'{{"step": {step}}}')
    return folder


def publish_step(store: Store, tmp_path: Path, step: int) -> None:
    local = local_checkpoint(tmp_path / f"local-{step}", step)
    checkpoint.publish(store, local, checkpoint.step_prefix(step), "checkpoint", step)


def test_manifest_is_written_after_every_file(tmp_path: Path) -> None:
    written: list[str] = []

    class RecordingStore(Store):
        def upload(self, local, relative):
            written.append(relative)
            super().upload(local, relative)

        def put_bytes(self, relative, data):
            written.append(relative)
            super().put_bytes(relative, data)

    local = local_checkpoint(tmp_path / "local", 3)
    checkpoint.publish(
        RecordingStore(str(tmp_path / "run")), local, "checkpoints/step-3", "checkpoint", 3
    )

    assert written[-1] == "checkpoints/step-3/manifest.json"
    assert sorted(written[:-1]) == [
        "checkpoints/step-3/adapter_model.safetensors",
        "checkpoints/step-3/nested/state.json",
        "checkpoints/step-3/optimizer.pt",
    ]


def test_resume_fetches_the_newest_complete_checkpoint(store: Store, tmp_path: Path) -> None:
    publish_step(store, tmp_path, 2)
    publish_step(store, tmp_path, 4)

    found = checkpoint.fetch_latest(store, tmp_path / "staging")

    assert found == tmp_path / "staging" / "checkpoint-4"
    assert (found / "nested" / "state.json").read_text() == '{"step": 4}'


def test_checkpoint_without_manifest_is_skipped(store: Store, tmp_path: Path) -> None:
    publish_step(store, tmp_path, 2)
    publish_step(store, tmp_path, 4)
    store.delete("checkpoints/step-4/manifest.json")  # as if the upload died before the end

    assert checkpoint.fetch_latest(store, tmp_path / "staging").name == "checkpoint-2"


def test_checkpoint_with_a_truncated_file_is_skipped(store: Store, tmp_path: Path) -> None:
    publish_step(store, tmp_path, 2)
    publish_step(store, tmp_path, 4)
    store.put_bytes("checkpoints/step-4/adapter_model.safetensors", b"\x04" * 10)

    assert checkpoint.fetch_latest(store, tmp_path / "staging").name == "checkpoint-2"


def test_checkpoint_whose_file_changed_but_kept_its_size_is_skipped(
    store: Store, tmp_path: Path
) -> None:
    publish_step(store, tmp_path, 2)
    publish_step(store, tmp_path, 4)
    store.put_bytes("checkpoints/step-4/optimizer.pt", b"OPT" * 4)

    assert checkpoint.fetch_latest(store, tmp_path / "staging").name == "checkpoint-2"


def test_no_complete_checkpoint_means_a_fresh_start(store: Store, tmp_path: Path) -> None:
    publish_step(store, tmp_path, 2)
    store.delete("checkpoints/step-2/manifest.json")

    assert checkpoint.fetch_latest(store, tmp_path / "staging") is None


def test_prune_keeps_the_newest_complete_and_spares_a_newer_upload(
    store: Store, tmp_path: Path
) -> None:
    for step in (2, 4, 6, 8):
        publish_step(store, tmp_path, step)
    store.delete("checkpoints/step-8/manifest.json")  # still uploading

    deleted = checkpoint.prune(store, keep=2)

    assert deleted == [2]
    assert checkpoint.published_steps(store) == [8, 6, 4]
    assert not list(store.list("checkpoints/step-2"))


def test_final_counts_only_with_its_manifest(store: Store, tmp_path: Path) -> None:
    local = local_checkpoint(tmp_path / "final", 9)
    checkpoint.publish(store, local, checkpoint.FINAL, "final", 9)
    assert checkpoint.is_final_complete(store)

    store.delete("final/manifest.json")
    assert not checkpoint.is_final_complete(store)
