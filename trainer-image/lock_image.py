"""Regenerate requirements.lock (the image's packages) from the dev venv's tested versions.

    .venv/bin/python trainer-image/lock_image.py    # after `make lock` changed requirements.lock

The image installs this file with --no-deps on top of the PyTorch base image, so it must be the
complete closure of the trainer's runtime dependencies except torch itself, for the image's
Python and platform (image_target.py). Taking the versions from the dev venv means the image
runs exactly the versions the tests ran; check_image_lock.py (run by `make test`) proves that
every pin has a wheel for the image and that nothing the pins need is missing.
"""

from __future__ import annotations

import importlib.metadata as metadata
from pathlib import Path

from image_target import BASE_IMAGE, MARKERS, PYTHON_VERSION
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HERE = Path(__file__).resolve().parent
# The runtime dependencies (pyproject) plus what torch needs that the base image may pin older.
ROOTS = [
    "transformers",
    "peft",
    "accelerate",
    "datasets",
    "safetensors",
    "tokenizers",
    "pydantic",
    "pyyaml",
    "boto3",
    "tensorboard",
    # torch's own dependencies that transformers/datasets also need at tested versions
    "filelock",
    "typing-extensions",
    "jinja2",
    "fsspec",
    "sympy",
    "networkx",
]
IMAGE_ONLY = {"bitsandbytes": "0.50.2"}  # QLoRA; CUDA only, so not in the CPU dev venv
HEADER = f"""\
# The trainer image's Python packages on top of the PyTorch base image (which provides torch).
# Installed with --no-deps, so this is the complete closure. Versions equal ../requirements.lock
# (what the tests run) wherever both list a package; bitsandbytes (QLoRA, CUDA only) is image-only.
# target: {BASE_IMAGE}, Python {PYTHON_VERSION}, linux x86_64 (image_target.py)
# Regenerate: .venv/bin/python trainer-image/lock_image.py
"""


def closure() -> dict[str, str]:
    pins: dict[str, str] = {}

    def walk(name: str) -> None:
        key = canonicalize_name(name)
        if key in pins or key == "torch":
            return
        distribution = metadata.distribution(name)
        pins[key] = distribution.version
        for text in distribution.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate(MARKERS):
                walk(requirement.name)

    for root in ROOTS:
        walk(root)
    return pins | IMAGE_ONLY


def main() -> None:
    pins = closure()
    body = "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))
    (HERE / "requirements.lock").write_text(HEADER + body)
    print(f"wrote {len(pins)} pins to {HERE / 'requirements.lock'}")


if __name__ == "__main__":
    main()
