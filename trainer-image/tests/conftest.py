"""Shared fixtures: a session-wide moto server, tiny configs written to tmp folders."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from testing.moto_server import MotoServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from trainer_testlib import REPO  # noqa: F401 - re-exported for fixtures below


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def moto(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """moto's S3 for one test: environment pointing at it, emptied afterwards."""
    from tuning_trainer import storage

    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    storage.s3_client.cache_clear()
    yield moto_server
    moto_server.reset()
    storage.s3_client.cache_clear()
