"""`make emulator`: the README's own `npx cdk deploy` and `npx cdk destroy`, with nothing but the
environment the emulator prints, against moto's server.

    .venv/bin/python -m pytest -q test/deploy/test_emulator.py      # also: make test-deploy

scripts/emulator.py runs as a user starts it; its printed `unset` and `export` lines are pasted
into a shell that already holds an AWS profile (as a user's would), and the README's commands
run there as written: the first deploy (step 2), a run's deploy (step 5), destroy (step 9). The
only flags added are the CLI's own answers to its prompts (`--require-approval never`,
`--force`). What CloudFormation built is read back through boto3.
"""

from __future__ import annotations

import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import boto3
import pytest

from testing.emulated_stack import ROOT, STACK, kill_group, run_in_own_group

READY_LINE = "Ctrl-C or SIGTERM stops the emulator"
START_TIMEOUT_SECONDS = 180
CDK_TIMEOUT_SECONDS = 300
README_RUN = "-c createInstance=true -c runConfig=configs/tiny-llama-lora.yaml"


@dataclass
class Emulator:
    """scripts/emulator.py running, what it printed, and its shell lines."""

    process: subprocess.Popen
    printed: list[str] = field(default_factory=list)
    lines: queue.Queue = field(default_factory=queue.Queue)

    def read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, text: str, timeout: float) -> None:
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                raise AssertionError("the emulator exited:\n" + "\n".join(self.printed))
            self.printed.append(line)
            if text in line:
                return

    @property
    def shell_lines(self) -> list[str]:
        return [
            line.strip() for line in self.printed if line.strip().startswith(("unset ", "export "))
        ]

    @property
    def exported(self) -> dict[str, str]:
        [export] = [line for line in self.shell_lines if line.startswith("export ")]
        return dict(word.split("=", 1) for word in shlex.split(export)[1:])

    def client(self, service: str):
        env = self.exported
        return boto3.client(
            service,
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name=env["AWS_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )

    def user_shell(self, command: str) -> subprocess.CompletedProcess:
        """``command`` in bash after the printed lines, in the repository, as a user runs it."""
        script = "\n".join([*self.shell_lines, command])
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
        # What a user's shell may hold: a profile would win over the printed keys in the CDK
        # CLI's SDK (the printed unset line removes it), a token would be sent with them.
        env.update(AWS_PROFILE="someones-real-account", AWS_SESSION_TOKEN="not-for-moto")
        return run_in_own_group(
            ["bash", "-euo", "pipefail", "-c", script],
            env=env,
            timeout=CDK_TIMEOUT_SECONDS,
            stderr=subprocess.STDOUT,
        )


def start_emulator(*flags: str) -> Emulator:
    process = subprocess.Popen(
        [sys.executable, "scripts/emulator.py", *flags],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    emulator = Emulator(process)
    threading.Thread(target=emulator.read, daemon=True).start()
    return emulator


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    started = start_emulator()
    try:
        started.wait_for(READY_LINE, START_TIMEOUT_SECONDS)
        yield started
    finally:
        kill_group(started.process)


def stack_outputs(emulator: Emulator) -> dict[str, str]:
    [stack] = emulator.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def deployed(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stdout[-4000:]
    assert f"✅  {STACK}" in done.stdout


def test_the_emulator_prints_the_environment_to_paste(emulator: Emulator) -> None:
    assert emulator.shell_lines[0] == "unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN"
    assert emulator.exported["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert any("npx cdk deploy TrainingStack" in line for line in emulator.printed)


def test_the_readme_first_deploy_creates_the_stack_with_its_outputs(emulator: Emulator) -> None:
    done = emulator.user_shell(f"npx cdk deploy {STACK} --require-approval never")

    deployed(done)
    outputs = stack_outputs(emulator)
    assert {"DataBucketName", "OutputsBucketName", "RepositoryUri", "GpuGroupName"} <= set(outputs)
    assert "RunId" not in outputs


def test_the_readme_run_deploy_updates_the_stack_to_one_instance(emulator: Emulator) -> None:
    done = emulator.user_shell(f"npx cdk deploy {STACK} {README_RUN} --require-approval never")

    deployed(done)
    outputs = stack_outputs(emulator)
    assert outputs["RunId"].startswith("run-")
    [group] = emulator.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[outputs["GpuGroupName"]]
    )["AutoScalingGroups"]
    assert group["DesiredCapacity"] == 1


def test_the_readme_destroy_removes_the_stack_and_its_network(emulator: Emulator) -> None:
    buckets = {stack_outputs(emulator)["DataBucketName"]}

    done = emulator.user_shell(f"npx cdk destroy {STACK} --force")

    assert done.returncode == 0, done.stdout[-4000:]
    live = [
        s["StackName"]
        for s in emulator.client("cloudformation").list_stacks()["StackSummaries"]
        if s["StackStatus"] != "DELETE_COMPLETE"
    ]
    assert live == ["CDKToolkit"]
    vpcs = emulator.client("ec2").describe_vpcs()["Vpcs"]
    assert [v["IsDefault"] for v in vpcs] == [True]
    kept = {b["Name"] for b in emulator.client("s3").list_buckets()["Buckets"]}
    assert buckets <= kept  # data is retained, as on AWS


def test_sigterm_stops_the_emulator(emulator: Emulator) -> None:
    emulator.process.send_signal(signal.SIGTERM)

    code = emulator.process.wait(timeout=30)
    emulator.wait_for("emulator stopped", timeout=10)

    assert code == 0


def test_a_busy_port_stops_the_emulator_with_a_message_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        started = start_emulator("--port", str(port))
        code = started.process.wait(timeout=60)
        started.wait_for("emulator failed", timeout=10)

    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in started.printed[-1]
