"""The host supervisor: from boot to terminate, one run on one instance, no path left billing.

    python3 -m tuning_runtime run        # what the systemd unit runs (see --help for the seams)

It reads the run settings, takes the run's lease (one instance per run), records the run in the
ledger, pins the image to the digest the run started with, hands the trainer its own short-lived
credentials, starts it (retrying failures from the last checkpoint), watches for spot notices,
idleness, the run's limits and the operator's stop request, and finalises: ledger, one SNS
message, lease released, group capacity 0, ``shutdown -h now``. Every way out of
:meth:`Supervisor.run` except the host stopping us ends in a shutdown request.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

from . import contract, control, images, ledger, messages, outputs, watchdog
from .aws import AwsError, check_cli_version
from .credentials import TrainerCredentials
from .host import Group, Host, best_effort
from .imds import Identity, Imds, ImdsError, Notice
from .launchers import PrepareError, TrainerJob, TrainerProcess, TrainingLog, progress_dir_of
from .lease import Lease, LeaseBusyError, LeaseLostError, LeaseTimings
from .progress import ProgressPublisher
from .settings import RunSettings, SettingsError, parse_settings

log = logging.getLogger(__name__)

# Why the supervisor stopped the trainer (WatchResult.cause).
NOTICE = "notice"
HOST_STOP = "host-stop"
LEASE_LOST = "lease-lost"
OPERATOR = contract.REASON_OPERATOR  # `tuning-lab stop` (control.py)
IDLE = contract.REASON_IDLE
MAX_RUNTIME = contract.REASON_MAX_RUNTIME
MAX_COST = contract.REASON_MAX_COST
SAFETY_CAUSES = (IDLE, MAX_RUNTIME, MAX_COST)
DEFAULT_LOGGING_STEPS = 10  # the trainer's default training.logging_steps


@dataclass(frozen=True)
class Timings:
    imds_poll_seconds: float = 5.0
    sample_seconds: float = 30.0  # idle watchdog, limits
    stop_grace_seconds: float = 110.0  # SIGTERM -> kill; the container's --stop-timeout
    heartbeat_seconds: float = 300.0  # ledger lastStep/cost refresh while training
    progress_seconds: float = float(contract.PROGRESS_MIN_INTERVAL_SECONDS)  # to S3
    stop_poll_seconds: float = 10.0  # the operator's stop request (one S3 GET)
    metrics_seconds: float = 60.0  # GPU metrics to CloudWatch (one PutLogEvents)
    retry_delay_seconds: float = 15.0
    boot_retry_delays: tuple = (5, 10, 20, 40)  # IMDS / SSM right after boot
    lease: LeaseTimings = field(default_factory=LeaseTimings)


@dataclass(frozen=True)
class Paths:
    run_dir: str  # config.yaml and the trainer's AWS config and keys (read-only to the trainer)
    training_log: str
    supervisor_log: str | None = None


@dataclass(frozen=True)
class WatchResult:
    exit_code: int
    cause: str | None = None
    notice: Notice | None = None


@dataclass(frozen=True)
class Decision:
    retry: bool
    status: str = ""
    reason: str = ""


def decide(
    exit_code: int, cause: str | None, failures: int, max_retries: int, notice: Notice | None = None
) -> Decision:
    """What a trainer exit means (DESIGN.md section 4). ``failures`` counts earlier exits that
    were retried on this instance; ``notice`` is the interruption notice seen, if any."""
    if exit_code == contract.EXIT_COMPLETED:
        return Decision(False, contract.COMPLETED, contract.REASON_COMPLETED)
    if cause in SAFETY_CAUSES:
        return Decision(False, contract.STOPPED_BY_SAFETY, cause)
    if cause == OPERATOR:  # whatever the code: the operator asked for the run to end here
        return Decision(False, contract.STOPPED, contract.REASON_OPERATOR)
    if exit_code == contract.EXIT_BAD_INPUT:
        return Decision(False, contract.FAILED, contract.REASON_BAD_INPUT)
    if cause == HOST_STOP:
        return Decision(False, contract.INTERRUPTED, contract.REASON_HOST_SHUTDOWN)
    if notice is not None:  # whatever the code: this instance is going away, a replacement resumes
        return Decision(False, contract.INTERRUPTED, notice.reason)
    if failures < max_retries:  # 1, a crash, or 75 with no notice: resume from the checkpoint
        return Decision(True)
    return Decision(False, contract.FAILED, contract.REASON_TRAINER_FAILED)


class Supervisor:
    def __init__(
        self,
        aws: object,
        imds: Imds,
        make_launcher: Callable[[RunSettings, str], object],
        host: Host,
        paths: Paths,
        settings_source: Callable[[], str],
        timings: Timings = Timings(),
        instance_started_at: float | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.aws = aws
        self.imds = imds
        self.make_launcher = make_launcher
        self.launcher: object = None
        self.host = host
        self.paths = paths
        self.settings_source = settings_source
        self.timings = timings
        self.instance_started_at = instance_started_at
        self.stop_event = stop_event or threading.Event()
        self.training_log = TrainingLog(paths.training_log)
        self.progress: ProgressPublisher | None = None
        self.settings: RunSettings | None = None
        self.identity: Identity | None = None
        self.group: Group | None = None
        self.store: ledger.LedgerStore | None = None
        self.ledger: dict = {}
        self.usd_per_hour: float | None = None
        self.last_step: int | None = None
        self.proc: TrainerProcess | None = None
        self.lease: Lease | None = None
        self.lease_lost: LeaseLostError | None = None
        self.credentials: TrainerCredentials | None = None
        self.image_uri: str | None = None
        self.operator_stop: dict | None = None

    # -- entry point -------------------------------------------------------------------------

    def run(self) -> int:
        """Supervise the run to its end; 0 once the outcome is recorded (and shutdown requested
        unless the host is stopping us), 1 when even that was impossible."""
        try:
            return self._run()
        except Exception as error:  # the last line of defence: never leave the GPU running
            log.exception("supervisor error")
            self.say(f"supervisor error: {error}")
            return self._fail_safe(error)

    def say(self, message: str) -> None:
        log.info(message)
        best_effort("writing the training log", self.training_log.say, message)

    def _run(self) -> int:
        started = time.time()
        self.identity = self._with_boot_retries("reading the instance identity", self.imds.identity)
        self.group = Group(self.aws, self.identity.instance_id)
        best_effort("finding the Auto Scaling group", self.group.find)
        try:
            text = self._with_boot_retries("reading the run settings", self.settings_source)
            self.settings = parse_settings(text)
        except SettingsError as error:
            self.say(f"cannot run: {error}")
            return self._end_without_ledger()
        settings = self.settings
        self.instance_started_at = self.instance_started_at or started
        problem = check_cli_version(self.aws.version()) if hasattr(self.aws, "version") else None
        if problem:
            self.say(f"cannot run: {problem}")
            self._publish(contract.FAILED, contract.REASON_SUPERVISOR_ERROR, last_lines=[problem])
            return self._end_without_ledger()
        self.usd_per_hour = self._price()
        self.say(
            f"run {settings.run_id} on {self._instance()} in group {self.group.name or '(none)'}"
        )
        lease = Lease(
            self.aws,
            settings.output_uri,
            settings.run_id,
            self.identity.instance_id,
            self.timings.lease,
            sleep=self.stop_event.wait,
        )
        try:
            self._with_boot_retries(
                "taking the run's lease",
                lambda: lease.acquire(self.say, stopping=self.stop_event.is_set),
            )
        except LeaseBusyError as busy:
            return self._leave_to_holder(busy)
        self.lease = lease
        lease.keep(on_lost=self._on_lease_lost)
        self.store = ledger.LedgerStore(self.aws, settings.output_uri)
        self.progress = self._progress_publisher()
        event = self._begin()
        self._publish(event, None)
        self.host.follow_in_tmux(self.paths.training_log)
        self._write_run_config()
        try:
            self.image_uri = self._pinned_image()
        except PrepareError as error:
            self.say(str(error))
            return self._finalise(contract.FAILED, error.reason, last_lines=error.detail)
        self.credentials = TrainerCredentials(
            self.aws,
            settings.trainer_role_arn,
            f"trainer-{self.identity.instance_id}",
            self.paths.run_dir,
        )
        self._with_boot_retries("taking the trainer's credentials", self.credentials.refresh)
        self.launcher = self.make_launcher(settings, self.image_uri)
        best_effort("removing a trainer left by an earlier supervisor", self.launcher.clean_up)
        try:
            self.launcher.prepare(self.say)
        except PrepareError as error:
            self.say(str(error))
            return self._finalise(contract.FAILED, error.reason, last_lines=error.detail)
        return self._train_until_done()

    def _leave_to_holder(self, busy: LeaseBusyError) -> int:
        """Another instance trains the run: this one must not. It leaves the ledger and the
        group's capacity to the holder (capacity 0 could end the holder) and shuts down."""
        if self.stop_event.is_set():
            self.say(f"the host is stopping while {busy}")
            return 0
        self.say(f"{busy}; this instance shuts down without training (the run goes on there)")
        best_effort("requesting shutdown", self.host.shutdown)
        return 0

    def _train_until_done(self) -> int:
        failures = 0
        while True:
            if self.stop_event.is_set():
                return self._finalise(contract.INTERRUPTED, contract.REASON_HOST_SHUTDOWN)
            if self.lease_lost is not None:  # lost while the image was pulled, or between tries
                self.say(f"{self.lease_lost}: the run goes on elsewhere; not starting the trainer")
                return self._after_lease_lost(None)
            if self._stop_requested():  # before the trainer starts (a replacement, a retry)
                self.say(f"{control.describe(self.operator_stop)}: not starting the trainer")
                return self._finalise(contract.STOPPED, contract.REASON_OPERATOR)
            # the first attempt on this instance bills from its boot (image pull included)
            attempt_started = self.instance_started_at if failures == 0 else time.time()
            self._update(
                partial(self._begin_attempt, started=min(attempt_started, time.time())),
                "recording the attempt",
            )
            self.say(f"starting the trainer (attempt {failures + 1} on this instance)")
            self.progress.new_attempt()
            self.proc = self.launcher.start(self._job(failures + 1), self.training_log)
            result = self._watch(self.proc)
            self.say(f"trainer exited with {result.exit_code}" + self._why(result))
            if result.cause == LEASE_LOST:
                return self._after_lease_lost(result.exit_code)
            decision = decide(
                result.exit_code, result.cause, failures, self.settings.max_retries, result.notice
            )
            if not decision.retry:
                lines = self.proc.last_lines() if decision.status == contract.FAILED else None
                return self._finalise(
                    decision.status,
                    decision.reason,
                    exit_code=result.exit_code,
                    notice=result.notice,
                    last_lines=lines,
                )
            failures += 1
            self._update(
                partial(self._end_attempt, exit_code=result.exit_code), "recording the failure"
            )
            self.say(
                f"retry {failures} of {self.settings.max_retries} from the last checkpoint "
                f"in {self.timings.retry_delay_seconds:g} s"
            )
            self.stop_event.wait(self.timings.retry_delay_seconds)

    @staticmethod
    def _why(result: WatchResult) -> str:
        if result.notice:
            return f" after a {result.notice.action} notice"
        return f" (stopped: {result.cause})" if result.cause else ""

    # -- watching the trainer ----------------------------------------------------------------

    def _watch(self, proc: TrainerProcess) -> WatchResult:
        timings, settings = self.timings, self.settings
        now = time.monotonic()
        dog = watchdog.IdleWatchdog(settings.idle_minutes * 60, started_at=now)
        cpu = watchdog.CpuMeter(proc.cpu_seconds, time.monotonic)
        cpu.sample()
        next_poll, next_sample = now, now + timings.sample_seconds
        next_heartbeat = now + timings.heartbeat_seconds
        next_stop_poll = now + timings.stop_poll_seconds
        gpu_metrics = watchdog.GpuMetrics(
            self.aws, self.settings, self.identity.instance_id, timings.metrics_seconds
        )
        cause: str | None = None
        notice: Notice | None = None
        rebalance_seen = False
        progress_path = self._progress_path()
        while True:
            code = proc.poll()
            if code is None and cause != LEASE_LOST:
                if self.lease_lost is not None:
                    # Another instance trains the run now: stop writing at once, no checkpoint.
                    cause = LEASE_LOST
                    self.say(f"{self.lease_lost}: stopping the trainer without a checkpoint")
                    proc.force_kill()
                self.credentials.refresh_if_due()
            if code is not None:
                self._note_step(watchdog.progress_step(progress_path))
                if code == contract.EXIT_INTERRUPTED and notice is None and cause is None:
                    notice = self._poll_notice()  # the trainer may have seen it first
                return WatchResult(code, cause, notice)
            now = time.monotonic()
            if cause is None and self.stop_event.is_set():
                cause = HOST_STOP
                self.say("the host is stopping: asking the trainer to checkpoint and exit")
                proc.stop(timings.stop_grace_seconds)
            if cause is None and now >= next_poll:
                next_poll = now + timings.imds_poll_seconds
                notice = self._poll_notice()
                if notice is not None:
                    cause = NOTICE
                    proc.stop(timings.stop_grace_seconds)
                    self._record_notice(notice)
                elif not rebalance_seen:
                    rebalance_seen = self._note_rebalance()
            if cause is None and now >= next_sample:
                next_sample = now + timings.sample_seconds
                step = watchdog.progress_step(progress_path)
                self._note_step(step)
                sample = watchdog.gpu_sample()
                gpu_metrics.add(sample)
                gpu = sample.utilisation_percent if sample else None
                if dog.observe(now, gpu, cpu.sample(), step):
                    cause = IDLE
                    self.say(
                        f"idle for {dog.idle_for(now) / 60:.1f} min (GPU, CPU and steps; last "
                        f"activity: {dog.last_reason}): stopping the trainer"
                    )
                    proc.stop(timings.stop_grace_seconds)
                else:
                    cause = self._limit_reached()
                    if cause:
                        self.say(f"{cause} reached: asking the trainer to checkpoint and exit")
                        proc.stop(timings.stop_grace_seconds)
            if cause is None and now >= next_stop_poll:
                next_stop_poll = now + timings.stop_poll_seconds
                if self._stop_requested():
                    cause = OPERATOR
                    self.say(
                        f"{control.describe(self.operator_stop)}: asking the trainer to "
                        "checkpoint and exit"
                    )
                    proc.stop(timings.stop_grace_seconds)
            gpu_metrics.flush_if_due(now)
            if now >= next_heartbeat:
                next_heartbeat = now + timings.heartbeat_seconds
                self._update(partial(ledger.note_step, step=self.last_step), "ledger heartbeat")
            if proc.kill_if_overdue():
                self.say("the trainer did not exit within the grace time: killed")
            time.sleep(0.2)

    def _note_rebalance(self) -> bool:
        """Log a rebalance recommendation once; the run stays until a spot notice."""
        when = best_effort("reading the rebalance recommendation", self.imds.rebalance_recommended)
        if when is None:
            return False
        self.say(
            f"EC2 recommended rebalancing away from this spot instance ({when}); the run stays "
            "here and moves only on an interruption notice (capacity rebalancing is off)"
        )
        return True

    def _poll_notice(self) -> Notice | None:
        try:
            return self.imds.notice()
        except ImdsError as error:
            log.warning("interruption poll failed: %s", error)
            return None

    def _record_notice(self, notice: Notice) -> None:
        self.say(
            f"{notice.reason} ({notice.action}, {notice.time}): asking the trainer to "
            "checkpoint and exit"
        )
        self._update(
            lambda doc: ledger.add_interruption(
                doc, self.identity.instance_id, time.time(), notice.action
            ),
            "recording the interruption",
        )

    def _stop_requested(self) -> bool:
        """Whether the operator asked for this run to stop (a request not yet honoured)."""
        request = best_effort(
            "reading the stop request",
            control.read_stop_request,
            self.aws,
            self.settings.output_uri,
        )
        if not control.is_pending(request, self.ledger):
            return False
        self.operator_stop = request
        return True

    def _note_step(self, step: int | None) -> None:
        if step is not None and step > (self.last_step or 0):
            self.last_step = step

    def _limit_reached(self) -> str | None:
        """The limits the safety Lambda enforces, applied here first so the trainer can
        checkpoint: this instance's runtime and the run's cost so far."""
        settings, now = self.settings, time.time()
        if now - self.instance_started_at >= settings.max_runtime_hours * 3600:
            return MAX_RUNTIME
        if settings.max_run_cost_usd is not None:
            live = ledger.recompute_totals(
                copy.deepcopy(self.ledger), self._price_of, self.identity.instance_id, now
            )
            if live["estimatedCostUsd"] >= settings.max_run_cost_usd:
                return MAX_COST
        return None

    # -- ending ------------------------------------------------------------------------------

    def _finalise(
        self,
        status: str,
        reason: str,
        exit_code: int | None = None,
        notice: Notice | None = None,
        last_lines: list | None = None,
    ) -> int:
        self._stop_progress(publish=True)  # the last step and loss, before the ledger
        settings = self.settings
        final_uri = f"{settings.output_uri}/{contract.FINAL_DIR}/"
        problem = self._final_model_problem() if status == contract.COMPLETED else None
        if problem:
            self.say(f"the trainer exited 0 but the final model is not usable: {problem}")
            status, reason = contract.FAILED, contract.REASON_FINAL_MODEL_MISSING
            last_lines = [*(self.proc.last_lines() if self.proc else []), problem]
        logs_uri = self._upload_logs()
        action = notice.action if notice else "shutdown"
        interrupted_at = time.time()

        def finish(doc: dict | None) -> dict:
            now = time.time()
            if doc is None:  # the start was never recorded (S3 failed then)
                doc, _ = ledger.begin_instance(doc, settings.run_id, self.identity, now)
            ledger.end_attempt(doc, self.identity.instance_id, exit_code, now)
            if status == contract.INTERRUPTED:
                ledger.add_interruption(doc, self.identity.instance_id, interrupted_at, action)
            ledger.note_step(doc, self.last_step)
            doc, self._status_written = ledger.finish(
                doc,
                status,
                reason,
                now,
                logsUri=logs_uri,
                finalModelUri=final_uri if status == contract.COMPLETED else None,
                lastLogLines=last_lines[-contract.LAST_LOG_LINES :] if last_lines else None,
                operatorStop=self.operator_stop if status == contract.STOPPED else None,
            )
            return ledger.recompute_totals(doc, self._price_of, self.identity.instance_id, now)

        self._status_written = True
        self._update(finish, "recording the outcome")
        self.say(f"run {status} ({reason})")
        if self._status_written:
            self._publish(status, reason, last_lines=last_lines or [])
        else:
            self.say(f"the ledger already says {self.ledger.get('status')}: no message from here")
        if self.lease is not None:  # the trainer has exited: the next instance may take the run
            best_effort("releasing the run's lease", self.lease.release)
        if status == contract.INTERRUPTED and reason == contract.REASON_HOST_SHUTDOWN:
            return 0  # the host is going down (or rebooting); the run resumes when one starts
        if status == contract.INTERRUPTED:
            self.say("leaving the group's capacity as it is, so it launches a replacement")
        elif status == contract.FAILED and settings.debug_hold_minutes > 0:
            self._debug_hold()
        else:
            best_effort("setting the group's capacity to 0", self.group.set_capacity_to_zero)
        self.say("requesting shutdown (the instance terminates)")
        self.host.shutdown()
        return 0

    def _on_lease_lost(self, lost: LeaseLostError) -> None:
        """From the renewal thread: the watch loop acts on it (and none of our writes follow)."""
        log.error("the run's lease was lost: %s", lost)
        self.lease_lost = lost

    def _after_lease_lost(self, exit_code: int | None) -> int:
        """The run is another instance's now: record only this attempt's end (the holder owns
        the run's status and capacity) and shut down."""
        self._stop_progress(publish=False)  # the holder publishes the run's progress now
        self._update(partial(self._end_attempt, exit_code=exit_code), "recording the attempt's end")
        self._upload_logs()
        self.say("requesting shutdown (the instance terminates); the run goes on elsewhere")
        self.host.shutdown()
        return 0

    def _debug_hold(self) -> None:
        minutes = self.settings.debug_hold_minutes
        released = best_effort("detaching from the group", self.group.release_for_debug_hold)
        if released is None:  # detaching failed: capacity 0 now matters more than the hold
            best_effort("setting the group's capacity to 0", self.group.set_capacity_to_zero)
        self.say(f"debug hold: the instance stays up {minutes:g} min, reachable through SSM only")
        self.stop_event.wait(minutes * 60)
        self._update(
            lambda doc: ledger.recompute_totals(
                doc, self._price_of, self.identity.instance_id, time.time()
            ),
            "adding the debug hold to the bill",
        )

    def _fail_safe(self, error: Exception) -> int:
        """After an unexpected error: stop the trainer, record what we can, terminate."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stop(self.timings.stop_grace_seconds)
            while self.proc.poll() is None and not self.proc.kill_if_overdue():
                time.sleep(0.5)
        if self.settings is not None and self.identity is not None and self.store is not None:
            lines = traceback.format_exception_only(type(error), error)
            try:
                return self._finalise(
                    contract.FAILED, contract.REASON_SUPERVISOR_ERROR, last_lines=lines
                )
            except Exception:
                log.exception("finalising after the error failed too")
        return self._end_without_ledger()

    def _end_without_ledger(self) -> int:
        if self.group is not None:
            best_effort("setting the group's capacity to 0", self.group.set_capacity_to_zero)
        self.say("requesting shutdown (the instance terminates)")
        best_effort("requesting shutdown", self.host.shutdown)
        return 0

    # -- helpers -----------------------------------------------------------------------------

    def _with_boot_retries(self, what: str, action: Callable):
        """Right after boot the network or IAM credentials may not be ready yet."""
        for delay in [*self.timings.boot_retry_delays, None]:
            try:
                return action()
            except (AwsError, ImdsError, OSError) as error:
                if delay is None:
                    raise
                log.warning("%s failed (%s); again in %s s", what, error, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _instance(self) -> str:
        who = self.identity
        return f"{who.instance_id} ({who.instance_type}, {who.market}, {who.availability_zone})"

    def _price(self) -> float | None:
        """USD per hour of this instance: the current spot price in its AZ, else on-demand."""
        on_demand = self.settings.on_demand_price(self.identity.instance_type)
        if self.identity.market != "spot":
            return on_demand
        history = best_effort(
            "reading the spot price",
            self.aws.call,
            "ec2",
            "DescribeSpotPriceHistory",
            {
                "InstanceTypes": [self.identity.instance_type],
                "AvailabilityZone": self.identity.availability_zone,
                "ProductDescriptions": ["Linux/UNIX"],
                "StartTime": ledger.iso(time.time()),
            },
        )
        prices = [
            float(entry["SpotPrice"])
            for entry in (history or {}).get("SpotPriceHistory", [])
            if entry.get("AvailabilityZone") == self.identity.availability_zone
        ]
        return prices[0] if prices else on_demand  # on-demand is the upper bound

    def _begin(self) -> str:
        event = {"value": contract.STARTED}
        now = time.time()

        def begin(doc: dict | None) -> dict:
            doc, event["value"] = ledger.begin_instance(
                doc, self.settings.run_id, self.identity, now
            )
            return ledger.end_attempt(doc, self.identity.instance_id, None, now)  # a stale one

        self._update(begin, "recording the start")
        return event["value"]

    def _pinned_image(self) -> str:
        """The image every attempt of this run pulls: the digest its tag named at the run's first
        start (recorded in the ledger), so a spot replacement never resumes on another build."""
        pinned = self.ledger.get("imageUri")
        if pinned:
            self.say(f"image pinned at the run's first start: {pinned}")
            return pinned
        pinned = images.resolve_digest(self.aws, self.settings.image_uri)
        self._update(lambda doc: images.record(doc, pinned), "recording the image digest")
        pinned = self.ledger.get("imageUri") or pinned  # a concurrent first start wins
        self.say(f"image {self.settings.image_uri} is {pinned}; every attempt of the run uses it")
        return pinned

    def _update(self, mutate: Callable, what: str) -> None:
        updated = best_effort(what, self.store.update, mutate)
        if updated is not None:
            self.ledger = updated

    def _begin_attempt(self, doc: dict, started: float) -> dict:
        return ledger.begin_attempt(doc, self.identity, self.usd_per_hour, started)

    def _end_attempt(self, doc: dict, exit_code: int) -> dict:
        return ledger.end_attempt(doc, self.identity.instance_id, exit_code, time.time())

    def _price_of(self, attempt: dict) -> float | None:
        """An attempt's USD per hour: as recorded, else the on-demand price of its type."""
        return attempt.get("usdPerHour") or self.settings.on_demand_price(
            attempt.get("instanceType", "")
        )

    def _job(self, attempt: int) -> TrainerJob:
        settings = self.settings
        return TrainerJob(
            run_dir=self.paths.run_dir,
            env={
                contract.ENV_OUTPUT_URI: settings.output_uri,
                contract.ENV_DATA_ROOT: settings.data_root_uri,
                "AWS_REGION": settings.region,
                "AWS_DEFAULT_REGION": settings.region,
            },
            log_stream=f"{settings.run_id}/{self.identity.instance_id}/attempt-{attempt}",
        )

    def _write_run_config(self) -> None:
        os.makedirs(self.paths.run_dir, exist_ok=True)
        progress = self._progress_path()
        if os.path.lexists(progress):
            os.remove(progress)  # (a link is removed, not followed)
        # JSON is YAML: the trainer reads this with its YAML loader.
        with open(os.path.join(self.paths.run_dir, "config.yaml"), "w") as config:
            json.dump(self.settings.run_config, config, indent=2)
            config.write("\n")

    def _progress_path(self) -> str:
        return os.path.join(progress_dir_of(self.paths.run_dir), "progress.json")

    def _final_model_problem(self) -> str | None:
        try:
            return outputs.final_model_problem(self.aws, self.settings.output_uri)
        except AwsError as error:  # unknown: trust the trainer's exit code
            log.error("checking the final model failed: %s", error)
            return None

    def _upload_logs(self) -> str | None:
        prefix = f"{self.settings.output_uri}/{contract.LOGS_DIR}/"
        uploaded = False
        for path in (self.paths.training_log, self.paths.supervisor_log):
            if not path or not os.path.exists(path):
                continue
            uri = f"{prefix}{self.identity.instance_id}/{os.path.basename(path)}"
            try:
                self.aws.upload_file(path, uri)
                uploaded = True
            except (AwsError, OSError) as error:
                log.error("uploading %s failed: %s", path, error)
        return prefix if uploaded else None

    def _progress_publisher(self) -> ProgressPublisher:
        """Publishes the trainer's progress and metrics to the run's prefix (contracts
        section 11), from the progress file and the metric lines of the training log."""
        config = self.settings.run_config if isinstance(self.settings.run_config, dict) else {}
        training = config.get("training") if isinstance(config.get("training"), dict) else {}
        logging_steps = training.get("logging_steps")
        publisher = ProgressPublisher(
            self.aws,
            self.settings.output_uri,
            self.settings.run_id,
            self.identity.instance_id,
            self._progress_path(),
            logging_steps if isinstance(logging_steps, int) else DEFAULT_LOGGING_STEPS,
            self.timings.progress_seconds,
        )
        best_effort("reading the run's published metrics", publisher.load_history)
        self.training_log.observers.append(publisher.observe_line)
        publisher.start()
        return publisher

    def _stop_progress(self, publish: bool) -> None:
        if self.progress is not None:
            best_effort("publishing the run's progress", self.progress.stop, publish)

    def _publish(self, status: str, reason: str | None, last_lines: list | None = None):
        settings, doc = self.settings, self.ledger
        started = doc.get("startedAt")
        duration = time.time() - ledger.parse_iso(started) if started else None
        ctx = messages.Context(
            instance_id=self.identity.instance_id,
            region=settings.region,
            stack_name=settings.stack_name,
            run_id=settings.run_id,
            output_uri=settings.output_uri,
            image_uri=self.image_uri or settings.image_uri,
            idle_minutes=settings.idle_minutes,
            last_step=doc.get("lastStep") or self.last_step,
            debug_hold_minutes=settings.debug_hold_minutes,
        )
        facts = messages.Facts(
            run_id=settings.run_id,
            status=status,
            reason=reason,
            instance=self._instance(),
            duration_seconds=duration,
            cost_usd=doc.get("estimatedCostUsd"),
            model_uri=doc.get("finalModelUri") if status == contract.COMPLETED else None,
            logs_uri=doc.get("logsUri"),
            next_step=messages.next_step(status, reason, ctx),
            last_log_lines=last_lines or [],
        )
        best_effort("publishing to SNS", messages.publish, self.aws, settings.topic_arn, facts)
        best_effort(
            "keeping the message in the run's messages/",
            messages.record,
            self.aws,
            settings.output_uri,
            facts,
            self.identity.instance_id,
            time.time(),
        )
