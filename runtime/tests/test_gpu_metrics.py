"""The watchdog's GPU samples as the run dashboard reads them: EMF log events in the run's log
group (docs/contracts.md section 10), against moto through boto3.

    .venv/bin/python -m pytest -q runtime/tests/test_gpu_metrics.py
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import boto3
from harness import FAKES
from testing.moto_server import REGION

from tuning_runtime import watchdog
from tuning_runtime.aws import Boto3Aws

LOG_GROUP = "/tuning-lab/TrainingStack/training"
SETTINGS = SimpleNamespace(log_group_name=LOG_GROUP, run_id="run-test0001")


def events(stream: str) -> list:
    found = boto3.client("logs").get_log_events(logGroupName=LOG_GROUP, logStreamName=stream)
    return [json.loads(event["message"]) for event in found["events"]]


def test_samples_are_flushed_as_emf_under_the_run_id(aws_env):
    boto3.client("logs").create_log_group(logGroupName=LOG_GROUP)
    metrics = watchdog.GpuMetrics(Boto3Aws(REGION), SETTINGS, "i-0abc", flush_seconds=60)

    now = time.time()
    metrics.add(watchdog.GpuSample(97.0, 25.0), at=now - 30)
    metrics.add(watchdog.GpuSample(88.0, None), at=now)
    metrics.flush_if_due(0.0)  # the first call only starts the clock
    metrics.flush_if_due(60.0)

    first, second = events("run-test0001/i-0abc/gpu-metrics")
    assert first["_aws"]["CloudWatchMetrics"] == [
        {
            "Namespace": "TuningLab",
            "Dimensions": [["RunId"]],
            "Metrics": [
                {"Name": "gpu_utilisation", "Unit": "Percent"},
                {"Name": "gpu_memory_used", "Unit": "Percent"},
            ],
        }
    ]
    assert (first["RunId"], first["gpu_utilisation"], first["gpu_memory_used"]) == (
        "run-test0001",
        97.0,
        25.0,
    )
    assert first["_aws"]["Timestamp"] == int((now - 30) * 1000)
    assert "gpu_memory_used" not in second


def test_a_missing_log_group_stops_publishing_without_raising(aws_env):
    metrics = watchdog.GpuMetrics(Boto3Aws(REGION), SETTINGS, "i-0abc", flush_seconds=0)
    metrics.add(watchdog.GpuSample(50.0, 10.0))

    metrics.flush_if_due(1.0)
    metrics.add(watchdog.GpuSample(50.0, 10.0))

    assert metrics.disabled and metrics.events == []


def test_nvidia_smi_gives_the_busiest_gpu_and_the_fullest_memory(fakes):
    fakes.set_gpu_utilisation(42)

    sample = watchdog.gpu_sample(str(FAKES / "nvidia-smi.sh"))

    assert sample == watchdog.GpuSample(42.0, 25.0)


def test_no_nvidia_smi_is_no_sample(tmp_path):
    assert watchdog.gpu_sample(str(tmp_path / "missing")) is None
