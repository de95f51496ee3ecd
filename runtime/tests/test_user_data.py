"""runtime/user-data.sh, rendered as the stack renders it and run in a scratch root
(TUNING_LAB_ROOT) with the real AWS CLI against moto, the fake IMDS, and fakes for systemctl,
shutdown and sleep; and the systemd unit it installs."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from harness import (
    FAKES,
    OUTPUTS_BUCKET,
    REGION,
    RUN_ID,
    RUNTIME_DIR,
    STACK_NAME,
    build_runtime_archive,
)

from tuning_runtime import contract
from tuning_runtime.launchers import STOP_TIMEOUT_SECONDS

TEMPLATE = RUNTIME_DIR / "user-data.sh"
UNIT = RUNTIME_DIR / "systemd" / "tuning-supervisor.service"
MARKERS = ("{{RUN_SETTINGS_PARAMETER}}", "{{REGION}}", "{{RUNTIME_ARCHIVE_URI}}", "{{STACK_NAME}}")
ARCHIVE_URI = "s3://tuning-assets/runtime/abc123.zip"


def render(archive_uri: str = ARCHIVE_URI) -> str:
    text = TEMPLATE.read_text()
    values = {
        "{{RUN_SETTINGS_PARAMETER}}": contract.settings_parameter_name(STACK_NAME),
        "{{REGION}}": REGION,
        "{{RUNTIME_ARCHIVE_URI}}": archive_uri,
        "{{STACK_NAME}}": STACK_NAME,
    }
    for marker, value in values.items():
        text = text.replace(marker, value)
    return text


@pytest.fixture
def instance(cloud, tmp_path, monkeypatch):
    """A scratch root, the runtime archive in S3 and the fakes on PATH."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="tuning-assets")
    archive = build_runtime_archive(tmp_path / "runtime.zip")
    s3.upload_file(str(archive), "tuning-assets", "runtime/abc123.zip")
    bin_dir = tmp_path / "bin"
    for name in ("systemctl", "shutdown", "sleep"):
        (bin_dir / name).symlink_to(FAKES / f"{name}.sh")
    (bin_dir / "python3").symlink_to(sys.executable)
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(tmp_path / "systemctl.log"))
    monkeypatch.setenv("FAKE_SLEEP_LOG", str(tmp_path / "sleep.log"))
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", cloud.imds.url)
    root = tmp_path / "root"
    root.mkdir()
    return root


def run_user_data(root: Path, script: str) -> subprocess.CompletedProcess:
    path = root.parent / "user-data.sh"
    path.write_text(script)
    env = {**os.environ, "TUNING_LAB_ROOT": str(root)}
    return subprocess.run(["bash", str(path)], env=env, capture_output=True, text=True, timeout=120)


def installed_files(root: Path) -> dict:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and "log" not in path.parts
    }


def test_template_has_exactly_the_markers_the_stack_renders():
    assert set(re.findall(r"\{\{[A-Z_]+\}\}", TEMPLATE.read_text())) == set(MARKERS)
    assert not re.findall(r"\{\{", render())


def test_user_data_installs_and_starts_the_supervisor(instance):
    done = run_user_data(instance, render())

    assert done.returncode == 0, done.stderr
    runtime = instance / "opt/tuning-lab/runtime"
    assert (runtime / "tuning_runtime/supervisor.py").is_file()
    assert not (runtime / "tests").exists()
    env = (instance / "etc/tuning-lab/runtime.env").read_text().splitlines()
    assert f"TUNING_RUN_SETTINGS_PARAMETER=/tuning-lab/{STACK_NAME}/run-settings" in env
    assert f"AWS_REGION={REGION}" in env
    assert f"AWS_DEFAULT_REGION={REGION}" in env  # the one AWS CLI v1 reads
    assert "AWS_STS_REGIONAL_ENDPOINTS=regional" in env  # the trainer role from the region's STS
    assert (
        instance / "etc/systemd/system/tuning-supervisor.service"
    ).read_text() == UNIT.read_text()
    calls = (instance.parent / "systemctl.log").read_text().splitlines()
    assert calls == [
        "daemon-reload",
        "enable tuning-supervisor.service",
        "start --no-block tuning-supervisor.service",
    ]
    assert "supervisor started" in (instance / "var/log/training-setup.log").read_text()
    assert not (instance.parent / "shutdown.log").exists()


def test_user_data_run_twice_converges_without_restarting_the_supervisor(instance):
    run_user_data(instance, render())
    first = sorted(p.relative_to(instance) for p in instance.rglob("*") if "log" not in p.parts)

    again = run_user_data(instance, render())

    assert again.returncode == 0, again.stderr
    assert (
        sorted(p.relative_to(instance) for p in instance.rglob("*") if "log" not in p.parts)
        == first
    )
    calls = (instance.parent / "systemctl.log").read_text().splitlines()
    assert not any("restart" in call or "stop" in call for call in calls)


def test_failed_setup_sets_capacity_to_zero_and_shuts_down(instance, cloud):
    done = run_user_data(instance, render(archive_uri="s3://tuning-assets/runtime/missing.zip"))

    assert done.returncode != 0
    log = (instance / "var/log/training-setup.log").read_text()
    assert "setup failed" in log and log.count("failed; retrying") == 5
    assert (instance.parent / "shutdown.log").read_text().split(" ", 1)[1] == "-h now\n"
    assert cloud.group()["DesiredCapacity"] == 0
    assert not (instance.parent / "systemctl.log").exists()


def test_failed_setup_leaves_its_log_in_s3_and_sends_one_failed_message(instance, cloud):
    run_user_data(instance, render(archive_uri="s3://tuning-assets/runtime/missing.zip"))

    log_key = f"runs/{RUN_ID}/logs/{cloud.instance_id}/training-setup.log"
    assert cloud.keys("logs/") == [log_key]
    copied = boto3.client("s3").get_object(Bucket=OUTPUTS_BUCKET, Key=log_key)["Body"].read()
    assert b"failed; retrying" in copied
    [message] = cloud.messages()
    assert message["subject"] == f"tuning-lab {RUN_ID}: failed"
    assert (message["runId"], message["status"]) == (RUN_ID, "failed")
    assert (
        "Reason: setup-failed: the instance's setup (user-data) failed at line" in message["body"]
    )
    assert f"Logs: s3://{OUTPUTS_BUCKET}/{log_key}" in message["body"]
    assert "\nNext step:\nNo training started" in message["body"]


def test_user_data_is_shellcheck_clean():
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent))

    done = subprocess.run([shellcheck, str(TEMPLATE)], capture_output=True, text=True)

    assert done.returncode == 0, done.stdout


def test_unit_runs_the_supervisor_from_where_user_data_installs_it():
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str
    unit.read(UNIT)
    service = unit["Service"]
    script = TEMPLATE.read_text()

    assert service["ExecStart"] == "/usr/bin/python3 -m tuning_runtime run"
    assert "PYTHONPATH=/opt/tuning-lab/runtime" in service["Environment"]
    assert 'runtime_dir="$root/opt/tuning-lab/runtime"' in script
    assert service["EnvironmentFile"] == "/etc/tuning-lab/runtime.env"
    assert '"$root/etc/tuning-lab/runtime.env"' in script


def test_unit_gives_the_trainer_its_stop_timeout_before_killing():
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.read(UNIT)
    service = unit["Service"]

    assert service["KillMode"] == "mixed"  # SIGTERM to the supervisor only; it stops the trainer
    assert int(service["TimeoutStopSec"]) >= STOP_TIMEOUT_SECONDS + 30
    assert service["Restart"] == "on-failure"
    assert "docker.service" in unit["Unit"]["After"]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_unit_passes_systemd_verify(tmp_path):
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text())

    done = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True)

    assert done.returncode == 0 and done.stderr == "", done.stderr
