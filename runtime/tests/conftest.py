"""Fixtures of the host supervisor's tests; the pieces they are made of live in harness.py (which
also puts runtime/ on sys.path, so that tests import tuning_runtime as the instance does)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from harness import create_cloud, install_fakes
from testing.moto_server import MotoServer


@pytest.fixture(scope="session")
def moto_server():
    with MotoServer() as server:
        yield server


@pytest.fixture
def aws_env(moto_server, monkeypatch):
    moto_server.reset()
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    # The AWS CLI the supervisor calls is the venv's (awscli, pinned), as `aws` is on the instance.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return moto_server


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    return install_fakes(tmp_path, monkeypatch.setenv)


@pytest.fixture
def cloud(aws_env, fakes):
    found = create_cloud()
    yield found
    found.imds.stop()


@pytest.fixture
def spot_cloud(aws_env, fakes):
    found = create_cloud(life_cycle="spot")
    yield found
    found.imds.stop()
