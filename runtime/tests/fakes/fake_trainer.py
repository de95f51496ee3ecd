"""A stand-in for the trainer CLI in the supervisor's branch tests (the scenarios use the real one).

    python fake_trainer.py train --resume-from-checkpoint auto --config PATH

It follows the trainer's side of docs/contracts.md section 3 (progress file, S3 layout, exit
codes) and does, on its Nth start, what the Nth word of $FAKE_TRAINER_PLAN says (the last word
repeats), counting starts in $FAKE_TRAINER_STATE:

- ``complete``: three steps, publishes final/manifest.json, exit 0
- ``complete-without-manifest``: three steps, exit 0, but nothing published
- ``complete-truncated``: three steps, exit 0, a final manifest listing more bytes than were put
- ``fail``: prints 60 numbered lines and a traceback, exit 1
- ``bad-input``: prints a config error, exit 2
- ``exit-75``: exit 75 at once, as after an interruption nobody announced
- ``train``: a step every 0.1 s until SIGTERM, then publishes checkpoints/step-N, exit 75
- ``train-40``: as ``train``, but after 40 steps (4 s) publishes final/, exit 0
- ``stubborn``: a step every 0.1 s, ignoring SIGTERM
- ``hang``: sleeps without progress or CPU
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

STEP_SECONDS = 0.1
# Set by SIGTERM from the first instant (boto3 is imported only to publish), so a stop that
# comes right after the start still ends in a checkpoint, as with the real trainer.
STOPPING = {"now": False}
signal.signal(signal.SIGTERM, lambda *_: STOPPING.update(now=True))


def write_progress(step: int) -> None:
    path = os.environ["TUNING_PROGRESS_FILE"]
    progress = {"step": step, "max_steps": 1000, "loss": 2.0 / step, "updated_at": time.time()}
    with open(path + ".tmp", "w") as handle:
        json.dump(progress, handle)
    os.replace(path + ".tmp", path)


def publish(prefix: str, step: int, size: int = 64) -> None:
    """Files, then the manifest last (contracts section 3a; sha256 left out: nobody checks it)."""
    import boto3

    bucket, _, key_prefix = os.environ["LLM_OUTPUT__URI"][len("s3://") :].partition("/")
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key=f"{key_prefix}/{prefix}/model.safetensors", Body=b"w" * size)
    files = [{"path": "model.safetensors", "size": 64}]
    manifest = json.dumps({"schemaVersion": 1, "step": step, "files": files})
    s3.put_object(Bucket=bucket, Key=f"{key_prefix}/{prefix}/manifest.json", Body=manifest)


def next_behaviour() -> str:
    plan = os.environ.get("FAKE_TRAINER_PLAN", "complete").split(",")
    state = os.environ["FAKE_TRAINER_STATE"]
    starts = 0
    if os.path.exists(state):
        with open(state) as handle:
            starts = int(handle.read())
    with open(state, "w") as handle:
        handle.write(str(starts + 1))
    return plan[min(starts, len(plan) - 1)]


def main() -> int:
    assert sys.argv[1:4] == ["train", "--resume-from-checkpoint", "auto"], sys.argv
    assert sys.argv[4] == "--config" and os.path.exists(sys.argv[5]), sys.argv
    behaviour = next_behaviour()
    print(f"fake trainer: {behaviour}", flush=True)
    if behaviour in ("complete", "complete-without-manifest", "complete-truncated"):
        for step in (1, 2, 3):
            write_progress(step)
        if behaviour == "complete":
            publish("final", 3)
        if behaviour == "complete-truncated":
            publish("final", 3, size=10)
        print("training finished", flush=True)
        return 0
    if behaviour == "fail":
        for number in range(1, 61):
            print(f"log line {number}")
        print("RuntimeError: CUDA error: an illegal memory access was encountered", flush=True)
        return 1
    if behaviour == "bad-input":
        print("config error: lora.r must be greater than 0; got -1", flush=True)
        return 2
    if behaviour == "exit-75":
        return 75
    if behaviour == "hang":
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a hung process dies at SIGTERM
        while True:
            time.sleep(3600)
    if behaviour not in ("train", "train-40"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    step = 0
    while not STOPPING["now"]:
        step += 1
        write_progress(step)
        if step % 10 == 0:  # the trainer's metric line every logging_steps (EMF, contracts 3)
            metrics = {"loss": 2.0 / step, "learning_rate": 1e-4, "tokens_per_second": 1000.0}
            print(json.dumps({"_aws": {}, "RunId": "fake", "step": step, **metrics}), flush=True)
        time.sleep(STEP_SECONDS)
        if behaviour == "train-40" and step == 40:
            publish("final", step)
            print("training finished", flush=True)
            return 0
    publish(f"checkpoints/step-{step}", step)
    print(f"checkpoint step-{step} published; exiting 75", flush=True)
    return 75


if __name__ == "__main__":
    sys.exit(main())
