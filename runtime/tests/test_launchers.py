"""The trainer launchers: the docker command the instance runs (with a fake docker client), ECR
login and pull retries, and the local launcher the tests and the demo use."""

from __future__ import annotations

import time

import pytest
from harness import FAKES, REGION, run_local_trainer

from tuning_runtime.aws import Boto3Aws
from tuning_runtime.launchers import (
    DockerLauncher,
    PrepareError,
    TrainerJob,
    TrainingLog,
)

IMAGE = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/trainer:v1"
JOB = TrainerJob(
    run_dir="/var/lib/tuning-lab/run",
    env={"LLM_OUTPUT__URI": "s3://out/runs/run-1", "LLM_DATA__ROOT": "s3://data/"},
    log_stream="run-1/i-1/attempt-1",
)


@pytest.fixture
def docker_log(tmp_path, monkeypatch):
    log = tmp_path / "docker.log"
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    return log


def launcher(image: str = IMAGE, aws: object = None) -> tuple:
    said: list = []
    found = DockerLauncher(
        image,
        REGION,
        "/tuning-lab/training",
        aws,
        scratch_dir="/opt/dlami/nvme/tuning-lab",
        docker=str(FAKES / "docker.sh"),
        retry_delays=(0, 0, 0),
        sleep=lambda _: None,
    )
    return found, said


def test_docker_run_has_gpus_stop_timeout_shm_logs_and_the_trainer_contract():
    argv = launcher()[0].run_argv(JOB)

    joined = " ".join(argv)
    assert "--gpus all" in joined and "--stop-timeout 110" in joined
    assert "--sig-proxy=false" in joined and "--name training" in joined
    assert argv[argv.index("--shm-size") + 1].endswith("g")
    assert "--log-driver awslogs" in joined
    assert "--log-opt awslogs-group=/tuning-lab/training" in joined
    assert "--log-opt awslogs-stream=run-1/i-1/attempt-1" in joined
    assert "type=bind,src=/var/lib/tuning-lab/run,dst=/run/tuning-lab,readonly" in joined
    assert "type=bind,src=/var/lib/tuning-lab/run-progress,dst=/run/tuning-progress" in joined
    assert "--cap-drop ALL" in joined and "--security-opt no-new-privileges" in joined
    assert "type=bind,src=/opt/dlami/nvme/tuning-lab,dst=/scratch" in joined
    for setting in (
        "LLM_OUTPUT__URI=s3://out/runs/run-1",
        "LLM_DATA__ROOT=s3://data/",
        "TUNING_PROGRESS_FILE=/run/tuning-progress/progress.json",
        "HF_HOME=/scratch/huggingface",
        "LLM_MODEL__CACHE_DIR=/scratch/models",
        "LLM_OUTPUT__STAGING_DIR=/scratch/staging",
    ):
        assert f"--env {setting}" in joined
    assert argv[-6:] == [
        IMAGE,
        "train",
        "--resume-from-checkpoint",
        "auto",
        "--config",
        "/run/tuning-lab/config.yaml",
    ]


def test_ecr_image_is_pulled_after_logging_in_with_the_registry_token(aws_env, docker_log):
    found, said = launcher(aws=Boto3Aws(REGION))

    found.prepare(said.append)

    calls = docker_log.read_text().splitlines()
    registry = IMAGE.split("/")[0]
    assert calls[0] == f"login --username AWS --password-stdin {registry}"
    assert calls[1].startswith("password-stdin: ") and len(calls[1]) > len("password-stdin: ")
    assert calls[2] == f"pull -q {IMAGE}"


def test_a_public_image_is_pulled_without_login(docker_log):
    found, said = launcher(image="public.ecr.aws/acme/trainer:1")

    found.prepare(said.append)

    assert docker_log.read_text().splitlines()[0] == "pull -q public.ecr.aws/acme/trainer:1"


def test_pull_is_retried_until_it_succeeds(docker_log, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_PULL_FAILURES", "2")
    found, said = launcher(image="public.ecr.aws/acme/trainer:1")

    found.prepare(said.append)

    assert docker_log.read_text().count("pull -q") == 3
    assert "docker pull failed (attempt 2): Error response from daemon" in said[-2]


def test_pull_gives_up_with_the_reason_after_its_retries(docker_log, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_PULL_FAILURES", "99")
    found, said = launcher(image="public.ecr.aws/acme/trainer:1")

    with pytest.raises(PrepareError) as error:
        found.prepare(said.append)

    assert error.value.reason == "image-pull-failed"
    assert "docker pull failed 4 times for public.ecr.aws/acme/trainer:1" in str(error.value)
    assert "toomanyrequests" in error.value.detail[-1]


def test_only_the_writable_folders_are_handed_to_the_images_user(docker_log, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_IMAGE_USER", "10001:10001")
    found, said = launcher(image="public.ecr.aws/acme/trainer:1")
    found.scratch_dir = str(tmp_path / "scratch")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("{}")
    (tmp_path / "run-progress").mkdir()
    # What a trainer could plant in a folder it owns: a link the supervisor must not follow.
    victim = tmp_path / "host-file"
    victim.write_text("host")
    (tmp_path / "run-progress" / "progress.json").symlink_to(victim)
    found.prepare(said.append)

    proc = found.start(TrainerJob(str(run_dir), {}, "stream"), TrainingLog(str(tmp_path / "t.log")))
    proc.popen.wait(timeout=30)

    assert "runs as user '10001:10001'" in said[-1]
    for path in (tmp_path / "run-progress", tmp_path / "scratch"):
        assert (path.stat().st_uid, path.stat().st_gid) == (10001, 10001)
    for path in (run_dir, run_dir / "config.yaml", run_dir / "aws-config", victim):
        assert (path.stat().st_uid, path.stat().st_gid) == (0, 0)  # root's, read-only mounted


def test_docker_run_exit_code_is_the_trainers(docker_log, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_RUN_EXIT", "75")
    found, _ = launcher(image="public.ecr.aws/acme/trainer:1")
    found.scratch_dir = str(tmp_path / "scratch")
    log = TrainingLog(str(tmp_path / "training.log"))

    proc = found.start(TrainerJob(str(tmp_path), {}, "stream"), log)
    while proc.poll() is None:
        time.sleep(0.05)

    assert proc.poll() == 75 and proc.last_lines() == ["fake container ran"]
    assert docker_log.read_text().splitlines()[0] == "rm --force training"


def test_local_launcher_runs_the_trainer_cli_with_the_contract_environment(tmp_path):
    script = (
        "import os, sys; print(sys.argv[1:]); "
        "print(os.environ['TUNING_PROGRESS_FILE'], os.environ['LLM_OUTPUT__URI'])"
    )

    proc = run_local_trainer(tmp_path, script, {"LLM_OUTPUT__URI": "s3://o/runs/r"})

    assert proc.last_lines() == [
        f"['train', '--resume-from-checkpoint', 'auto', '--config', '{tmp_path}/config.yaml']",
        f"{tmp_path}-progress/progress.json s3://o/runs/r",
    ]
    assert "s3://o/runs/r" in (tmp_path / "training.log").read_text()


def test_last_lines_keep_the_newest_50(tmp_path):
    proc = run_local_trainer(tmp_path, "for n in range(120): print(f'line {n}')")

    assert proc.last_lines() == [f"line {n}" for n in range(70, 120)]


def test_training_log_marks_supervisor_lines(tmp_path):
    log = TrainingLog(str(tmp_path / "logs" / "training.log"))

    log.say("starting the trainer")

    line = (tmp_path / "logs" / "training.log").read_text()
    assert line.startswith("[tuning-supervisor ") and line.endswith("] starting the trainer\n")


def test_a_huge_log_line_is_clipped_in_the_tail_kept_for_messages(tmp_path):
    proc = run_local_trainer(tmp_path, "print('y' * 300_000); print('last')")

    first, last = proc.last_lines()
    assert first.endswith("... [clipped]") and len(first) < 1100 and last == "last"
    assert len((tmp_path / "training.log").read_text()) > 300_000  # the log keeps every byte
