"""The run's progress where the operator can read it: ``<outputUri>/progress.json`` and
``<outputUri>/metrics.json`` (docs/contracts.md section 11), which ``npx tuning-lab status``
shows and plots.

The trainer rewrites its progress file after every optimizer step and prints its metrics as
CloudWatch embedded-metric-format lines (loss, learning rate, tokens/s; eval loss); both only
reach the instance. The supervisor reads them as untrusted input and publishes them to S3 at a
bounded rate: at most once every ``interval_seconds`` (30 s), and only once the trainer has
moved ``logging_steps`` steps (or logged an eval) since the last write, whichever is slower. So
a 10-hour run costs at most ~2,400 small writes, whatever its step rate, and ``status`` lags the
instance by about that much. Publishing runs on its own thread and never stops training: a
failed write is logged and retried at the next tick.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from typing import Callable

from . import contract, watchdog
from .aws import AwsError
from .ledger import iso

log = logging.getLogger(__name__)

MAX_LINE_CHARS = 64 * 1024
MAX_POINTS = 2000  # metrics.json stays under ~200 KB; older points are thinned beyond this
MAX_STEP = 10**9
# EMF metric names the trainer prints (contracts section 3) -> names in the published documents.
EMF_FIELDS = {
    "loss": "loss",
    "eval_loss": "evalLoss",
    "learning_rate": "learningRate",
    "tokens_per_second": "tokensPerSecond",
}


def parse_metric_line(line: str) -> tuple[int, dict] | None:
    """(step, metrics) from one of the trainer's EMF lines; None for any other line. The line
    comes from the container: anything malformed is ignored, never raised."""
    text = line.strip()
    if not text.startswith("{") or '"_aws"' not in text or len(text) > MAX_LINE_CHARS:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    step = doc.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= MAX_STEP:
        return None
    metrics = {}
    for emf_name, name in EMF_FIELDS.items():
        value = doc.get(emf_name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            metrics[name] = float(value)
    return (step, metrics) if metrics else None


class ProgressPublisher:
    def __init__(
        self,
        aws: object,
        output_uri: str,
        run_id: str,
        instance_id: str,
        progress_path: str,
        logging_steps: int,
        interval_seconds: float = contract.PROGRESS_MIN_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        base = output_uri.rstrip("/")
        self.aws = aws
        self.progress_uri = f"{base}/{contract.PROGRESS_NAME}"
        self.metrics_uri = f"{base}/{contract.METRICS_NAME}"
        self.run_id = run_id
        self.instance_id = instance_id
        self.progress_path = progress_path
        self.logging_steps = max(1, int(logging_steps))
        self.interval_seconds = interval_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._points: dict = {}  # step -> {"step", "at", metric: value}
        self._latest: dict = {}  # the newest value of each metric
        self._version = 0  # counts changes to the points
        self._published_version = 0  # the points' version last written
        self._first: tuple | None = None  # (step, time) first seen in this attempt
        self._published_step: int | None = None
        self._failing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- input ----------------------------------------------------------------------------------

    def load_history(self) -> None:
        """Continue the run's published history (an earlier instance's, after a resume)."""
        try:
            found = self.aws.get_object(self.metrics_uri)
            doc = json.loads(found[0]) if found else {}
        except (AwsError, ValueError) as error:
            log.warning("reading %s failed: %s", self.metrics_uri, error)
            return
        points = doc.get("points") if isinstance(doc, dict) else None
        with self._lock:
            for point in points if isinstance(points, list) else []:
                if isinstance(point, dict) and isinstance(point.get("step"), int):
                    self._points[point["step"]] = point

    def observe_line(self, line: str) -> None:
        """Every line the trainer prints passes here (launchers.TrainingLog observers)."""
        parsed = parse_metric_line(line)
        if parsed is None:
            return
        step, metrics = parsed
        with self._lock:
            if "loss" in metrics and self._points and step < max(self._points):
                # A resume replays the steps after its checkpoint: they replace the old ones.
                self._points = {s: p for s, p in self._points.items() if s <= step}
            point = self._points.setdefault(step, {"step": step})
            point.update(metrics)
            point["at"] = iso(self.clock())
            self._latest.update(metrics)
            self._version += 1
            if len(self._points) > MAX_POINTS:
                self._thin()

    @property
    def published_step(self) -> int | None:
        """The step of the last write (None before the first)."""
        return self._published_step

    def new_attempt(self) -> None:
        """A trainer (re)starts: the ETA is measured from its first step."""
        with self._lock:
            self._first = None

    # -- output ---------------------------------------------------------------------------------

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.interval_seconds):
                try:
                    self.publish_if_due()
                except Exception:  # never let the thread die: the next tick tries again
                    log.exception("publishing the run's progress failed")

        self._thread = threading.Thread(target=loop, name="progress-publisher", daemon=True)
        self._thread.start()

    def stop(self, publish: bool) -> None:
        """No more ticks; with ``publish``, write whatever is new one last time."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=60)
        if publish:
            self.publish_if_due(force=True)

    def publish_if_due(self, force: bool = False) -> bool:
        """Write progress.json (and metrics.json when it changed) if the trainer moved
        ``logging_steps`` steps or logged new metrics since the last write (``force``: anything
        new at all). True when written."""
        progress = watchdog.read_progress(self.progress_path) or {}
        step = progress.get("step")
        step = step if isinstance(step, int) and not isinstance(step, bool) else None
        now = self.clock()
        with self._lock:
            if step is not None and (self._first is None or step < self._first[0]):
                self._first = (step, now)
            newest = max(self._points) if self._points else None
            current = step if step is not None else newest
            if current is None:
                return False
            last_step = self._published_step
            changed = self._version != self._published_version
            if force:
                due = last_step != current or changed
            else:
                due = last_step is None or current - last_step >= self.logging_steps
            if not due:
                return False
            version = self._version
            document = self._progress_document(progress, current, now)
            points = (
                [dict(p) for p in sorted(self._points.values(), key=lambda p: p["step"])]
                if changed
                else None
            )
        try:
            self.aws.put_object(self.progress_uri, _body(document), "application/json")
            if points is not None:
                metrics = {
                    "schemaVersion": contract.SCHEMA_VERSION,
                    "runId": self.run_id,
                    "updatedAt": iso(now),
                    "points": points,
                }
                self.aws.put_object(self.metrics_uri, _body(metrics), "application/json")
        except (AwsError, OSError) as error:
            if not self._failing:
                log.warning("publishing the run's progress failed (retried): %s", error)
            self._failing = True
            return False
        self._failing = False
        with self._lock:
            self._published_step = current
            if points is not None:
                self._published_version = version
        return True

    def _progress_document(self, progress: dict, step: int, now: float) -> dict:
        loss = progress.get("loss")
        if isinstance(loss, bool) or not isinstance(loss, (int, float)) or not math.isfinite(loss):
            loss = None
        max_steps = progress.get("max_steps")
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps <= 0:
            max_steps = None
        first = self._first
        return {
            "schemaVersion": contract.SCHEMA_VERSION,
            "runId": self.run_id,
            "instanceId": self.instance_id,
            "step": step,
            "maxSteps": max_steps,
            "loss": loss if loss is not None else self._latest.get("loss"),
            "evalLoss": self._latest.get("evalLoss"),
            "learningRate": self._latest.get("learningRate"),
            "tokensPerSecond": self._latest.get("tokensPerSecond"),
            "attemptFirstStep": first[0] if first else None,
            "attemptFirstStepAt": iso(first[1]) if first else None,
            "updatedAt": iso(now),
        }

    def _thin(self) -> None:
        """Every other point of the older half goes (eval points stay), so plots keep shape."""
        steps = sorted(self._points)
        older = steps[: len(steps) // 2]
        for index, step in enumerate(older):
            if index % 2 == 1 and "evalLoss" not in self._points[step]:
                del self._points[step]


def _body(doc: dict) -> bytes:
    return (json.dumps(doc, indent=2) + "\n").encode()
