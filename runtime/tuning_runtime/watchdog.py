"""Idle watchdog: a run whose GPU, CPU and step counter all stand still for idleMinutes is over.

The decision (:class:`IdleWatchdog`) is pure; the samplers read nvidia-smi, the trainer's CPU time
and the progress file the trainer rewrites after every optimizer step (contracts section 3).
:class:`GpuMetrics` publishes the GPU samples for the run dashboard (lib/dashboard.ts).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)

GPU_IDLE_PERCENT = 5.0
CPU_IDLE_PERCENT = 10.0  # of one core
NVIDIA_SMI_TIMEOUT_SECONDS = 15
GPU_QUERY = "utilization.gpu,memory.used,memory.total"
EMF_NAMESPACE = "TuningLab"  # the trainer's (trainer-image/src/tuning_trainer/callbacks.py)


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


@dataclass(frozen=True)
class GpuSample:
    """The busiest GPU's utilisation and the fullest GPU's memory, in percent."""

    utilisation_percent: float
    memory_used_percent: float | None


def gpu_sample(nvidia_smi: str = "nvidia-smi") -> GpuSample | None:
    """One nvidia-smi reading, or None when nvidia-smi cannot tell (no GPU, no driver)."""
    try:
        done = subprocess.run(
            [nvidia_smi, f"--query-gpu={GPU_QUERY}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("nvidia-smi unavailable: %s", error)
        return None
    utilisation, memory = [], []
    for line in done.stdout.splitlines():
        try:
            used_percent, used_mib, total_mib = (float(f) for f in line.split(","))
        except ValueError:
            continue
        utilisation.append(used_percent)
        if total_mib > 0:
            memory.append(used_mib / total_mib * 100)
    if done.returncode != 0 or not utilisation:
        log.warning("nvidia-smi gave no utilisation (exit %s): %s", done.returncode, done.stderr)
        return None
    return GpuSample(max(utilisation), max(memory) if memory else None)


def gpu_utilisation(nvidia_smi: str = "nvidia-smi") -> float | None:
    """The busiest GPU's utilisation in percent, or None when nvidia-smi cannot tell."""
    sample = gpu_sample(nvidia_smi)
    return sample.utilisation_percent if sample else None


class GpuMetrics:
    """The watchdog's GPU samples as CloudWatch metrics (the run dashboard's GPU graphs).

    Written as embedded-metric-format log events into the run's log group, next to the trainer's
    own EMF lines (namespace TuningLab, dimension RunId), so the instance role needs no
    cloudwatch:PutMetricData: it may already write that log group. Buffered and flushed every
    ``flush_seconds`` (one PutLogEvents); a failure is logged once and publishing stops, since
    the metrics are for the eye and the idle decision never depends on them.
    """

    def __init__(self, aws: object, settings: object, instance_id: str, flush_seconds: float):
        self.aws = aws
        self.group = settings.log_group_name
        self.run_id = settings.run_id
        self.stream = f"{settings.run_id}/{instance_id}/gpu-metrics"
        self.instance_id = instance_id
        self.flush_seconds = flush_seconds
        self.events: list = []
        self.next_flush: float | None = None
        self.stream_ready = False
        self.disabled = False

    def add(self, sample: GpuSample | None, at: float | None = None) -> None:
        if sample is None or self.disabled:
            return
        metrics = {"gpu_utilisation": sample.utilisation_percent}
        if sample.memory_used_percent is not None:
            metrics["gpu_memory_used"] = round(sample.memory_used_percent, 2)
        stamp = int((at if at is not None else time.time()) * 1000)
        document = {
            "_aws": {
                "Timestamp": stamp,
                "CloudWatchMetrics": [
                    {
                        "Namespace": EMF_NAMESPACE,
                        "Dimensions": [["RunId"]],
                        "Metrics": [{"Name": name, "Unit": "Percent"} for name in metrics],
                    }
                ],
            },
            "RunId": self.run_id,
            "InstanceId": self.instance_id,
            **metrics,
        }
        self.events.append({"timestamp": stamp, "message": json.dumps(document)})

    def flush_if_due(self, now: float) -> None:
        if self.next_flush is None:
            self.next_flush = now + self.flush_seconds
        if now < self.next_flush or not self.events or self.disabled:
            return
        self.next_flush = now + self.flush_seconds
        events, self.events = self.events, []
        try:
            if not self.stream_ready:
                self._create_stream()
            self.aws.call(
                "logs",
                "PutLogEvents",
                {"logGroupName": self.group, "logStreamName": self.stream, "logEvents": events},
            )
        except Exception as error:  # never let the dashboard's data stop a run
            log.warning("publishing GPU metrics failed, not trying again: %s", error)
            self.disabled = True

    def _create_stream(self) -> None:
        try:
            self.aws.call(
                "logs",
                "CreateLogStream",
                {"logGroupName": self.group, "logStreamName": self.stream},
            )
        except Exception as error:
            if getattr(error, "code", "") != "ResourceAlreadyExistsException":
                raise
        self.stream_ready = True


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
