"""The trainer holds no credential of the host's (docs/contracts.md section 3b): it gets the
trainer role's short-lived keys through a credential_process file the supervisor keeps fresh,
no IMDS, and no host credential variable; with those keys it may write its run, not the safety
controls' objects (the IAM-enforced test in test/deploy checks the stack's real policies)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

import boto3
from harness import FAKES, REGION, Background, build_supervisor, run_local_trainer

from tuning_runtime import contract
from tuning_runtime.aws import Boto3Aws
from tuning_runtime.credentials import REFRESH_SECONDS, TrainerCredentials
from tuning_runtime.launchers import (
    HOST_CREDENTIAL_VARIABLES,
    DockerLauncher,
    LocalLauncher,
    TrainerJob,
    TrainingLog,
)

# The environment is long: written to a file (a log line would be clipped at 1000 characters).
SHOW_ENV = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[-1] + '.env', 'w'))"


def caller_of(run_dir) -> str:
    """Whom the keys the supervisor wrote into ``run_dir`` belong to (STS GetCallerIdentity)."""
    written = json.loads((run_dir / contract.CREDENTIALS_NAME).read_text())
    return boto3.client(
        "sts",
        aws_access_key_id=written["AccessKeyId"],
        aws_secret_access_key=written["SecretAccessKey"],
        aws_session_token=written["SessionToken"],
    ).get_caller_identity()["Arn"]


def run_local(tmp_path, script: str) -> list:
    return run_local_trainer(tmp_path, script, {"LLM_OUTPUT__URI": "s3://o/runs/r"}).last_lines()


def test_the_local_trainer_inherits_no_host_credential(tmp_path, monkeypatch):
    for name in HOST_CREDENTIAL_VARIABLES:
        monkeypatch.setenv(name, "host-secret")

    run_local(tmp_path, SHOW_ENV)
    env = json.loads((tmp_path / "config.yaml.env").read_text())

    assert "host-secret" not in env.values()
    assert env["AWS_CONFIG_FILE"] == f"{tmp_path}/{contract.AWS_CONFIG_NAME}"
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert env[contract.ENV_SPOT_POLLING] == "never"
    config = (tmp_path / contract.AWS_CONFIG_NAME).read_text()
    assert config == f"[default]\ncredential_process = cat {tmp_path}/credentials.json\n"


def test_the_container_gets_the_config_at_its_own_path_and_no_metadata_endpoint(monkeypatch):
    monkeypatch.setenv(contract.ENV_IMDS_ENDPOINT, "http://127.0.0.1:1234")
    launcher = DockerLauncher(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer@sha256:" + "a" * 64,
        REGION, "/logs", None, scratch_dir="/scratch", docker=str(FAKES / "docker.sh"),
    )  # fmt: skip

    argv = launcher.run_argv(TrainerJob("/var/lib/tuning-lab/run", {}, "stream"))

    settings = [argv[i + 1] for i, word in enumerate(argv) if word == "--env"]
    assert "AWS_CONFIG_FILE=/run/tuning-lab/aws-config" in settings
    assert "AWS_EC2_METADATA_DISABLED=true" in settings
    assert f"{contract.ENV_SPOT_POLLING}=never" in settings
    assert not any(s.startswith(f"{contract.ENV_IMDS_ENDPOINT}=") for s in settings)
    assert not any(s.startswith(("AWS_ACCESS_KEY_ID=", "AWS_SECRET")) for s in settings)


def test_botocore_in_the_trainer_reads_the_keys_the_supervisor_wrote(aws_env, tmp_path):
    role = boto3.client("iam").create_role(RoleName="trainer", AssumeRolePolicyDocument="{}")
    credentials = TrainerCredentials(
        Boto3Aws(REGION), role["Role"]["Arn"], "trainer-i-123", str(tmp_path)
    )
    credentials.refresh()
    script = (
        "import boto3; c = boto3.session.Session().get_credentials(); print(c.method, c.access_key)"
    )

    method, access_key = run_local(tmp_path, script)[-1].split()

    written = json.loads((tmp_path / contract.CREDENTIALS_NAME).read_text())
    assert method == "custom-process" and access_key == written["AccessKeyId"]
    assert written["Version"] == 1 and written["Expiration"].endswith("Z")
    assert caller_of(tmp_path).endswith(":assumed-role/trainer/trainer-i-123")


def test_the_keys_are_renewed_long_before_a_chained_session_ends(aws_env, tmp_path):
    role = boto3.client("iam").create_role(RoleName="trainer", AssumeRolePolicyDocument="{}")
    now = [1_800_000_000.0]
    credentials = TrainerCredentials(
        Boto3Aws(REGION), role["Role"]["Arn"], "trainer-s", str(tmp_path), clock=lambda: now[0]
    )
    credentials.refresh()
    first = (tmp_path / contract.CREDENTIALS_NAME).read_text()

    now[0] += REFRESH_SECONDS - 1
    credentials.refresh_if_due()
    assert (tmp_path / contract.CREDENTIALS_NAME).read_text() == first
    now[0] += 1
    credentials.refresh_if_due()

    assert (tmp_path / contract.CREDENTIALS_NAME).read_text() != first
    assert REFRESH_SECONDS <= 3600 - 40 * 60  # botocore refreshes 15 min before; margin kept
    # the container's user (not the file's owner) reads every renewal, not only the first
    assert stat.S_IMODE((tmp_path / contract.CREDENTIALS_NAME).stat().st_mode) == 0o644


def test_the_supervisor_hands_the_trainer_the_trainer_roles_session(
    cloud, fakes, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_TRAINER_PLAN", "train-40")
    supervisor = Background(build_supervisor(cloud, tmp_path))
    assert supervisor.join() == 0

    role_name = cloud.trainer_role_arn.rsplit("/", 1)[1]
    assert f":assumed-role/{role_name}/trainer-{cloud.instance_id}" in caller_of(tmp_path / "run")
    assert cloud.ledger()["status"] == "completed"  # the fake trainer wrote with those keys


def test_the_aws_config_runs_no_shell(tmp_path):
    # credential_process is split with shell rules but not run by a shell: a path with spaces
    # would break it, and the run folder never has one.
    job = TrainerJob(str(tmp_path), {}, "stream")
    LocalLauncher([sys.executable, "-c", "pass"]).start(job, TrainingLog(str(tmp_path / "t")))
    command = (tmp_path / contract.AWS_CONFIG_NAME).read_text().split(" = ", 1)[1].split()
    assert command == ["cat", f"{tmp_path}/credentials.json"]
    assert subprocess.run(command, capture_output=True).returncode != 0  # not written yet
