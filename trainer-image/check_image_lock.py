"""Prove the image lock installs in the image, without building it (there is no Docker engine in
CI): every pin resolves to a binary wheel for the image's Python and platform, and every
requirement of every pin (for that Python and platform) is itself pinned, or is torch from the
base image, at a version that satisfies it.

    .venv/bin/python trainer-image/check_image_lock.py      # prints what it checked; exit 1 if not

Needs PyPI (pip resolves the pins with --dry-run --only-binary=:all: for image_target.py's
platform tags and Python version); nothing is downloaded but metadata.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from image_target import MARKERS, PLATFORMS, PYTHON_VERSION, TORCH_VERSION
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

HERE = Path(__file__).resolve().parent
LOCK = HERE / "requirements.lock"
# The base image provides it; the lock installs everything else with --no-deps.
FROM_BASE = {"torch": TORCH_VERSION}


def pins(lock: Path = LOCK) -> dict[str, str]:
    found = {}
    for line in lock.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            found[canonicalize_name(name)] = version.strip()
    return found


def resolve(lock: Path = LOCK) -> list[dict]:
    """pip's installation report for the pins alone, as the image's Python would install them."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        argv = [
            sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
            "--only-binary=:all:", "--target", str(Path(scratch) / "target"),
            "--python-version", PYTHON_VERSION, "--implementation", "cp",
            "--abi", f"cp{PYTHON_VERSION.replace('.', '')}",
            *[arg for platform in PLATFORMS for arg in ("--platform", platform)],
            "--report", str(report), "--quiet", "--disable-pip-version-check", "-r", str(lock),
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
            raise LockError(
                f"pip cannot install the image lock for Python {PYTHON_VERSION} on "
                f"{PLATFORMS[0]}: {' '.join(errors) or done.stderr.strip()[-500:]}"
            )
        return json.loads(report.read_text())["install"]


class LockError(RuntimeError):
    pass


def problems(installed: list[dict], pinned: dict[str, str]) -> list[str]:
    """What is wrong with the closure: an unmet or unpinned requirement, a wheel that is not the
    pinned version."""
    found = []
    available = {**pinned, **FROM_BASE}
    for item in installed:
        meta = item["metadata"]
        name = canonicalize_name(meta["name"])
        if pinned.get(name) != meta["version"]:
            found.append(f"{name}: pip chose {meta['version']}, the lock pins {pinned.get(name)}")
        for text in meta.get("requires_dist") or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate(MARKERS):
                continue
            needed = canonicalize_name(requirement.name)
            if needed not in available:
                found.append(f"{name} {meta['version']} needs {text}, which is not in the lock")
            elif not requirement.specifier.contains(Version(available[needed]), prereleases=True):
                found.append(f"{name} {meta['version']} needs {text}; the lock has {needed}=="
                             f"{available[needed]}")  # fmt: skip
    return found


def main() -> int:
    pinned = pins()
    try:
        installed = resolve()
    except LockError as error:
        print(error, file=sys.stderr)
        return 1
    wheels = [item["download_info"]["url"].rsplit("/", 1)[-1] for item in installed]
    found = problems(installed, pinned)
    for problem in found:
        print(f"image lock: {problem}", file=sys.stderr)
    print(
        f"image lock: {len(wheels)} pins resolve to wheels for Python {PYTHON_VERSION} "
        f"{PLATFORMS[0]}; closure {'complete' if not found else 'INCOMPLETE'} "
        f"(torch {TORCH_VERSION} from the base image)"
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
