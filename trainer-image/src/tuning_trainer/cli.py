"""The command line: ``tuning-trainer train|validate|export|schema`` (``python -m tuning_trainer``).

    tuning-trainer validate --config configs/tiny-llama-lora.yaml
    tuning-trainer train --config s3://bucket/configs/run.yaml --set lora.r=32
    tuning-trainer export s3://bucket/runs/run-3f2a9c1b --out ./merged --merge
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

from tuning_trainer.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, InputError

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
    train.add_argument(
        "--nproc-per-node",
        type=int,
        metavar="N",
        help="processes (ranks) to train with, one per GPU (default: $TUNING_NPROC_PER_NODE, "
        "else every visible GPU; on a CPU 1); above 1 they run under torchrun with "
        "training.distributed",
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
    export = commands.add_parser(
        "export",
        help="copy a finished run's final model, or merge its adapter into the base model",
        description="Write the complete final model of a run (checked against its manifest) to "
        "--out: as published, or with --merge the adapter merged into its base as a plain "
        "safetensors model with its tokenizer and generation config (vLLM, transformers).",
    )
    export.add_argument(
        "source", help="the run folder (output.uri: local or s3://) or its final/ folder"
    )
    export.add_argument("--out", required=True, help="a new or empty local folder")
    export.add_argument(
        "--merge", action="store_true", help="merge the LoRA adapter into the base model"
    )
    export.add_argument(
        "--base-model",
        metavar="PATH_OR_ID",
        help="load the base from here instead of the adapter's base_model_name_or_path "
        "(a local folder, Hub id, s3:// prefix or builtin:<name>)",
    )
    export.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "bf16", "fp16", "fp32"],
        help="dtype of the merged weights (default auto: the base model's own)",
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
    # On every save peft asks the Hub whether the adapter's base has another vocabulary size; an
    # s3:// or builtin: base (export.label_base_model) is no Hub id, and the trainer never
    # resizes the vocabulary, so peft's assumption "not modified" is right.
    warnings.filterwarnings("ignore", message="Could not find a config file in", module=r"peft\.")


def main(argv: Sequence[str] | None = None) -> int:
    from tuning_trainer import distributed, sagemaker

    job = sagemaker.current()
    if job is not None and not distributed.in_job():
        for key, value in sagemaker.job_environment(job, os.environ).items():
            os.environ[key] = value
    failure: list[str] = []
    code = _main(list(sys.argv[1:] if argv is None else argv), failure)
    distributed.write_outcome(code)  # for the job's parent, when this process is one rank
    if job is not None and not distributed.in_job():
        reasons = {EXIT_INTERRUPTED: "a checkpoint was published; the next job resumes from it"}
        reason = failure[-1] if failure else reasons.get(code, "see the job's log")
        sagemaker.write_failure(job, code, reason)
    return code


def _main(argv: list[str], failure: list[str]) -> int:
    # The DataLoader runs in-process; tokenizers' own thread pool would only contend with torch.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = _parser().parse_args(argv)
    from tuning_trainer import sagemaker

    job = sagemaker.current()
    if job is not None and args.command in ("train", "validate") and not args.config:
        args.config = sagemaker.config_location(job, os.environ)
    if args.command == "schema":
        from tuning_trainer.config import json_schema_text

        sys.stdout.write(json_schema_text())
        return 0
    _configure_logging()
    try:
        if args.command == "export":
            from tuning_trainer.export import run_export

            return run_export(args.source, args.out, args.merge, args.base_model, args.dtype)
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
            nproc_per_node=args.nproc_per_node,
            argv=argv,
        )
    except InputError as err:
        # Bad input is the user's to fix: one clear message, no traceback, exit 2.
        print(f"tuning-trainer: error: {err}", file=sys.stderr, flush=True)
        failure.append(str(err))
        return EXIT_BAD_INPUT
    except Exception as err:
        log.exception("training failed")
        failure.append(f"training failed: {type(err).__name__}: {err}")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
