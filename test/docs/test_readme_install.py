"""README step 1 runs `npm ci` and then `make install`: the second must not install the npm
packages again, and must once the lock file changes. Checked with the real npm and the real
Makefile in a scratch project (one local `file:` dependency, so npm needs no registry).

    .venv/bin/python -m pytest -q test/docs/test_readme_install.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from docs_markdown import ROOT


def run(*argv: str, cwd: Path) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The Makefile beside a package with one local dependency; the Python venv counts as
    installed, so only the npm side is under test."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not on PATH")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "dep").mkdir()
    (tmp_path / "dep" / "package.json").write_text('{"name": "dep", "version": "1.0.0"}')
    package = {"name": "scratch", "version": "1.0.0", "dependencies": {"dep": "file:./dep"}}
    (tmp_path / "package.json").write_text(json.dumps(package))
    run("npm", "install", "--offline", "--no-audit", "--no-fund", cwd=tmp_path)  # the lock file
    (tmp_path / "requirements.lock").write_text("")
    (tmp_path / "trainer-image").mkdir()
    (tmp_path / "trainer-image" / "pyproject.toml").write_text("")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / ".install-stamp").touch()
    shutil.rmtree(tmp_path / "node_modules")
    return tmp_path


def make_would_run(project: Path) -> str:
    return run("make", "--dry-run", "install", cwd=project)


def test_make_install_after_npm_ci_installs_nothing_again(project: Path) -> None:
    run("npm", "ci", "--offline", "--no-audit", "--no-fund", cwd=project)

    assert "npm ci" not in make_would_run(project)


def test_make_install_installs_when_the_lock_file_changed_since(project: Path) -> None:
    run("npm", "ci", "--offline", "--no-audit", "--no-fund", cwd=project)
    later = time.time() + 60
    os.utime(project / "package-lock.json", (later, later))

    assert "npm ci" in make_would_run(project)


def test_make_install_installs_without_node_modules(project: Path) -> None:
    assert "npm ci" in make_would_run(project)
