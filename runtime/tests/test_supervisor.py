"""The host supervisor branch by branch, against moto through boto3, with the fake trainer
(tests/fakes/fake_trainer.py), the fake IMDSv2 and fakes for nvidia-smi and shutdown.

    .venv/bin/python -m pytest -q runtime/tests/test_supervisor.py
"""

from __future__ import annotations

import json
import threading
import time

import boto3
import pytest
from harness import (
    FAKE_TRAINER,
    FAKES,
    FAST,
    IMAGE_URI,
    ON_DEMAND_USD_PER_HOUR,
    OUTPUTS_BUCKET,
    REPOSITORY,
    RUN_ID,
    Background,
    FakeImds,
    build_supervisor,
    identity,
    progress_step,
    push_image,
    wait_for,
)

from tuning_runtime import contract
from tuning_runtime.launchers import DockerLauncher, LocalLauncher
from tuning_runtime.ledger import parse_iso

FINISH_BOUND_SECONDS = 60  # DESIGN.md section 4: terminate requested within 60 s of trainer exit


def run_to_end(cloud, tmp_path, monkeypatch, plan: str, **settings) -> dict:
    monkeypatch.setenv("FAKE_TRAINER_PLAN", plan)
    cloud.put_settings(**settings)
    assert build_supervisor(cloud, tmp_path).run() == 0
    return cloud.ledger()


def shutdown_within_bound(fakes, ledger: dict) -> bool:
    (requested_at, args), *_ = fakes.shutdown_calls()
    trainer_exit = parse_iso(ledger["attempts"][-1]["endedAt"])
    return args == "-h now" and requested_at - trainer_exit <= FINISH_BOUND_SECONDS


def test_completed_run_is_recorded_announced_and_terminated(cloud, fakes, tmp_path, monkeypatch):
    ledger = run_to_end(cloud, tmp_path, monkeypatch, "complete")

    assert ledger["status"] == contract.COMPLETED and ledger["reason"] == "completed"
    assert ledger["finalModelUri"] == f"{cloud.output_uri}/final/"
    assert ledger["lastStep"] == 3
    assert [a["exitCode"] for a in ledger["attempts"]] == [0]
    assert cloud.statuses() == ["started", "completed"]
    assert cloud.group()["DesiredCapacity"] == 0
    assert shutdown_within_bound(fakes, ledger)


def test_ledger_records_where_the_run_ran(cloud, fakes, tmp_path, monkeypatch):
    ledger = run_to_end(cloud, tmp_path, monkeypatch, "complete")

    assert ledger["runId"] == RUN_ID and ledger["schemaVersion"] == 1
    assert ledger["instanceId"] == cloud.instance_id
    assert (ledger["instanceType"], ledger["availabilityZone"]) == ("g5.xlarge", "us-east-1a")
    assert ledger["market"] == "on-demand"
    assert parse_iso(ledger["startedAt"]) <= parse_iso(ledger["endedAt"])


def test_cost_is_billable_seconds_at_the_instance_price(cloud, fakes, tmp_path, monkeypatch):
    ledger = run_to_end(cloud, tmp_path, monkeypatch, "complete")

    attempt = ledger["attempts"][0]
    trained = parse_iso(attempt["endedAt"]) - parse_iso(attempt["startedAt"])
    assert attempt["usdPerHour"] == ON_DEMAND_USD_PER_HOUR
    assert round(trained) <= ledger["billableSeconds"] <= trained + FINISH_BOUND_SECONDS
    hours = ledger["billableSeconds"] / 3600
    assert ledger["estimatedCostUsd"] == pytest.approx(hours * ON_DEMAND_USD_PER_HOUR, abs=1e-3)


def test_logs_are_uploaded_and_named_in_the_ledger(cloud, fakes, tmp_path, monkeypatch):
    ledger = run_to_end(cloud, tmp_path, monkeypatch, "complete")

    assert ledger["logsUri"] == f"{cloud.output_uri}/logs/"
    key = f"runs/{RUN_ID}/logs/{cloud.instance_id}/training.log"
    assert key in cloud.keys("logs/")
    log = boto3.client("s3").get_object(Bucket=OUTPUTS_BUCKET, Key=key)["Body"].read().decode()
    assert "training finished" in log and "[tuning-supervisor" in log


def test_completion_message_reads_as_an_email(cloud, fakes, tmp_path, monkeypatch):
    run_to_end(cloud, tmp_path, monkeypatch, "complete")

    completed = cloud.messages()[-1]
    assert completed["subject"] == f"tuning-lab {RUN_ID}: completed"
    assert (completed["runId"], completed["status"]) == (RUN_ID, "completed")
    assert f"Model: {cloud.output_uri}/final/" in completed["body"]
    assert f"npx tuning-lab pull {RUN_ID} ./model" in completed["body"].split("Next step:")[1]


def test_exit_zero_without_a_final_manifest_is_a_failure(cloud, fakes, tmp_path, monkeypatch):
    ledger = run_to_end(cloud, tmp_path, monkeypatch, "complete-without-manifest")

    assert (ledger["status"], ledger["reason"]) == ("failed", "final-model-missing")
    assert ledger["finalModelUri"] is None
    assert cloud.group()["DesiredCapacity"] == 0 and fakes.shutdown_calls()


def test_exit_zero_with_an_incomplete_final_model_is_a_failure(cloud, fakes, tmp_path, monkeypatch):
    ledger = run_to_end(cloud, tmp_path, monkeypatch, "complete-truncated")

    assert (ledger["status"], ledger["reason"]) == ("failed", "final-model-missing")
    assert ledger["lastLogLines"][-1].endswith(
        "final/model.safetensors: the manifest says 64 bytes, S3 has 10 bytes"
    )


def test_bad_input_fails_at_once_without_retry(cloud, fakes, tmp_path, monkeypatch):
    ledger = run_to_end(cloud, tmp_path, monkeypatch, "bad-input,complete")

    assert (ledger["status"], ledger["reason"]) == ("failed", "bad-input")
    assert [a["exitCode"] for a in ledger["attempts"]] == [2]
    assert "lora.r must be greater than 0" in ledger["lastLogLines"][-1]
    assert cloud.statuses() == ["started", "failed"]
    assert cloud.group()["DesiredCapacity"] == 0
    assert shutdown_within_bound(fakes, ledger)


def test_failing_trainer_is_retried_then_failed_with_its_last_50_lines(
    cloud, fakes, tmp_path, monkeypatch
):
    ledger = run_to_end(cloud, tmp_path, monkeypatch, "fail", maxRetries=2)

    assert (ledger["status"], ledger["reason"]) == ("failed", "trainer-failed")
    assert [a["exitCode"] for a in ledger["attempts"]] == [1, 1, 1]
    assert len(ledger["lastLogLines"]) == 50
    assert ledger["lastLogLines"][-1].startswith("RuntimeError: CUDA error")
    assert cloud.statuses() == ["started", "failed"]
    assert "RuntimeError: CUDA error" in cloud.messages()[-1]["body"]
    assert cloud.group()["DesiredCapacity"] == 0
    assert shutdown_within_bound(fakes, ledger)


def test_a_retry_that_succeeds_completes_the_run(cloud, fakes, tmp_path, monkeypatch):
    ledger = run_to_end(cloud, tmp_path, monkeypatch, "fail,complete", maxRetries=2)

    assert ledger["status"] == "completed"
    assert [a["exitCode"] for a in ledger["attempts"]] == [1, 0]


def test_no_retries_when_max_retries_is_zero(cloud, fakes, tmp_path, monkeypatch):
    ledger = run_to_end(cloud, tmp_path, monkeypatch, "fail,complete", maxRetries=0)

    assert (ledger["status"], [a["exitCode"] for a in ledger["attempts"]]) == ("failed", [1])


def test_exit_75_without_any_notice_is_retried_as_a_failure(cloud, fakes, tmp_path, monkeypatch):
    ledger = run_to_end(cloud, tmp_path, monkeypatch, "exit-75,complete")

    assert [a["exitCode"] for a in ledger["attempts"]] == [75, 0]
    assert ledger["status"] == "completed" and ledger["interruptions"] == []


def test_spot_notice_checkpoints_and_leaves_the_group_to_replace_us(
    spot_cloud, fakes, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "train")
    supervisor = Background(build_supervisor(spot_cloud, tmp_path))
    wait_for(lambda: progress_step(tmp_path) >= 3, what="training steps")

    spot_cloud.imds.interrupt()
    assert supervisor.join() == 0

    ledger = spot_cloud.ledger()
    assert (ledger["status"], ledger["reason"]) == ("interrupted", "spot-interruption")
    assert ledger["endedAt"] is None
    assert [a["exitCode"] for a in ledger["attempts"]] == [75]
    assert [(i["instanceId"], i["action"]) for i in ledger["interruptions"]] == [
        (spot_cloud.instance_id, "terminate")
    ]
    assert any(k.endswith("/manifest.json") for k in spot_cloud.keys("checkpoints/"))
    assert spot_cloud.statuses() == ["started", "interrupted"]
    assert spot_cloud.group()["DesiredCapacity"] == 1
    assert shutdown_within_bound(fakes, ledger)


def test_a_rebalance_recommendation_is_logged_and_the_run_stays(
    spot_cloud, fakes, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "train-40")
    supervisor = Background(build_supervisor(spot_cloud, tmp_path))
    wait_for(lambda: progress_step(tmp_path) >= 2, what="training steps")

    spot_cloud.imds.recommend_rebalance()
    wait_for(
        lambda: "recommended rebalancing" in (tmp_path / "training.log").read_text(),
        what="the recommendation in the training log",
    )
    assert supervisor.thread.is_alive()  # no checkpoint-and-leave on a mere recommendation
    supervisor.join()

    ledger = spot_cloud.ledger()
    assert (ledger["status"], ledger["interruptions"]) == ("completed", [])


def test_replacement_instance_resumes_the_interrupted_run(spot_cloud, fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "train,complete")
    first = Background(build_supervisor(spot_cloud, tmp_path / "first"))
    wait_for(lambda: progress_step(tmp_path / "first") >= 2, what="training steps")
    spot_cloud.imds.interrupt()
    first.join()
    replacement = spot_cloud.replace_instance()
    spot_cloud.imds.stop()  # the replacement's metadata service answers as the replacement

    with FakeImds(identity(replacement, "spot")) as imds:
        code = build_supervisor(spot_cloud, tmp_path / "second", imds_url=imds.url).run()

    ledger = spot_cloud.ledger()
    assert code == 0 and ledger["status"] == "completed"
    assert [a["instanceId"] for a in ledger["attempts"]] == [spot_cloud.instance_id, replacement]
    assert ledger["instanceId"] == replacement
    assert spot_cloud.statuses() == ["started", "interrupted", "resumed", "completed"]
    assert ledger["billableSeconds"] >= 0 and len(ledger["interruptions"]) == 1
    assert spot_cloud.group()["DesiredCapacity"] == 0


def test_idle_watchdog_stops_a_hung_trainer(cloud, fakes, tmp_path, monkeypatch):
    ledger = run_to_end(cloud, tmp_path, monkeypatch, "hang", idleMinutes=0.02)

    assert (ledger["status"], ledger["reason"]) == ("stopped-by-safety", "idle")
    assert cloud.statuses() == ["started", "stopped-by-safety"]
    assert cloud.group()["DesiredCapacity"] == 0
    assert shutdown_within_bound(fakes, ledger)


def test_busy_gpu_keeps_the_idle_watchdog_quiet(cloud, fakes, tmp_path, monkeypatch):
    fakes.set_gpu_utilisation(97)
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "hang")
    cloud.put_settings(idleMinutes=0.01)
    stop = threading.Event()
    supervisor = Background(build_supervisor(cloud, tmp_path, stop_event=stop))

    time.sleep(2.0)  # 3x the idle time
    stop.set()
    supervisor.join()

    assert cloud.ledger()["reason"] == "host-shutdown"


def test_a_trainer_ignoring_sigterm_is_killed_after_the_grace_time(
    spot_cloud, fakes, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "stubborn")
    grace = FAST.__class__(**{**FAST.__dict__, "stop_grace_seconds": 0.5})
    supervisor = Background(build_supervisor(spot_cloud, tmp_path, timings=grace))
    wait_for(lambda: progress_step(tmp_path) >= 2, what="training steps")

    spot_cloud.imds.interrupt()
    supervisor.join(timeout=30)

    ledger = spot_cloud.ledger()
    assert ledger["attempts"][0]["exitCode"] == -9
    assert ledger["status"] == "interrupted"


def test_host_stop_interrupts_without_shutdown_or_capacity_change(
    cloud, fakes, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "train")
    stop = threading.Event()
    supervisor = Background(build_supervisor(cloud, tmp_path, stop_event=stop))
    wait_for(lambda: progress_step(tmp_path) >= 2, what="training steps")

    stop.set()  # systemd's SIGTERM, as at a reboot or when something else terminates us
    assert supervisor.join() == 0

    ledger = cloud.ledger()
    assert (ledger["status"], ledger["reason"]) == ("interrupted", "host-shutdown")
    assert ledger["attempts"][0]["exitCode"] == 75
    assert fakes.shutdown_calls() == []
    assert cloud.group()["DesiredCapacity"] == 1


def test_safety_lambda_verdict_is_kept(cloud, fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "train")
    stop = threading.Event()
    supervisor = Background(build_supervisor(cloud, tmp_path, stop_event=stop))
    wait_for(lambda: progress_step(tmp_path) >= 2, what="training steps")
    verdict = {**cloud.ledger(), "status": "stopped-by-safety", "reason": "max-runtime"}
    boto3.client("s3").put_object(
        Bucket=OUTPUTS_BUCKET, Key=f"runs/{RUN_ID}/ledger.json", Body=json.dumps(verdict).encode()
    )

    stop.set()  # the Lambda terminated the instance: systemd stops the supervisor
    supervisor.join()

    ledger = cloud.ledger()
    assert (ledger["status"], ledger["reason"]) == ("stopped-by-safety", "max-runtime")
    assert ledger["attempts"][0]["exitCode"] == 75  # our facts are still added
    assert cloud.statuses() == ["started"]  # the Lambda announces its own verdict


def test_max_runtime_stops_the_trainer_with_a_checkpoint(cloud, fakes, tmp_path, monkeypatch):
    ledger = run_to_end(cloud, tmp_path, monkeypatch, "train", maxRuntimeHours=0.0005)

    assert (ledger["status"], ledger["reason"]) == ("stopped-by-safety", "max-runtime")
    assert any(k.endswith("/manifest.json") for k in cloud.keys("checkpoints/"))
    assert cloud.group()["DesiredCapacity"] == 0 and fakes.shutdown_calls()


def test_cost_cap_stops_the_trainer_with_a_checkpoint(cloud, fakes, tmp_path, monkeypatch):
    dollar_a_second = {"g5.xlarge": 3600.0}
    ledger = run_to_end(
        cloud, tmp_path, monkeypatch, "train", maxRunCostUsd=1.5, onDemandUsdPerHour=dollar_a_second
    )

    assert (ledger["status"], ledger["reason"]) == ("stopped-by-safety", "max-cost")
    assert ledger["estimatedCostUsd"] >= 1.5
    assert any(k.endswith("/manifest.json") for k in cloud.keys("checkpoints/"))


def test_debug_hold_keeps_the_failed_instance_out_of_its_group_then_shuts_down(
    cloud, fakes, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "bad-input")
    cloud.put_settings(debugHoldMinutes=0.03)  # 1.8 s
    supervisor = Background(build_supervisor(cloud, tmp_path))
    wait_for(lambda: cloud.has_ledger() and cloud.ledger()["status"] == "failed", what="failed")
    wait_for(lambda: cloud.group()["DesiredCapacity"] == 0, what="capacity 0")

    held = cloud.group()
    assert held["Instances"] == [] and cloud.instance_state(cloud.instance_id) == "running"
    assert fakes.shutdown_calls() == []
    supervisor.join()
    assert len(fakes.shutdown_calls()) == 1
    assert "stays up 0.03 minutes for debugging" in cloud.messages()[-1]["body"]


def test_invalid_settings_end_the_instance_without_training(cloud, fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "complete")
    cloud.put_settings(maxRetries=-1)

    assert build_supervisor(cloud, tmp_path).run() == 0

    assert not cloud.has_ledger()
    assert "'maxRetries' must be an integer from 0 to 10" in (tmp_path / "training.log").read_text()
    assert cloud.group()["DesiredCapacity"] == 0 and len(fakes.shutdown_calls()) == 1


def test_unexpected_supervisor_error_fails_the_run_and_terminates(
    cloud, fakes, tmp_path, monkeypatch
):
    supervisor = build_supervisor(cloud, tmp_path)

    def broken_launcher(settings, image_uri):
        raise RuntimeError("launcher exploded")

    supervisor.make_launcher = broken_launcher
    assert supervisor.run() == 0

    ledger = cloud.ledger()
    assert (ledger["status"], ledger["reason"]) == ("failed", "supervisor-error")
    assert "launcher exploded" in ledger["lastLogLines"][-1]
    assert cloud.group()["DesiredCapacity"] == 0 and len(fakes.shutdown_calls()) == 1


@pytest.mark.parametrize("previous", ["completed", "failed"])
def test_a_new_instance_for_a_finished_run_announces_a_start(
    previous, cloud, fakes, tmp_path, monkeypatch
):
    first_plan = "complete" if previous == "completed" else "bad-input"
    run_to_end(cloud, tmp_path / "one", monkeypatch, first_plan)
    boto3.client("autoscaling").update_auto_scaling_group(
        AutoScalingGroupName=cloud.group_name, DesiredCapacity=1
    )

    ledger = run_to_end(cloud, tmp_path / "two", monkeypatch, "complete")

    assert cloud.statuses()[2] == "started"
    assert ledger["status"] == "completed" and len(ledger["attempts"]) == 2


def test_an_image_that_cannot_be_pulled_fails_the_run(cloud, fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(tmp_path / "docker.log"))
    monkeypatch.setenv("FAKE_DOCKER_PULL_FAILURES", "99")
    supervisor = build_supervisor(cloud, tmp_path)
    supervisor.make_launcher = lambda settings, image_uri: DockerLauncher(
        image_uri, settings.region, settings.log_group_name, supervisor.aws,
        scratch_dir=str(tmp_path / "scratch"), docker=str(FAKES / "docker.sh"),
        retry_delays=(0, 0), sleep=lambda _: None,
    )  # fmt: skip

    assert supervisor.run() == 0

    ledger = cloud.ledger()
    assert (ledger["status"], ledger["reason"]) == ("failed", "image-pull-failed")
    assert "toomanyrequests" in ledger["lastLogLines"][-1]
    assert ledger["attempts"] == []  # the trainer never started
    assert cloud.statuses() == ["started", "failed"]
    assert cloud.group()["DesiredCapacity"] == 0 and len(fakes.shutdown_calls()) == 1


def test_a_restarted_supervisor_resumes_on_the_same_instance(cloud, fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "complete")
    boot = "2026-01-01T00:00:00Z"
    crashed = {
        "schemaVersion": 1, "runId": RUN_ID, "status": "running", "startedAt": boot,
        "attempts": [{"instanceId": cloud.instance_id, "instanceType": "g5.xlarge",
                      "market": "on-demand", "startedAt": boot,
                      "endedAt": None, "exitCode": None, "usdPerHour": 1.006}],
    }  # fmt: skip
    boto3.client("s3").put_object(
        Bucket=OUTPUTS_BUCKET, Key=f"runs/{RUN_ID}/ledger.json", Body=json.dumps(crashed)
    )

    assert build_supervisor(cloud, tmp_path).run() == 0

    ledger = cloud.ledger()
    assert cloud.statuses() == ["resumed", "completed"]
    assert [(a["endedAt"] is not None, a["exitCode"]) for a in ledger["attempts"]] == [
        (True, None),
        (True, 0),
    ]
    assert ledger["startedAt"] == boot and ledger["status"] == "completed"


def test_the_first_start_pins_the_image_tag_to_its_digest(cloud, fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "complete")
    supervisor = build_supervisor(cloud, tmp_path)
    given: list = []
    supervisor.make_launcher = lambda settings, image_uri: (
        given.append(image_uri) or LocalLauncher(FAKE_TRAINER)
    )

    assert supervisor.run() == 0

    pinned = f"{IMAGE_URI.rsplit(':', 1)[0]}@{cloud.image_digest}"
    assert given == [pinned] and cloud.ledger()["imageUri"] == pinned


def test_a_resumed_run_keeps_its_image_after_the_tag_moved(
    spot_cloud, fakes, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "exit-75,complete")
    run_to_end(spot_cloud, tmp_path / "first", monkeypatch, "exit-75,complete", maxRetries=0)
    first_image = spot_cloud.ledger()["imageUri"]
    moved = push_image(REPOSITORY, "latest", "build-2")  # a new build takes the tag
    boto3.client("autoscaling").update_auto_scaling_group(
        AutoScalingGroupName=spot_cloud.group_name, DesiredCapacity=1
    )
    supervisor = build_supervisor(spot_cloud, tmp_path / "second")
    given: list = []
    supervisor.make_launcher = lambda settings, image_uri: (
        given.append(image_uri) or LocalLauncher(FAKE_TRAINER)
    )

    assert supervisor.run() == 0

    assert moved != spot_cloud.image_digest
    assert given == [first_image] and first_image.endswith(spot_cloud.image_digest)
    assert spot_cloud.ledger()["imageUri"] == first_image


def test_a_tag_the_registry_lacks_fails_the_run_before_any_attempt(
    cloud, fakes, tmp_path, monkeypatch
):
    cloud.put_settings(imageUri=IMAGE_URI.replace(":latest", ":no-such-tag"))

    assert build_supervisor(cloud, tmp_path).run() == 0

    ledger = cloud.ledger()
    assert (ledger["status"], ledger["reason"]) == ("failed", "image-pull-failed")
    assert ledger["attempts"] == [] and ledger["imageUri"] is None
    assert (
        "no image tagged no-such-tag in the repository trainer"
        in (tmp_path / "training.log").read_text()
    )
    assert cloud.group()["DesiredCapacity"] == 0 and cloud.lease()["released"] is True
