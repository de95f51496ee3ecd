"""Command line of the host supervisor.

    python3 -m tuning_runtime run                        # on EC2 (systemd unit): docker launcher
    python3 -m tuning_runtime run --launcher local \\
        --trainer-command "python -m tuning_trainer" \\
        --shutdown-command "/path/to/fake-shutdown"      # tests and the demo
    python3 -m tuning_runtime check-settings FILE        # validate a run-settings document

The run settings come from the SSM parameter named by ``--settings-parameter`` (default: the
environment variable TUNING_RUN_SETTINGS_PARAMETER, which user-data writes) or from a file.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
import threading
import time

from . import contract
from .aws import AwsCli, Boto3Aws
from .host import SHUTDOWN_COMMAND, Host
from .imds import Imds
from .launchers import DockerLauncher, LocalLauncher
from .lease import LeaseTimings
from .settings import RunSettings, SettingsError, fetch_settings_text, parse_settings
from .supervisor import Paths, Supervisor, Timings

STATE_DIR = "/var/lib/tuning-lab"
TRAINING_LOG = "/var/log/training.log"
SUPERVISOR_LOG = "/var/log/tuning-supervisor.log"
INSTANCE_STORE = "/opt/dlami/nvme"  # the DLAMI mounts NVMe instance storage here when present


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m tuning_runtime",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="supervise this instance's run to its end")
    source = run.add_mutually_exclusive_group()
    source.add_argument(
        "--settings-parameter",
        default=os.environ.get("TUNING_RUN_SETTINGS_PARAMETER"),
        help="SSM parameter with the run settings (default: $TUNING_RUN_SETTINGS_PARAMETER)",
    )
    source.add_argument("--settings-file", help="read the run settings from a file instead")
    run.add_argument("--region", default=os.environ.get("AWS_REGION"))
    run.add_argument("--launcher", choices=["docker", "local"], default="docker")
    run.add_argument(
        "--trainer-command",
        default="python3 -m tuning_trainer",
        help="local launcher only: the trainer CLI to run (shell words)",
    )
    run.add_argument("--shutdown-command", default=" ".join(SHUTDOWN_COMMAND))
    run.add_argument("--no-tmux", action="store_true", help="do not start the tmux follower")
    run.add_argument("--state-dir", default=STATE_DIR)
    run.add_argument("--training-log", default=TRAINING_LOG)
    run.add_argument("--supervisor-log", default=SUPERVISOR_LOG)
    run.add_argument("--scratch-dir", help=f"model cache (default: {INSTANCE_STORE} if mounted)")
    run.add_argument(
        "--aws-backend",
        choices=["cli", "boto3"],
        default="cli",
        help="the AWS CLI (default, what the instance has) or boto3",
    )
    run.add_argument(
        "--billing-start",
        choices=["boot", "now"],
        default="boot",
        help="this instance's billing starts at its boot (EC2) or when the supervisor starts",
    )
    defaults = Timings()
    for name in (
        "imds_poll_seconds",
        "sample_seconds",
        "stop_grace_seconds",
        "heartbeat_seconds",
        "stop_poll_seconds",
        "retry_delay_seconds",
    ):
        run.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    for name in ("ttl_seconds", "renew_seconds", "poll_seconds", "max_wait_seconds"):
        run.add_argument(
            f"--lease-{name.replace('_', '-')}", type=float, default=getattr(defaults.lease, name)
        )

    check = commands.add_parser("check-settings", help="validate a run-settings JSON file")
    check.add_argument("file")
    return parser


def _configure_logging(supervisor_log: str | None) -> None:
    handlers: list = [logging.StreamHandler(sys.stderr)]
    if supervisor_log:
        try:
            os.makedirs(os.path.dirname(supervisor_log) or ".", exist_ok=True)
            handlers.append(logging.FileHandler(supervisor_log))
        except OSError as error:
            print(f"no supervisor log file: {error}", file=sys.stderr)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
    )
    logging.Formatter.converter = time.gmtime


def _boot_time() -> float:
    with open("/proc/uptime") as uptime:
        return time.time() - float(uptime.read().split()[0])


def _run(args: argparse.Namespace) -> int:
    _configure_logging(args.supervisor_log)
    region = args.region or Imds().get("/latest/meta-data/placement/region")
    if not region:
        print("no region: set --region or AWS_REGION", file=sys.stderr)
        return 2
    aws = AwsCli(region) if args.aws_backend == "cli" else Boto3Aws(region)
    if args.settings_file:

        def read_settings() -> str:
            with open(args.settings_file) as handle:
                return handle.read()

    elif args.settings_parameter:

        def read_settings() -> str:
            return fetch_settings_text(aws, args.settings_parameter)

    else:
        print("no run settings: set --settings-parameter or --settings-file", file=sys.stderr)
        return 2

    def make_launcher(settings: RunSettings, image_uri: str) -> object:
        if args.launcher == "local":
            return LocalLauncher(shlex.split(args.trainer_command))
        scratch = args.scratch_dir or (
            os.path.join(INSTANCE_STORE, "tuning-lab")
            if os.path.ismount(INSTANCE_STORE)
            else os.path.join(args.state_dir, "scratch")
        )
        return DockerLauncher(image_uri, region, settings.log_group_name, aws, scratch_dir=scratch)

    stop = threading.Event()

    def on_sigterm(signum: int, _frame: object) -> None:
        logging.getLogger(__name__).info("signal %s: the host is stopping us", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)
    timings = Timings(
        imds_poll_seconds=args.imds_poll_seconds,
        sample_seconds=args.sample_seconds,
        stop_grace_seconds=args.stop_grace_seconds,
        heartbeat_seconds=args.heartbeat_seconds,
        stop_poll_seconds=args.stop_poll_seconds,
        retry_delay_seconds=args.retry_delay_seconds,
        lease=LeaseTimings(
            ttl_seconds=args.lease_ttl_seconds,
            renew_seconds=args.lease_renew_seconds,
            poll_seconds=args.lease_poll_seconds,
            max_wait_seconds=args.lease_max_wait_seconds,
        ),
    )
    supervisor = Supervisor(
        aws=aws,
        imds=Imds(),
        make_launcher=make_launcher,
        host=Host(tuple(shlex.split(args.shutdown_command)), tmux=None if args.no_tmux else "tmux"),
        paths=Paths(
            run_dir=os.path.join(args.state_dir, "run"),
            training_log=args.training_log,
            supervisor_log=args.supervisor_log,
        ),
        settings_source=read_settings,
        timings=timings,
        instance_started_at=_boot_time() if args.billing_start == "boot" else None,
        stop_event=stop,
    )
    return supervisor.run()


def main(argv: list | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-settings":
        try:
            with open(args.file) as handle:
                parse_settings(handle.read())
        except (OSError, SettingsError) as error:
            print(error, file=sys.stderr)
            return 1
        print(f"{args.file}: valid run settings (schema {contract.SCHEMA_VERSION})")
        return 0
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
