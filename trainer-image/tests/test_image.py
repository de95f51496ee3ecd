"""The image's inputs agree with what the tests run (the image itself cannot be built here)."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from trainer_testlib import REPO

IMAGE = REPO / "trainer-image"


def pins(path) -> dict[str, str]:
    result = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            result[canonicalize_name(name)] = version.split("+")[0]
    return result


def test_image_lock_pins_the_versions_the_tests_run() -> None:
    image, dev = pins(IMAGE / "requirements.lock"), pins(REPO / "requirements.lock")
    differing = {
        name: (image[name], dev[name])
        for name in image.keys() & dev.keys()
        if image[name] != dev[name]
    }
    assert not differing, f"image lock differs from requirements.lock: {differing}"


def test_image_lock_covers_every_runtime_dependency_but_torch() -> None:
    declared = tomllib.loads((IMAGE / "pyproject.toml").read_text())["project"]["dependencies"]
    needed = {canonicalize_name(Requirement(d).name) for d in declared} - {"torch"}
    assert needed <= pins(IMAGE / "requirements.lock").keys()


def test_dockerfile_runs_the_cli_as_pid_1_as_a_non_root_user() -> None:
    dockerfile = (IMAGE / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["tuning-trainer"]' in dockerfile  # exec form: SIGTERM reaches the trainer
    assert 'CMD ["train"]' in dockerfile
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "pip install --no-deps -r requirements.lock" in dockerfile
