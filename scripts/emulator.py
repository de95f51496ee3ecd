"""`make emulator`: moto's AWS emulator, kept running for the README's own commands until stopped.

    .venv/bin/python scripts/emulator.py [--port P]    # make emulator EMULATOR_FLAGS="--port P"

It starts moto's server on 127.0.0.1 with the bridges of testing/cdk_cli_gaps.py (what the CDK
CLI needs and moto lacks; each is explained there), bootstraps CDK into it with the real CLI, and
prints the shell lines after which the README's `npx cdk deploy TrainingStack [-c ...]`,
`npx cdk destroy TrainingStack`, `npx tuning-lab ...` and the AWS CLI reach the emulator as they
are written. Nothing trains in it: the group's instance is a record in moto (`make demo` runs the
instance side). IAM is not enforced. Ctrl-C or SIGTERM stops it, and with it everything
deployed into it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from testing import cdk_cli_gaps  # noqa: E402
from testing.emulated_stack import (  # noqa: E402
    ACCOUNT,
    CDK,
    REGION,
    EmulatorError,
    check_port_free,
    run_in_own_group,
)
from testing.moto_server import MotoServer, SkippedTypes  # noqa: E402

# A profile would win over the keys below in the AWS SDK for JavaScript v3 (the CDK CLI's, the
# operator CLI's); a session token would be sent with them.
UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN")
CDK_ERROR_LINES = 20

# moto warns twice for every resource its CloudFormation skips, on every deploy; said once here.
warnings.filterwarnings("ignore", message="Tried to parse", category=UserWarning)
warnings.filterwarnings("ignore", message=r"Exception\(DependencyViolationError\)")


def client_env(url: str) -> dict[str, str]:
    """What the printed `export` line sets: the endpoint, moto's region and dummy keys, and no
    shared config or credentials file, so nothing of a real account is read."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def shell_lines(env: dict[str, str]) -> list[str]:
    return [
        f"unset {' '.join(UNSET)}",
        "export " + " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items()),
    ]


def bootstrap(env: dict[str, str]) -> None:
    user_env = {k: v for k, v in os.environ.items() if k not in UNSET}
    result = run_in_own_group(
        [str(CDK), "bootstrap", f"aws://{ACCOUNT}/{REGION}", "--no-notices"],
        env={**user_env, **env},
    )
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-CDK_ERROR_LINES:]
        raise EmulatorError("cdk bootstrap failed against the emulator:\n" + "\n".join(tail))


def usage(url: str, env: dict[str, str]) -> list[str]:
    aws = Path(sys.executable).parent / "aws"
    aws_shown = os.path.relpath(aws, ROOT) if aws.is_relative_to(ROOT) else str(aws)
    return [
        f"moto's AWS emulator listens on {url} (account {ACCOUNT}, {REGION}); CDK is bootstrapped.",
        "In another terminal, in this repository:",
        "",
        *(f"  {line}" for line in shell_lines(env)),
        "",
        "Then the README's commands work against the emulator as written, for example:",
        "  npx cdk deploy TrainingStack",
        "  npx cdk deploy TrainingStack -c createInstance=true "
        "-c runConfig=configs/tiny-llama-lora.yaml",
        "  npx tuning-lab doctor",
        f"  {aws_shown} cloudformation describe-stacks --stack-name TrainingStack",
        "  npx cdk destroy TrainingStack",
        "Nothing trains here (`make demo` runs the instance side); IAM is not enforced.",
        "Ctrl-C or SIGTERM stops the emulator; what was deployed into it is gone.",
    ]


def _stop_on_signals() -> None:
    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/emulator.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='Through make: make emulator EMULATOR_FLAGS="--port 5000"',
    )
    parser.add_argument(
        "--port", type=int, default=0, help="moto's port on 127.0.0.1 (default: a free one)"
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be from 0 (a free port) to 65535; got {args.port}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    _stop_on_signals()

    def out(line: str) -> None:
        print(line, flush=True)

    moto = None
    try:
        if not CDK.exists():
            raise EmulatorError(
                f"the CDK CLI is not installed ({CDK.relative_to(ROOT)} is missing): run "
                "`make emulator` (it installs first), or `make install`."
            )
        check_port_free(args.port)
        cdk_cli_gaps.install()
        skipped = SkippedTypes(
            announce=lambda kind: out(
                f"(moto does not emulate {kind}; its CloudFormation skips it)"
            )
        )
        with skipped.installed():
            moto = MotoServer(port=args.port).start()
            env = client_env(moto.url)
            out(f"moto listens on {moto.url}; bootstrapping CDK into it (about 20 s)...")
            bootstrap(env)
            out("")
            for line in usage(moto.url, env):
                out(line)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        stopped = "\nemulator stopped; nothing deployed into it remains."
        code = 0
    except EmulatorError as error:
        stopped = f"emulator failed: {error}"
        code = 1
    finally:
        if moto is not None:
            moto.stop()
    out(stopped)
    return code


if __name__ == "__main__":
    sys.exit(main())
