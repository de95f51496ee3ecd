"""Publishing checkpoints and the final model to the run folder, manifest last; finding them again.

    runs/<run-id>/checkpoints/step-<N>/...   then checkpoints/step-<N>/manifest.json
    runs/<run-id>/final/...                  then final/manifest.json

A folder without a valid manifest, or whose files differ from it (size or sha256), does not
exist: resume skips it and falls back to the next older one. save_total_limit deletes an old
checkpoint only after a newer one is complete, manifest first so a half-deleted folder is never
mistaken for a checkpoint.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuning_trainer.storage import Store

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
CHECKPOINTS = "checkpoints"
FINAL = "final"
STEP_FOLDER = re.compile(r"^step-(\d+)$")


def step_prefix(step: int) -> str:
    return f"{CHECKPOINTS}/step-{step}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_manifest(local_dir: Path, kind: str, step: int) -> dict[str, Any]:
    files = [
        {
            "path": p.relative_to(local_dir).as_posix(),
            "size": p.stat().st_size,
            "sha256": sha256_of(p),
        }
        for p in sorted(local_dir.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    ]
    return {
        "schemaVersion": SCHEMA_VERSION,
        "kind": kind,
        "step": step,
        "createdAt": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": files,
    }


@dataclass
class Published:
    prefix: str
    step: int
    seconds: float
    bytes: int


def publish(store: Store, local_dir: Path, prefix: str, kind: str, step: int) -> Published:
    """Upload every file of ``local_dir`` under ``prefix``, then the manifest."""
    started = time.monotonic()
    manifest = build_manifest(local_dir, kind, step)
    store.delete(f"{prefix}/{MANIFEST}")  # re-publishing a step: invalid until complete again
    for entry in manifest["files"]:
        store.upload(local_dir / entry["path"], f"{prefix}/{entry['path']}")
    store.put_bytes(f"{prefix}/{MANIFEST}", json.dumps(manifest, indent=2).encode())
    total = sum(entry["size"] for entry in manifest["files"])
    seconds = time.monotonic() - started
    log.info(
        "published %s (step %d, %.1f MB) in %.1f s", store.uri(prefix), step, total / 1e6, seconds
    )
    return Published(prefix, step, seconds, total)


def read_manifest(store: Store, prefix: str) -> dict[str, Any] | None:
    """The manifest when present and well-formed, else None."""
    try:
        manifest = json.loads(store.get_bytes(f"{prefix}/{MANIFEST}"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(manifest, dict) or manifest.get("schemaVersion") != SCHEMA_VERSION:
        return None
    if not isinstance(manifest.get("files"), list) or not isinstance(manifest.get("step"), int):
        return None
    return manifest


def is_final_complete(store: Store) -> bool:
    manifest = read_manifest(store, FINAL)
    return manifest is not None and manifest.get("kind") == "final"


def complete_steps(store: Store) -> list[int]:
    """Step numbers of the checkpoints whose manifest is present, newest first."""
    return [step for step in published_steps(store) if read_manifest(store, step_prefix(step))]


def published_steps(store: Store) -> list[int]:
    """Step numbers of every checkpoint folder, complete or not, newest first."""
    steps = []
    for name in store.subfolders(CHECKPOINTS):
        match = STEP_FOLDER.match(name)
        if match:
            steps.append(int(match.group(1)))
    return sorted(steps, reverse=True)


def fetch_latest(store: Store, staging: Path, local_copy: Path | None = None) -> Path | None:
    """Copy the newest checkpoint whose files match its manifest to ``staging``; None if none.

    ``local_copy``: a folder that may already hold published checkpoints as ``step-N/`` (what
    SageMaker copies into ``/opt/ml/checkpoints`` at a job's start); a step whose copy there
    matches the published manifest file by file is taken from it instead of downloaded.
    """
    for step in published_steps(store):
        found = fetch_step(store, staging, step, local_copy)
        if found is not None:
            return found
    return None


def fetch_step(
    store: Store, staging: Path, step: int, local_copy: Path | None = None
) -> Path | None:
    """The published checkpoint of ``step`` in ``staging``, checked file by file; None if it
    is incomplete or does not match its manifest."""
    prefix = step_prefix(step)
    manifest = read_manifest(store, prefix)
    if manifest is None:
        log.warning("skipping %s: no valid manifest (incomplete upload)", store.uri(prefix))
        return None
    target = staging / f"checkpoint-{step}"
    copied = local_copy / f"step-{step}" if local_copy is not None else None
    if copied is not None and copied.is_dir() and not verify_folder(copied, manifest):
        shutil.rmtree(target, ignore_errors=True)
        for entry in manifest["files"]:
            (target / entry["path"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(copied / entry["path"], target / entry["path"])
        log.info("resuming from %s (its copy in %s)", store.uri(prefix), copied)
        return target
    problem = _download_and_verify(store, prefix, manifest, target)
    if problem:
        log.warning("skipping %s: %s", store.uri(prefix), problem)
        shutil.rmtree(target, ignore_errors=True)
        return None
    log.info("resuming from %s", store.uri(prefix))
    return target


def _download_and_verify(store: Store, prefix: str, manifest: dict[str, Any], target: Path) -> str:
    shutil.rmtree(target, ignore_errors=True)
    for entry in manifest["files"]:
        local = target / entry["path"]
        try:
            store.download(f"{prefix}/{entry['path']}", local)
        except (FileNotFoundError, OSError) as err:
            return f"{entry['path']} missing ({err})"
        except Exception as err:  # botocore ClientError 404 and friends
            return f"{entry['path']} unreadable ({err})"
        problem = _file_problem(local, entry)
        if problem:
            return problem
    return ""


def _file_problem(local: Path, entry: dict[str, Any]) -> str:
    if not local.is_file():
        return f"{entry['path']} missing"
    if local.stat().st_size != entry["size"]:
        return f"{entry['path']} has {local.stat().st_size} bytes, manifest says {entry['size']}"
    if sha256_of(local) != entry["sha256"]:
        return f"{entry['path']} does not match its sha256"
    return ""


def verify_folder(folder: Path, manifest: dict[str, Any]) -> str:
    """'' when every file of the manifest is in ``folder`` with its size and sha256, else why."""
    for entry in manifest["files"]:
        problem = _file_problem(folder / entry["path"], entry)
        if problem:
            return problem
    return ""


def fetch_verified(store: Store, prefix: str, manifest: dict[str, Any], target: Path) -> str:
    """Copy the published folder ``prefix`` to ``target``, checked file by file: '' or why not."""
    return _download_and_verify(store, prefix, manifest, target)


def prune(store: Store, keep: int | None) -> list[int]:
    """Delete checkpoints beyond the newest ``keep`` complete ones; returns the deleted steps."""
    if keep is None:
        return []
    steps = published_steps(store)
    complete = complete_steps(store)
    if not complete:
        return []
    kept = set(complete[:keep])
    newest_complete = complete[0]
    deleted = []
    for step in steps:
        # an incomplete folder newer than the newest complete one may still be uploading
        if step in kept or step > newest_complete:
            continue
        prefix = step_prefix(step)
        store.delete(f"{prefix}/{MANIFEST}")  # first: it stops counting as a checkpoint
        store.delete_prefix(prefix)
        deleted.append(step)
    if deleted:
        log.info("removed old checkpoints %s (save_total_limit=%d)", sorted(deleted), keep)
    return deleted
