"""The command line: ``tuning-trainer train|validate|schema`` (also ``python -m tuning_trainer``).

    tuning-trainer validate --config configs/tiny-llama-lora.yaml
    tuning-trainer train --config s3://bucket/configs/run.yaml --set lora.r=32
    tuning-trainer schema > trainer-image/run-config.schema.json

Exit codes (DESIGN.md section 3): 0 finished or already finished, 2 bad config or data (one
message, no traceback, never retried), 75 interrupted after a complete checkpoint was published,
1 anything else.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from tuning_trainer.errors import EXIT_BAD_INPUT, EXIT_FAILED, InputError

log = logging.getLogger("tuning_trainer")

# SageMaker (a later backend) runs the image as `<entrypoint> train` with no flags.
DEFAULT_CONFIG_ENV = "TUNING_CONFIG"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tuning-trainer",
        description="Fine-tune a causal language model (LoRA, QLoRA or full) from a YAML run "
        "config. Environment variables LLM_<SECTION>__<KEY> override the file; flags override "
        "both.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def config_flags(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--config",
            default=os.environ.get(DEFAULT_CONFIG_ENV),
            help=f"run config YAML: local path or s3:// URI (default: ${DEFAULT_CONFIG_ENV})",
        )
        sub.add_argument(
            "--set",
            dest="assignments",
            action="append",
            default=[],
            metavar="SECTION.KEY=VALUE",
            help="override one setting, e.g. --set lora.r=32 (repeatable)",
        )
        sub.add_argument("--learning-rate", type=float, help="training.learning_rate")
        sub.add_argument("--num-epochs", type=float, help="training.num_train_epochs")
        sub.add_argument("--max-steps", type=int, help="training.max_steps")

    train = commands.add_parser("train", help="train (resumes an interrupted run by itself)")
    config_flags(train)
    train.add_argument(
        "--resume-from-checkpoint",
        default="auto",
        metavar="auto|none|PATH",
        help="auto: the newest complete published checkpoint (default); none: start over; "
        "or a local checkpoint folder",
    )
    train.add_argument(
        "--allow-config-change",
        action="store_true",
        help="continue an unfinished run with a new training.max_steps, "
        "training.num_train_epochs or data.eval; any other change to what is trained still "
        "exits 2 (harmless keys such as logging_steps may always change)",
    )
    validate = commands.add_parser(
        "validate", help="check config and data, print token statistics; trains nothing"
    )
    config_flags(validate)
    validate.add_argument(
        "--instance-type",
        metavar="TYPE",
        help="also print an estimated time and cost range on this instance type (e.g. "
        "g5.2xlarge): the types tuning-lab accepts, priced as in lib/pricing.ts",
    )
    validate.add_argument(
        "--region",
        help="the region whose price the estimate uses (default: $AWS_REGION, else us-east-1)",
    )
    commands.add_parser("schema", help="print the JSON Schema of the run config")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from tuning_trainer.config import parse_assignment

    overrides: dict[str, Any] = {}
    for assignment in args.assignments:
        key, value = parse_assignment(assignment)
        overrides[key] = value
    flags = {
        "training.learning_rate": args.learning_rate,
        "training.num_train_epochs": args.num_epochs,
        "training.max_steps": args.max_steps,
    }
    overrides.update({key: value for key, value in flags.items() if value is not None})
    return overrides


def _configure_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("TUNING_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # transformers 5 renames (gradient -> activation checkpointing) warn from inside the library
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")


def main(argv: Sequence[str] | None = None) -> int:
    # The DataLoader runs in-process; tokenizers' own thread pool would only contend with torch.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = _parser().parse_args(argv)
    if args.command == "schema":
        from tuning_trainer.config import json_schema_text

        sys.stdout.write(json_schema_text())
        return 0
    _configure_logging()
    try:
        if not args.config:
            raise InputError(f"--config is required (or set ${DEFAULT_CONFIG_ENV})")
        overrides = _overrides(args)
        if args.command == "validate":
            from tuning_trainer.validate import run_validate

            return run_validate(
                args.config, overrides, instance_type=args.instance_type, region=args.region
            )
        from tuning_trainer.train import run_train

        return run_train(
            args.config,
            overrides,
            resume=args.resume_from_checkpoint,
            allow_config_change=args.allow_config_change,
        )
    except InputError as err:
        # Bad input is the user's to fix: one clear message, no traceback, exit 2.
        print(f"tuning-trainer: error: {err}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    except Exception:
        log.exception("training failed")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
