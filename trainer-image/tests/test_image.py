"""The image's inputs agree with what the tests run (the image itself cannot be built here)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from trainer_testlib import REPO

IMAGE = REPO / "trainer-image"
sys.path.insert(0, str(IMAGE))
import check_image_lock  # noqa: E402
import image_target  # noqa: E402


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


def test_the_dockerfile_builds_on_the_base_the_lock_was_checked_for() -> None:
    dockerfile = (IMAGE / "Dockerfile").read_text()
    lock_header = (IMAGE / "requirements.lock").read_text()

    assert re.findall(r"^FROM (\S+)$", dockerfile, re.M) == [image_target.BASE_IMAGE]
    assert re.search(rf"^ARG PYTHON_VERSION={image_target.PYTHON_VERSION}$", dockerfile, re.M)
    assert re.search(rf"^ARG TORCH_VERSION={image_target.TORCH_VERSION}$", dockerfile, re.M)
    assert f"target: {image_target.BASE_IMAGE}, Python {image_target.PYTHON_VERSION}" in lock_header
    # the base image's torch is the one the tests run
    assert pins(REPO / "requirements.lock")["torch"] == image_target.TORCH_VERSION
    assert f":{image_target.TORCH_VERSION}-cuda" in image_target.BASE_IMAGE


def test_the_image_user_is_not_the_uid_ubuntu_24_04_already_has() -> None:
    dockerfile = (IMAGE / "Dockerfile").read_text()
    (uid,) = re.findall(r"useradd [^\n]*--uid (\d+)", dockerfile)
    assert uid != "1000" and re.findall(r"^USER (\S+)", dockerfile, re.M)[-1] == f"{uid}:{uid}"


def test_a_requirement_the_lock_lacks_or_misses_is_named() -> None:
    report = [
        {"metadata": {"name": "peft", "version": "0.21.2",
                      "requires_dist": ["torch>=1.13", "safetensors", "numpy>=1.17",
                                        "pytest; extra == 'test'",
                                        "pywin32; sys_platform == 'win32'"]}},
        {"metadata": {"name": "numpy", "version": "2.4.6", "requires_dist": []}},
    ]  # fmt: skip
    found = check_image_lock.problems(report, {"peft": "0.21.2", "numpy": "1.16.0"})

    assert found == [
        "peft 0.21.2 needs safetensors, which is not in the lock",
        "peft 0.21.2 needs numpy>=1.17; the lock has numpy==1.16.0",
        "numpy: pip chose 2.4.6, the lock pins 1.16.0",
    ]


def test_the_image_lock_installs_for_the_images_python_and_platform() -> None:
    """Resolves every pin against PyPI for Python 3.12 manylinux x86_64 (binary wheels only)
    and checks the closure; ~30 s, needs the package registry."""
    done = subprocess.run(
        [sys.executable, str(IMAGE / "check_image_lock.py")],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "closure complete" in done.stdout
