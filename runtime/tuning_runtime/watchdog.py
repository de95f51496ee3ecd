"""Idle watchdog: a run whose GPU, CPU and step counter all stand still for idleMinutes is over.

The decision (:class:`IdleWatchdog`) is pure; the samplers read nvidia-smi, the trainer's CPU time
and the progress file the trainer rewrites after every optimizer step (contracts section 3).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
from typing import Callable

log = logging.getLogger(__name__)

GPU_IDLE_PERCENT = 5.0
CPU_IDLE_PERCENT = 10.0  # of one core
NVIDIA_SMI_TIMEOUT_SECONDS = 15


class IdleWatchdog:
    """Fires once every sample for ``idle_seconds`` was idle: GPU and CPU below their thresholds
    and no new optimizer step. A missing measurement (no GPU, no progress file yet) counts as idle
    for that signal, so the others decide."""

    def __init__(
        self,
        idle_seconds: float,
        started_at: float,
        gpu_idle_percent: float = GPU_IDLE_PERCENT,
        cpu_idle_percent: float = CPU_IDLE_PERCENT,
    ) -> None:
        self.idle_seconds = idle_seconds
        self.gpu_idle_percent = gpu_idle_percent
        self.cpu_idle_percent = cpu_idle_percent
        self.last_busy_at = started_at
        self.last_step: int | None = None
        self.last_reason = "started"

    def observe(
        self, now: float, gpu_percent: float | None, cpu_percent: float | None, step: int | None
    ) -> bool:
        """Record one sample; True when the run has been idle for ``idle_seconds``."""
        busy = []
        if gpu_percent is not None and gpu_percent >= self.gpu_idle_percent:
            busy.append(f"GPU {gpu_percent:.0f}%")
        if cpu_percent is not None and cpu_percent >= self.cpu_idle_percent:
            busy.append(f"CPU {cpu_percent:.0f}%")
        if step is not None and step != self.last_step:
            busy.append(f"step {step}")
            self.last_step = step
        if busy:
            self.last_busy_at = now
            self.last_reason = ", ".join(busy)
        return now - self.last_busy_at >= self.idle_seconds

    def idle_for(self, now: float) -> float:
        return now - self.last_busy_at


def gpu_utilisation(nvidia_smi: str = "nvidia-smi") -> float | None:
    """The busiest GPU's utilisation in percent, or None when nvidia-smi cannot tell."""
    try:
        done = subprocess.run(
            [nvidia_smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("nvidia-smi unavailable: %s", error)
        return None
    values = []
    for line in done.stdout.splitlines():
        try:
            values.append(float(line.strip()))
        except ValueError:
            continue
    if done.returncode != 0 or not values:
        log.warning("nvidia-smi gave no utilisation (exit %s): %s", done.returncode, done.stderr)
        return None
    return max(values)


PROGRESS_MAX_BYTES = 64 * 1024


def read_progress(path: str) -> dict | None:
    """The trainer's progress file (``step``, ``max_steps``, ``loss``, ``updated_at``), if any.

    The trainer writes it, so it is read as untrusted: not through a link, not from a FIFO or a
    device (which would block the supervisor), and no more than a small file's bytes."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            return None
        progress = json.loads(os.read(handle, PROGRESS_MAX_BYTES))
    except (OSError, ValueError):
        return None
    finally:
        os.close(handle)
    return progress if isinstance(progress, dict) else None


def progress_step(path: str) -> int | None:
    progress = read_progress(path)
    step = progress.get("step") if progress else None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


class CpuMeter:
    """Turns a cumulative CPU-seconds reading into percent of one core between two samples."""

    def __init__(self, cpu_seconds: Callable[[], float | None], clock: Callable[[], float]):
        self._cpu_seconds = cpu_seconds
        self._clock = clock
        self._last: tuple | None = None

    def sample(self) -> float | None:
        used, now = self._cpu_seconds(), self._clock()
        previous, self._last = self._last, (used, now) if used is not None else None
        if used is None or previous is None or now <= previous[1]:
            return None
        return max(0.0, (used - previous[0]) / (now - previous[1]) * 100)


def host_cpu_seconds() -> float | None:
    """Busy CPU seconds of the whole host since boot (/proc/stat), the container's view on EC2."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()[1:]
    except OSError:
        return None
    ticks = [int(value) for value in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def process_group_cpu_seconds(pgid: int) -> float | None:
    """CPU seconds used by the live processes of one process group (a local trainer and its
    data-loader workers)."""
    total, found = 0, False
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])  # utime + stime
            found = True
    return total / os.sysconf("SC_CLK_TCK") if found else None
