"""What the trainer image is built on, in one place: the Dockerfile's base and Python, and what
the image lock is generated for and checked against (docs/external-names.md says where each
fact was checked).

    pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime   Ubuntu 24.04 (glibc 2.39), Python 3.12 at
                                                     /usr/bin/python3 (PEP 668: externally
                                                     managed), torch 2.13.0+cu130
CUDA 13.0 needs NVIDIA driver >= 580 (the Base OSS DLAMI on Ubuntu 22.04 ships 580) and runs on
Turing and newer: g4dn (T4), g5 (A10G), g6 (L4), g6e (L40S). No Volta (p3): tuning-lab refuses
P3 at synth.
"""

from __future__ import annotations

BASE_IMAGE = "pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime"
TORCH_VERSION = "2.13.0"
PYTHON_VERSION = "3.12"
GLIBC = (2, 39)
# pip's --platform takes exact tags (it does not widen manylinux_2_X to older ones), so every
# manylinux tag a glibc-2.39 x86_64 system accepts is named: 2_17 .. 2_39, and the legacy
# alias manylinux2014 (= 2_17).
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(GLIBC[1], 16, -1)] + [
    "manylinux2014_x86_64",
    "linux_x86_64",
]
# What environment markers see in the image (packaging's marker variables).
MARKERS = {
    "python_version": PYTHON_VERSION,
    "python_full_version": f"{PYTHON_VERSION}.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "extra": "",
}
