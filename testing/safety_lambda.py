"""The safety Lambda (lambda/safety/handler.ts) run in Node as the deployed function runs it:
bundled by esbuild as the stack bundles it, one scheduled pass against an emulated AWS.

    bundle = bundle_safety_lambda(tmp_path / "safety-handler.js")
    report = run_safety_lambda(bundle, stack_name=..., topic_arn=..., outputs_bucket=..., env=...)

The environment variables are the function's (lambda/safety/env.ts, SAFETY_ENV); ``env`` adds the
endpoint and the credentials (dummy ones, or the stack's Lambda role's when IAM is enforced).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ESBUILD = ROOT / "node_modules" / ".bin" / "esbuild"
HANDLER = ROOT / "lambda" / "safety" / "handler.ts"


class SafetyPassError(RuntimeError):
    """The pass threw (a step failed); the message holds Node's output."""


class NodeMissingError(RuntimeError):
    """node or the npm packages are not installed (make install)."""


def bundle_safety_lambda(target: Path) -> Path:
    return bundle_handler(HANDLER, target, "the safety Lambda")


def bundle_handler(handler: Path, target: Path, what: str) -> Path:
    """``handler`` bundled by esbuild as the stack bundles its Lambda functions."""
    if not ESBUILD.exists() or not shutil.which("node"):
        raise NodeMissingError(f"{what} needs node and the npm packages (make install)")
    subprocess.run(
        [str(ESBUILD), str(handler), "--bundle", "--platform=node", "--target=node20",
         "--format=cjs", "--log-level=warning", f"--outfile={target}"],
        check=True, timeout=120,
    )  # fmt: skip
    return target


def run_safety_lambda(
    bundle: Path,
    *,
    stack_name: str,
    topic_arn: str,
    outputs_bucket: str,
    region: str,
    env: dict,
    default_max_runtime_hours: float = 12,
) -> dict:
    """One pass of ``handler()``; its report (stopped, kept, skipped, failures). A pass that
    fails raises SafetyPassError with Node's output."""
    function_env = {
        **env,
        "TUNING_LAB_STACK_NAME": stack_name,
        "TUNING_LAB_TOPIC_ARN": topic_arn,
        "TUNING_LAB_OUTPUTS_BUCKET": outputs_bucket,
        "TUNING_LAB_DEFAULT_MAX_RUNTIME_HOURS": str(default_max_runtime_hours),
        "AWS_REGION": region,
    }
    call = f"require({json.dumps(str(bundle))}).handler().then(r => console.log(JSON.stringify(r)))"
    done = subprocess.run(
        ["node", "-e", call], env=function_env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise SafetyPassError(f"the safety Lambda's pass failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])
