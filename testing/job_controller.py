"""The SageMaker job controller (lambda/jobs/handler.ts) run in Node as the deployed function
runs it: bundled by esbuild as the stack bundles it, one pass against an emulated AWS.

    bundle = bundle_job_controller(tmp_path / "jobs-handler.js")
    report = run_job_controller(bundle, function_env=<the deployed function's>, env=...)

``function_env`` is the deployed function's own environment (lambda/jobs/env.ts, JOBS_ENV, as
CloudFormation resolved it); ``env`` adds the endpoint, the region and the credentials (the
stack's controller role's when IAM is enforced).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from testing.safety_lambda import ROOT, bundle_handler

HANDLER = ROOT / "lambda" / "jobs" / "handler.ts"


class JobPassError(RuntimeError):
    """The pass threw (a step failed); the message holds Node's output."""


def bundle_job_controller(target: Path) -> Path:
    return bundle_handler(HANDLER, target, "the job controller")


def run_job_controller(bundle: Path, *, function_env: dict, region: str, env: dict) -> dict:
    """One pass of ``handler()`` as a state change event starts it; its report, with what the
    pass printed before it under ``log``."""
    function_env = {**env, **function_env, "AWS_REGION": region}
    event = json.dumps({"detail-type": "SageMaker Training Job State Change"})
    call = (
        f"require({json.dumps(str(bundle))}).handler({event})"
        ".then(r => console.log(JSON.stringify(r)))"
    )
    done = subprocess.run(
        ["node", "-e", call], env=function_env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise JobPassError(f"the job controller's pass failed:\n{done.stdout}{done.stderr}")
    lines = done.stdout.strip().splitlines()
    return {**json.loads(lines[-1]), "log": lines[:-1]}
