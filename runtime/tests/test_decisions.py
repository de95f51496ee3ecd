"""The supervisor's pure decisions: what a trainer exit means, and when a run is idle."""

from __future__ import annotations

import os

import pytest

from tuning_runtime.imds import Notice
from tuning_runtime.supervisor import HOST_STOP, IDLE, MAX_COST, MAX_RUNTIME, NOTICE, decide
from tuning_runtime.watchdog import CpuMeter, IdleWatchdog, progress_step

SPOT = Notice("terminate", "2026-01-01T00:02:00Z", "spot-interruption")
RETRY = ("retry", "")


@pytest.mark.parametrize(
    ("exit_code", "cause", "failures", "notice", "expected"),
    [
        (0, None, 0, None, ("completed", "completed")),
        (0, IDLE, 0, None, ("completed", "completed")),  # finished as the watchdog fired
        (0, NOTICE, 0, SPOT, ("completed", "completed")),
        (2, None, 0, None, ("failed", "bad-input")),
        (2, NOTICE, 0, SPOT, ("failed", "bad-input")),
        (1, None, 0, None, RETRY),
        (1, None, 1, None, RETRY),
        (1, None, 2, None, ("failed", "trainer-failed")),
        (-9, None, 0, None, RETRY),  # killed (OOM) is a failure like any other
        (-9, None, 2, None, ("failed", "trainer-failed")),
        (75, None, 0, None, RETRY),  # 75 with no notice: nobody will replace us, so resume here
        (75, None, 2, None, ("failed", "trainer-failed")),
        (75, NOTICE, 0, SPOT, ("interrupted", "spot-interruption")),
        (75, None, 0, SPOT, ("interrupted", "spot-interruption")),  # the trainer saw it first
        (1, NOTICE, 2, SPOT, ("interrupted", "spot-interruption")),  # going away: never failed
        (-9, NOTICE, 0, SPOT, ("interrupted", "spot-interruption")),
        (75, HOST_STOP, 0, None, ("interrupted", "host-shutdown")),
        (1, HOST_STOP, 2, None, ("interrupted", "host-shutdown")),
        (2, HOST_STOP, 0, None, ("failed", "bad-input")),
        (75, IDLE, 0, None, ("stopped-by-safety", "idle")),
        (-9, IDLE, 0, None, ("stopped-by-safety", "idle")),
        (2, IDLE, 0, None, ("stopped-by-safety", "idle")),
        (75, MAX_RUNTIME, 0, None, ("stopped-by-safety", "max-runtime")),
        (75, MAX_COST, 0, None, ("stopped-by-safety", "max-cost")),
    ],
)
def test_trainer_exit_decision(exit_code, cause, failures, notice, expected):
    decision = decide(exit_code, cause, failures, max_retries=2, notice=notice)

    got = ("retry", "") if decision.retry else (decision.status, decision.reason)
    assert got == expected


IDLE_SECONDS = 60


def watchdog_after(samples: list) -> list:
    """Feed (seconds, gpu, cpu, step) samples; return whether it fired after each one."""
    dog = IdleWatchdog(idle_seconds=IDLE_SECONDS, started_at=0.0)
    return [dog.observe(now, gpu, cpu, step) for now, gpu, cpu, step in samples]


@pytest.mark.parametrize(
    ("samples", "fired"),
    [
        # all quiet from the start: fires once idle_seconds have passed
        ([(30, 0, 1, None), (59, 0, 1, None), (60, 0, 1, None)], [False, False, True]),
        # a new step restarts the clock
        ([(30, 0, 1, 5), (60, 0, 1, 5), (89, 0, 1, 5), (90, 0, 1, 5)], [False, False, False, True]),
        ([(50, 0, 1, 1), (100, 0, 1, 2), (150, 0, 1, 3)], [False, False, False]),
        # a busy GPU or CPU is activity, even without steps (evaluation, data preparation)
        ([(30, 90, 1, 7), (80, 90, 1, 7), (130, 90, 1, 7)], [False, False, False]),
        ([(30, 0, 95, None), (80, 0, 95, None), (130, 0, 95, None)], [False, False, False]),
        # just under the thresholds (GPU 5 %, CPU 10 % of a core) is idle
        ([(30, 4.9, 9.9, None), (60, 4.9, 9.9, None)], [False, True]),
        # measurements nobody could take count as idle for that signal
        ([(30, None, None, None), (60, None, None, None)], [False, True]),
        ([(30, None, 50, None), (60, None, 50, None)], [False, False]),
    ],
)
def test_idle_watchdog(samples, fired):
    assert watchdog_after(samples) == fired


def test_idle_watchdog_names_the_last_activity():
    dog = IdleWatchdog(idle_seconds=IDLE_SECONDS, started_at=0.0)

    dog.observe(10, 80, 3, 4)
    dog.observe(20, 0, 3, 4)

    assert dog.last_reason == "GPU 80%, step 4" and dog.idle_for(70) == 60


def test_cpu_meter_reports_percent_of_one_core_between_samples():
    readings = iter([(10.0, 100.0), (10.5, 101.0), (12.5, 102.0)])
    current = {}

    def cpu_seconds():
        current["cpu"], current["now"] = next(readings)
        return current["cpu"]

    meter = CpuMeter(cpu_seconds, lambda: current["now"])

    assert meter.sample() is None  # no previous reading
    assert meter.sample() == pytest.approx(50.0)
    assert meter.sample() == pytest.approx(200.0)  # two cores busy


def test_cpu_meter_without_a_reading_reports_nothing():
    meter = CpuMeter(lambda: None, lambda: 1.0)

    assert meter.sample() is None and meter.sample() is None


def test_a_progress_file_the_trainer_turned_into_a_fifo_or_link_is_not_read(tmp_path):
    fifo, link, big = tmp_path / "fifo", tmp_path / "link", tmp_path / "big"
    os.mkfifo(fifo)  # an open() without O_NONBLOCK would block the supervisor here
    (tmp_path / "real.json").write_text('{"step": 7}')
    link.symlink_to(tmp_path / "real.json")
    big.write_text('{"step": 8, "pad": "' + "x" * 100_000 + '"}')

    assert [progress_step(str(p)) for p in (fifo, link, big)] == [None, None, None]
    assert progress_step(str(tmp_path / "real.json")) == 7
