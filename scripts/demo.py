"""`make demo`: one whole tuning-lab run on an emulated AWS, without an AWS account or a GPU.

    make demo                          # .venv/bin/python scripts/demo.py
    make demo-spot                     # ... --spot-interrupt
    .venv/bin/python scripts/demo.py [--steps N] [--spot-interrupt] [--keep-emulator] [--port P]

1. `make` installs what it needs first (npm packages; .venv with the trainer, CPU PyTorch, moto).
2. moto's server starts on a free loopback port; CDK is bootstrapped into it. `npx tuning-lab
   doctor` checks the account as README step 1 does: the emulated account is a new one, with 0
   vCPUs of G/VT spot quota, and the demo runs the quota increase doctor prints (the emulated
   Service Quotas approves it at once). Then
   `cdk deploy TrainingStack -c createInstance=true -c runConfig=configs/tiny-llama-lora.yaml`
   deploys the stack (testing/emulated_stack.py bridges the emulator's gaps).
3. datasets/sample goes to the data bucket and a trainer image to the repository (as the image
   workflow pushes it); then IAM is enforced: every AWS call from here on is checked against the
   policies of the stack's own roles. The instance side runs exactly as on the instance: the
   host supervisor (`python -m tuning_runtime run`) reads the run settings from the
   deployed stack's SSM parameter and finds its Auto Scaling group through IMDSv2 (the fake IMDS
   answers as the instance the group launched, and hands it the instance role's credentials),
   takes the run's lease, pins the image to its digest, and its local launcher runs the real
   trainer CLI (`python -m tuning_trainer`) as a process instead of the container, with the
   trainer role's credentials only. `shutdown -h now` is
   replaced by a recording fake.
4. The end state: the ledger, final/ and checkpoints/ in the outputs bucket, the SNS messages the
   run sent (read back from an SQS queue subscribed to the stack's topic), the group's capacity,
   and demo-output/loss-curve.png drawn from the published final/trainer_state.json; then what
   the operator's command line shows of it (`npx tuning-lab runs`, `status`, `messages`, `logs`,
   `pull` into demo-output/model/, checked against the manifest, `cost` and `sweep`). Each
   instance's logs are copied to demo-output/logs/<instance-id>/ under the names they have on
   the instance and in S3 (training.log, tuning-supervisor.log; docs/runbook.md).
5. `cdk destroy`, then the emulator stops. Nothing outlives the demo, on Ctrl-C, SIGTERM or
   failure either (with --keep-emulator: at the first Ctrl-C or SIGTERM).

--spot-interrupt: the fake IMDS serves a spot notice midway; the trainer publishes a checkpoint
and exits 75 (ledger `interrupted`); EC2 reclaims the instance, the group launches a replacement,
and a second supervisor on it resumes from the checkpoint to completion.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "runtime")]

try:
    import boto3  # noqa: F401  (the first import that fails outside the venv)
    import yaml
    from tuning_runtime import contract

    from testing.emulated_instance import EmulatedInstance
    from testing.emulated_stack import (
        STACK,
        CdkError,
        Deployment,
        EmulatedAws,
        EmulatorError,
    )
    from testing.moto_server import SkippedTypes
    from testing.sns_inbox import SnsInbox
except ImportError as missing:
    sys.exit(
        f"demo: the Python package '{missing.name}' is missing; the demo runs in the project's "
        "venv. Run `make demo` (it installs .venv first), or `make install` and then "
        ".venv/bin/python scripts/demo.py."
    )

DEFAULT_CONFIG = "configs/tiny-llama-lora.yaml"
DATASET_DIR = ROOT / "datasets" / "sample"
DATASET_PREFIX = "datasets/sample"  # the config's data.train/eval, relative to s3://<DataBucket>/
OUTPUT_DIR = ROOT / "demo-output"
MIN_SPOT_STEPS = 20  # the notice (polled every second) must land before the run ends
RUN_TIMEOUT_SECONDS = 900
CDK_ERROR_LINES = 40  # of the CDK CLI's output when it fails
PLACEHOLDER_SPOT_USD_PER_HOUR = 0.001  # below any real GPU spot price
LOGS_DIR = "logs"  # demo-output/logs/<instance-id>/, as runs/<run-id>/logs/<instance-id>/ in S3
QUOTA_FIX = re.compile(
    r"^\s+fix: (aws service-quotas request-service-quota-increase .*?)(\s{2,}\(.*)?$"
)
TRAINER_LINE = re.compile(r"^\S+ \S+ (INFO|WARNING|ERROR) tuning_trainer\.\w+: (.*)$")
SUPERVISOR_LINE = re.compile(r"^\[tuning-supervisor \S+\] (.*)$")
RESUMED_FROM = re.compile(r"resuming from \S+/checkpoints/step-(\d+)")

# moto warns for every resource type its CloudFormation skips (alarms, budgets, policies...):
# the deploy test and testing/emulated_stack.py explain them; the demo's reader needs none.
warnings.filterwarnings("ignore", message="Tried to parse", category=UserWarning)
warnings.filterwarnings("ignore", message=r"Exception\(DependencyViolationError\)")


class DemoError(RuntimeError):
    """A step failed; the message says what happened and what to do."""


@dataclass
class Options:
    steps: int | None = None  # None: the config's own max_steps
    spot_interrupt: bool = False
    keep_emulator: bool = False
    port: int = 0
    output_dir: Path = OUTPUT_DIR


@dataclass
class Hooks:
    """Seams for the reduced-demo test: called with the live deployment."""

    deployed: Callable[[Deployment], None] = lambda deployment: None
    before_destroy: Callable[[Deployment], None] = lambda deployment: None


@dataclass
class DemoResult:
    run_id: str = ""
    ledger: dict = field(default_factory=dict)
    final_keys: list[str] = field(default_factory=list)
    checkpoint_keys: list[str] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    desired_capacity: int | None = None
    shutdown_requests: list[dict] = field(default_factory=list)
    loss_curve: Path | None = None
    operator_exit_codes: dict = field(default_factory=dict)  # tuning-lab command -> exit code
    doctor_output: str = ""
    quota_raised: bool = False
    stack_status_after_destroy: str | None = "not destroyed"
    phase_seconds: list[tuple[str, float]] = field(default_factory=list)


# -- output --------------------------------------------------------------------------------------


class Phases:
    """Prints a heading per phase and records how long each took."""

    def __init__(self, out: Callable[[str], None], seconds: list[tuple[str, float]]) -> None:
        self.out = out
        self.seconds = seconds
        self.current = ""

    @contextlib.contextmanager
    def __call__(self, title: str) -> Iterator[None]:
        self.current = title
        self.out(f"\n== {title}")
        started = time.monotonic()
        yield
        self.seconds.append((title, time.monotonic() - started))


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


# -- the run config ------------------------------------------------------------------------------


def run_config_path(steps: int | None, workdir: Path) -> str:
    """configs/tiny-llama-lora.yaml, or a copy with ``steps`` optimizer steps (checkpoints and
    evaluations every third of the run, so the listing still shows checkpoints)."""
    if steps is None:
        return DEFAULT_CONFIG
    config = yaml.safe_load((ROOT / DEFAULT_CONFIG).read_text())
    every = max(1, round(steps / 3))
    training = config["training"]
    training.update(
        max_steps=steps,
        save_steps=every,
        eval_steps=every,
        logging_steps=max(1, min(training["logging_steps"], steps // 6)),
    )
    path = workdir / f"tiny-llama-lora-{steps}-steps.yaml"
    header = f"# {DEFAULT_CONFIG} with max_steps={steps} (scripts/demo.py --steps {steps})\n"
    path.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return str(path)


# -- the instance side ---------------------------------------------------------------------------


def show_progress(instance: EmulatedInstance, out: Callable[[str], None]) -> None:
    for line in instance.new_log_lines():
        said = SUPERVISOR_LINE.match(line)
        if said:
            out(f"  supervisor | {said.group(1)}")
            continue
        trained = TRAINER_LINE.match(line)
        if trained and not trained.group(2).startswith("resolved run config"):
            level = "" if trained.group(1) == "INFO" else f"{trained.group(1)}: "
            out(f"  trainer    | {level}{trained.group(2)}")


def supervise(
    instance: EmulatedInstance,
    out: Callable[[str], None],
    interrupt_at_step: int | None = None,
) -> None:
    """Follow the instance's run to the supervisor's exit; serve a spot notice at a step."""
    assert instance.process is not None
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    notice_served = False
    while instance.process.poll() is None:
        show_progress(instance, out)
        if (
            interrupt_at_step
            and not notice_served
            and instance.progress_step() >= interrupt_at_step
        ):
            instance.imds.interrupt()
            notice_served = True
            out(f"  demo       | step {instance.progress_step()}: the fake IMDS now serves a spot "
                "interruption notice (terminate in 2 minutes)")  # fmt: skip
        if time.monotonic() > deadline:
            raise DemoError(
                f"instance {instance.number} did not finish within {RUN_TIMEOUT_SECONDS} s; "
                f"its logs are in the demo output folder ({logs_of(instance)})."
            )
        time.sleep(0.3)
    show_progress(instance, out)
    code = instance.process.returncode
    ledger = RunOutputs(instance.deployment, instance.deployment.outputs["RunId"]).ledger()
    out(
        f"instance {instance.number}: the supervisor exited {code}; ledger: {ledger.get('status')}"
        f" ({ledger.get('reason')}), last step {ledger.get('lastStep')}"
    )
    if code != 0:
        raise DemoError(
            f"the host supervisor exited {code}; see {logs_of(instance)} in the demo output folder."
        )


def logs_of(instance: EmulatedInstance) -> str:
    """Where the demo copies an instance's logs, relative to the demo output folder."""
    return f"{LOGS_DIR}/{instance.identity.instance_id}/{{training,tuning-supervisor}}.log"


def copy_logs(instance: EmulatedInstance, output_dir: Path) -> None:
    """The instance's logs, named as on the instance and in S3 (docs/runbook.md)."""
    target = output_dir / LOGS_DIR / instance.identity.instance_id
    for log in (instance.training_log, instance.supervisor_log):
        if log.exists():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(log, target / log.name)


# -- reading the end state -----------------------------------------------------------------------


@dataclass
class RunOutputs:
    deployment: Deployment
    run_id: str

    @property
    def bucket(self) -> str:
        return self.deployment.outputs["OutputsBucketName"]

    @property
    def prefix(self) -> str:
        return f"runs/{self.run_id}/"

    def objects(self, under: str) -> list[dict]:
        listed = self.deployment.client("s3").list_objects_v2(
            Bucket=self.bucket, Prefix=self.prefix + under
        )
        return sorted(listed.get("Contents", []), key=lambda item: item["Key"])

    def read_json(self, key: str) -> dict | None:
        try:
            body = self.deployment.client("s3").get_object(
                Bucket=self.bucket, Key=self.prefix + key
            )
        except self.deployment.client("s3").exceptions.NoSuchKey:
            return None
        return json.loads(body["Body"].read())

    def ledger(self) -> dict:
        return self.read_json(contract.LEDGER_NAME) or {}


def plot_loss_curve(state: dict, target: Path, title: str, resumed_at: int | None) -> str:
    """The published trainer_state.json's log history as a PNG; returns a one-line summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = state.get("log_history", [])
    train = [(e["step"], e["loss"]) for e in history if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in history if "eval_loss" in e]
    if not train:
        raise DemoError("final/trainer_state.json has no training loss to plot.")
    figure, axes = plt.subplots(figsize=(7, 4), dpi=110)
    axes.plot(*zip(*train, strict=True), marker="o", markersize=3, label="training loss")
    if evals:
        axes.plot(*zip(*evals, strict=True), marker="s", linestyle="--", label="eval loss")
    if resumed_at is not None:
        axes.axvline(
            resumed_at, color="grey", linestyle=":", label=f"spot notice: resumed at {resumed_at}"
        )
    axes.set(xlabel="optimizer step", ylabel="loss", title=title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target)
    plt.close(figure)
    summary = f"training loss {train[0][1]:.2f} -> {train[-1][1]:.2f}"
    if evals:
        summary += f", eval loss {evals[0][1]:.2f} -> {evals[-1][1]:.2f}"
    return summary


def show_ledger(ledger: dict, out: Callable[[str], None]) -> None:
    shown = {k: v for k, v in ledger.items() if k != "lastLogLines" or v}
    for line in json.dumps(shown, indent=2).splitlines():
        out(f"  {line}")
    prices = [
        a["usdPerHour"]
        for a in ledger.get("attempts", [])
        if a.get("market") == "spot" and a.get("usdPerHour") is not None
    ]
    if prices and min(prices) < PLACEHOLDER_SPOT_USD_PER_HOUR:
        out(
            f"  (usdPerHour {min(prices)}: moto's spot price history is a placeholder, hence the "
            "~$0 estimate; on AWS the supervisor records the zone's real spot price)"
        )


def show_listing(run: RunOutputs, folder: str, out: Callable[[str], None]) -> list[str]:
    objects = run.objects(folder)
    out(f"{folder} (s3://{run.bucket}/{run.prefix}{folder})")
    if not objects:
        out("  (empty)")
    if folder == "checkpoints/":
        steps: dict[str, list[dict]] = {}
        for item in objects:
            step = item["Key"][len(run.prefix + folder) :].split("/", 1)[0]
            steps.setdefault(step, []).append(item)
        for step, items in steps.items():
            names = {item["Key"].rsplit("/", 1)[-1] for item in items}
            complete = "manifest.json present" if "manifest.json" in names else "NO manifest"
            size = human_size(sum(item["Size"] for item in items))
            out(f"  {step}/  {len(items)} files, {size}, {complete}")
    else:
        for item in objects:
            name = item["Key"][len(run.prefix + folder) :]
            out(f"  {name:<32} {human_size(item['Size']):>9}")
    return [item["Key"] for item in objects]


def show_messages(messages: list[dict], out: Callable[[str], None]) -> None:
    out("SNS messages (the alerts topic, read back from an SQS queue subscribed to it)")
    for message in messages:
        out(f"  {message['subject']}    [status={message['status']}]")
    if messages:
        out("  the last one, as an email subscriber reads it:")
        for line in messages[-1]["body"].splitlines():
            out(f"    | {line}")


# -- the demo ------------------------------------------------------------------------------------


def run_demo(
    options: Options,
    out: Callable[[str], None] = print,
    emulator: EmulatedAws | None = None,
    hooks: Hooks | None = None,
) -> DemoResult:
    """Phases 2 to 5 of the module docstring. With ``emulator`` given (already started and
    bootstrapped), the caller owns it and it is left running."""
    hooks = hooks or Hooks()
    result = DemoResult()
    phases = Phases(out, result.phase_seconds)
    own_emulator = emulator is None
    instances: list[EmulatedInstance] = []
    workdir = Path(tempfile.mkdtemp(prefix="tuning-lab-demo-"))
    output_dir = options.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(output_dir / LOGS_DIR, ignore_errors=True)  # an earlier demo's instances
    try:
        if own_emulator:
            with phases("emulator: moto's server on 127.0.0.1, cdk bootstrap"):
                emulator = EmulatedAws(port=options.port)
                with SkippedTypes().installed():
                    emulator.start()
                out(f"moto listens on {emulator.url}; CDK bootstrapped (aws://123456789012/"
                    f"{emulator.region})")  # fmt: skip

        config = run_config_path(options.steps, workdir)
        with phases("doctor: npx tuning-lab doctor, before anything is deployed"):
            check_account(emulator, config, result, out)

        context = {"createInstance": "true", "runConfig": config}
        with phases(f"deploy: cdk deploy {STACK} -c createInstance=true -c runConfig={config}"):
            with SkippedTypes().installed() as skipped:
                deployment = emulator.deploy(context, workdir / "cdk")
            out(
                "deployed; moto's CloudFormation does not emulate "
                f"{', '.join(sorted(skipped.types)) or 'nothing'} (the jest tests and cdk-nag "
                "check those in the template)"
            )
            run = RunOutputs(deployment, deployment.outputs["RunId"])
            result.run_id = run.run_id
            inbox = SnsInbox.subscribe(
                deployment.client("sns"),
                deployment.client("sqs"),
                deployment.outputs["AlertsTopicArn"],
                "tuning-lab-demo-inbox",
            )
            for key in ("RunId", "GpuGroupName", "DataBucketName", "OutputsBucketName",
                        "AlertsTopicArn"):  # fmt: skip
                out(f"  {key:<18} {deployment.outputs[key]}")
            hooks.deployed(deployment)

        with phases("run: the instance side, as the instance runs it"):
            data_bucket = deployment.outputs["DataBucketName"]
            for name in ("train.jsonl", "eval.jsonl"):
                deployment.client("s3").upload_file(
                    str(DATASET_DIR / name), data_bucket, f"{DATASET_PREFIX}/{name}"
                )
            out(
                f"uploaded datasets/sample/{{train,eval}}.jsonl to s3://{data_bucket}/{DATASET_PREFIX}/"
            )
            digest = deployment.push_image()
            repository = deployment.outputs["RepositoryUri"]
            out(f"pushed a trainer image to {repository}:latest ({digest})")
            emulator.enforce_iam()
            out(
                "IAM enforced from here on: the supervisor acts as the stack's instance role, the "
                "trainer as its trainer role"
            )
            max_steps = int(deployment_run_config(deployment)["training"]["max_steps"])
            interrupt_at = max_steps // 2 if options.spot_interrupt else None
            resumed_at = run_instances(deployment, run, instances, workdir, out, interrupt_at)

        with phases("results: the end state, read back from the emulated AWS"):
            show_end_state(run, inbox, instances, resumed_at, output_dir, result, out)

        with phases("operator: npx tuning-lab runs, status, messages, logs, pull, cost, sweep"):
            show_operator_view(emulator, run, output_dir, result, out)

        hooks.before_destroy(deployment)
        if options.keep_emulator:
            wait_while_kept(emulator, deployment, run, out)

        with phases(f"destroy: cdk destroy {STACK}, stop the emulator"):
            inbox.delete()
            with SkippedTypes().installed():
                deployment.destroy()
            result.stack_status_after_destroy = emulator.stack_status()
            kept = {b["Name"] for b in deployment.client("s3").list_buckets()["Buckets"]}
            out(f"stack {STACK}: {result.stack_status_after_destroy or 'deleted'}; retained "
                f"by design: {sorted(kept & {run.bucket, data_bucket})}")  # fmt: skip
            if own_emulator:
                emulator.stop()
                out("emulator stopped")
        check_end_state(result, run.run_id)
        return result
    except Exception:
        out(f"\n(the demo stopped during the phase '{phases.current}')")
        raise
    finally:
        for instance in instances:
            if instance.is_running():
                out(
                    f"stopping instance {instance.number}: its supervisor checkpoints and finalises"
                )
            instance.stop()
            show_progress(instance, out)
            copy_logs(instance, output_dir)
        if own_emulator and emulator is not None:
            emulator.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def show_end_state(
    run: RunOutputs,
    inbox: SnsInbox,
    instances: list[EmulatedInstance],
    resumed_at: int | None,
    output_dir: Path,
    result: DemoResult,
    out: Callable[[str], None],
) -> None:
    """Phase 4: the ledger, final/ and checkpoints/, the messages, the group, the shutdown
    requests and the loss curve, each read back from the emulated AWS into ``result``."""
    deployment = run.deployment
    result.ledger = run.ledger()
    out(f"ledger (s3://{run.bucket}/{run.prefix}{contract.LEDGER_NAME})")
    show_ledger(result.ledger, out)
    (output_dir / "ledger.json").write_text(json.dumps(result.ledger, indent=2) + "\n")
    result.final_keys = show_listing(run, f"{contract.FINAL_DIR}/", out)
    result.checkpoint_keys = show_listing(run, "checkpoints/", out)
    result.messages = inbox.read()
    show_messages(result.messages, out)
    (output_dir / "messages.json").write_text(json.dumps(result.messages, indent=2) + "\n")
    group = deployment.group()
    result.desired_capacity = group["DesiredCapacity"]
    live = [i["InstanceId"] for i in group["Instances"]
            if i["LifecycleState"] not in ("Terminated", "Terminating")]  # fmt: skip
    out(f"Auto Scaling group {group['AutoScalingGroupName']}: desired capacity "
        f"{result.desired_capacity}, instances in it: {live or 'none'}")  # fmt: skip
    for instance in instances:
        requests = instance.shutdown_requests()
        result.shutdown_requests += requests
        asked = ", ".join(" ".join(["shutdown", *r["args"]]) for r in requests)
        out(f"instance {instance.number} ({instance.identity.instance_id}): "
            f"{asked or 'NO shutdown requested'}")  # fmt: skip
    state = run.read_json(f"{contract.FINAL_DIR}/trainer_state.json")
    if state is not None:
        result.loss_curve = output_dir / "loss-curve.png"
        summary = plot_loss_curve(
            state, result.loss_curve, f"tuning-lab demo: {run.run_id}", resumed_at
        )
        out(f"loss curve: {display_path(result.loss_curve)} ({summary})")
    out(f"logs, ledger and messages: {display_path(output_dir)}/")


def show_operator_view(
    emulator: EmulatedAws,
    run: RunOutputs,
    output_dir: Path,
    result: DemoResult,
    out: Callable[[str], None],
) -> None:
    """Phase 4b: the run as the operator's command line shows it (README, step 6 and 7), with
    the emulator's environment in place of an AWS profile."""
    model_dir = output_dir / "model"
    for argv in (
        ["runs"],
        ["status", run.run_id],
        ["messages", run.run_id, "--brief"],
        ["logs", run.run_id, "--tail", "5"],
        ["pull", run.run_id, str(model_dir)],
        ["cost"],
        ["sweep"],
    ):
        done = tuning_lab(emulator, argv, out, shown={str(model_dir): display_path(model_dir)})
        result.operator_exit_codes[argv[0]] = done.returncode


def tuning_lab(
    emulator: EmulatedAws,
    argv: list[str],
    out: Callable[[str], None],
    shown: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """`npx tuning-lab <argv>` with the emulator's environment in place of an AWS profile; its
    output printed under the command (``shown`` rewrites arguments for display)."""
    done = subprocess.run(
        ["node", str(ROOT / "cli" / "tuning-lab.js"), *argv],
        cwd=ROOT, env={**os.environ, **emulator.sdk_env()}, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    out("$ npx tuning-lab " + " ".join((shown or {}).get(a, a) for a in argv))
    for line in (done.stdout + done.stderr).rstrip("\n").splitlines():
        out(f"  {line}")
    return done


def check_account(
    emulator: EmulatedAws, config: str, result: DemoResult, out: Callable[[str], None]
) -> None:
    """Phase 2b: `doctor` as README step 1 runs it, then the quota increase it asks for."""
    done = tuning_lab(emulator, ["doctor", "--run-config", config], out)
    result.doctor_output = done.stdout
    if done.returncode not in (0, 1):
        raise DemoError(f"npx tuning-lab doctor exited {done.returncode}: {done.stderr.strip()}")
    if "FAIL  AMI" in done.stdout:
        out(
            "(the AMI FAIL is the emulator's: moto publishes no /aws/service/ parameters, so the "
            "emulated deploy maps that one; testing/emulated_stack.py)"
        )
    fixes = [found.group(1) for found in map(QUOTA_FIX.match, done.stdout.splitlines()) if found]
    for fix in fixes:
        aws = str(Path(sys.executable).parent / "aws")
        raised = subprocess.run(
            [aws, *shlex.split(fix)[1:], "--query", "RequestedQuota.Status", "--output", "text"],
            env={**os.environ, **emulator.sdk_env()}, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        out(f"$ {fix}")
        out(f"  {(raised.stdout or raised.stderr).strip()}  (the emulator approves at once; on "
            "AWS allow hours to days)")  # fmt: skip
        if raised.returncode != 0:
            raise DemoError(f"the quota increase doctor printed failed: {raised.stderr.strip()}")
        result.quota_raised = True


def display_path(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def deployment_run_config(deployment: Deployment) -> dict:
    """The run config as the deployed stack hands it to the instance (the SSM parameter)."""
    name = contract.settings_parameter_name(STACK)
    value = deployment.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
    return json.loads(value)["runConfig"]


def run_instances(
    deployment: Deployment,
    run: RunOutputs,
    instances: list[EmulatedInstance],
    workdir: Path,
    out: Callable[[str], None],
    interrupt_at: int | None,
) -> int | None:
    """Boot the instance the group launched; after a spot interruption, its replacement.
    Returns the step the replacement resumed from (None without an interruption)."""
    first = boot_instance(deployment, instances, workdir, out)
    supervise(first, out, interrupt_at)
    ledger = run.ledger()
    if ledger.get("status") != contract.INTERRUPTED:
        if interrupt_at is not None:
            out("the run finished before the notice took effect; nothing to resume")
        return None

    out(f"EC2 reclaims {first.identity.instance_id}; the group (desired capacity "
        f"{deployment.group()['DesiredCapacity']}) launches a replacement")  # fmt: skip
    first.reclaim()
    second = boot_instance(deployment, instances, workdir, out)
    supervise(second, out)
    resumed = RESUMED_FROM.search(second.training_log.read_text())
    return int(resumed.group(1)) if resumed else None


def boot_instance(
    deployment: Deployment,
    instances: list[EmulatedInstance],
    workdir: Path,
    out: Callable[[str], None],
) -> EmulatedInstance:
    number = len(instances) + 1
    instance = EmulatedInstance.launch(deployment, workdir / f"instance-{number}", number)
    instances.append(instance)
    identity = instance.identity
    out(f"instance {number}: {identity.instance_id} ({identity.instance_type}, "
        f"{identity.availability_zone}, {identity.life_cycle}); fake IMDSv2 at "
        f"{instance.imds.url}")  # fmt: skip
    instance.boot()
    return instance


def wait_while_kept(
    emulator: EmulatedAws, deployment: Deployment, run: RunOutputs, out: Callable[[str], None]
) -> None:
    env = emulator.sdk_env()
    aws = display_path(Path(sys.executable).parent / "aws")
    out("\n== the emulator keeps running, with the stack deployed. In another terminal:")
    out("  export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()))
    out(f"  {aws} s3 ls --recursive s3://{run.bucket}/{run.prefix}")
    out(f"  {aws} s3 cp s3://{run.bucket}/{run.prefix}{contract.LEDGER_NAME} -")
    out(f"  {aws} autoscaling describe-auto-scaling-groups --auto-scaling-group-names "
        f"{deployment.outputs['GpuGroupName']}")  # fmt: skip
    out(f"  {aws} cloudformation describe-stacks --stack-name {STACK}")
    out("  npx tuning-lab runs        # and status, logs, pull, messages: the operator commands")
    out(
        "To practise the README's own `npx cdk deploy` and `npx cdk destroy`, use `make "
        'emulator` instead: it bridges what the CDK CLI needs from moto (README.md, "Practise '
        "the AWS path on the emulator\"); this kept emulator is the demo's."
    )
    try:
        out(
            f"Press Ctrl-C here, or run `kill {os.getpid()}` (SIGTERM) elsewhere, to destroy the "
            "stack and stop the emulator."
        )
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:  # SIGTERM and SIGHUP arrive as one too (_stop_on_sigterm)
        out("")


def check_end_state(result: DemoResult, run_id: str) -> None:
    ledger = result.ledger
    problems = []
    if ledger.get("status") != contract.COMPLETED:
        problems.append(f"the ledger says {ledger.get('status')} ({ledger.get('reason')})")
    if not any(key.endswith(f"/final/{contract.MANIFEST_NAME}") for key in result.final_keys):
        problems.append("final/ has no manifest.json")
    if result.desired_capacity != 0:
        problems.append(f"the group's desired capacity is {result.desired_capacity}, not 0")
    failed = {name: code for name, code in result.operator_exit_codes.items() if code != 0}
    if failed:
        problems.append(f"npx tuning-lab exited non-zero: {failed}")
    if problems:
        raise DemoError(
            f"run {run_id} did not end as it should: {'; '.join(problems)}. The training and "
            "supervisor logs are in the demo output folder; docs/runbook.md explains each status."
        )


def print_timings(seconds: list[tuple[str, float]], out: Callable[[str], None]) -> None:
    out("\n== time per phase")
    for title, spent in seconds:
        out(f"  {spent:6.1f} s  {title.split(':')[0]}")
    out(f"  {sum(s for _, s in seconds):6.1f} s  total (without `make install`)")


def _parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="scripts/demo.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='Through make: make demo DEMO_FLAGS="--keep-emulator --steps 120"',
    )
    parser.add_argument(
        "--steps", type=int, help="optimizer steps of the run (default: the config's 60)"
    )
    parser.add_argument(
        "--spot-interrupt",
        action="store_true",
        help="serve a spot notice midway; a replacement instance resumes the run",
    )
    parser.add_argument(
        "--keep-emulator",
        action="store_true",
        help="at the end, keep moto (and the stack) running until Ctrl-C or SIGTERM and print "
        "how to reach it",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="moto's port on 127.0.0.1 (default: a free one)"
    )
    parser.add_argument(
        "--output-dir", type=Path, default=OUTPUT_DIR, help="where the PNG and logs go"
    )
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 2:
        parser.error(f"--steps must be an integer of at least 2; got {args.steps}")
    if args.spot_interrupt and args.steps is not None and args.steps < MIN_SPOT_STEPS:
        parser.error(
            f"--steps must be at least {MIN_SPOT_STEPS} with --spot-interrupt, so the notice "
            f"arrives before the run ends; got {args.steps}"
        )
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be from 0 (a free port) to 65535; got {args.port}")
    return Options(args.steps, args.spot_interrupt, args.keep_emulator, args.port, args.output_dir)


def _check_installed() -> None:
    missing = [
        what
        for what, found in (
            ("the trainer package (tuning_trainer)", importlib.util.find_spec("tuning_trainer")),
            ("the AWS CLI (awscli)", shutil.which("aws", path=str(Path(sys.executable).parent))),
        )
        if not found
    ]
    if missing:
        raise DemoError(
            f"{' and '.join(missing)} {'are' if len(missing) > 1 else 'is'} not installed "
            f"beside {sys.executable}: run "
            "`make demo` (it installs .venv first), or `make install` and then "
            ".venv/bin/python scripts/demo.py."
        )


def _stop_on_sigterm() -> None:
    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)


def main(argv: list[str] | None = None) -> int:
    options = _parse_args(argv)
    _stop_on_sigterm()

    def out(line: str) -> None:
        print(line, flush=True)

    started = time.monotonic()
    result = DemoResult()
    try:
        _check_installed()
        result = run_demo(options, out)
    except KeyboardInterrupt:
        out("\ndemo interrupted: the instance side and the emulator are stopped; nothing runs.")
        return 130
    except (DemoError, EmulatorError) as error:
        out(f"\ndemo failed: {error}")
        return 1
    except CdkError as error:
        lines = str(error).splitlines()
        out("\ndemo failed: " + "\n".join([lines[0], *lines[1:][-CDK_ERROR_LINES:]]))
        out(
            "The CDK CLI's own message is above; `npx cdk synth TrainingStack -c "
            "createInstance=true -c runConfig=configs/tiny-llama-lora.yaml` shows synth errors "
            "without the emulator, and `make test-deploy` deploys the same stack in a test."
        )
        return 1
    print_timings(result.phase_seconds, out)
    out(f"demo finished in {time.monotonic() - started:.0f} s: run {result.run_id} completed on "
        "an emulated AWS; nothing is left running.")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
