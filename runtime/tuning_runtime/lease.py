"""The run's lease, ``<outputUri>/lease.json`` (docs/contracts.md section 7): at most one instance
trains a run at a time.

A second instance can meet a run another one trains: a replacement that boots while the old
instance is still checkpointing, an instance whose host died without a word, a redeploy while a
debug-held instance is up. The lease settles it with S3 conditional writes: the holder takes it
with ``If-None-Match: *`` (or ``If-Match`` on the ETag of a released or expired one), renews it
well before it expires, and releases it once its checkpoint is published; anyone else waits for
it to be released or to expire. The trainer's role may not write it (lib/compute.ts).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable

from . import contract
from .aws import AwsError
from .ledger import iso, parse_iso

log = logging.getLogger(__name__)

CONFLICT_CODES = ("PreconditionFailed", "ConditionalRequestConflict")


class LeaseBusyError(RuntimeError):
    """Another instance holds the run and kept renewing while we waited."""

    def __init__(self, holder: str, expires_at: str) -> None:
        super().__init__(f"instance {holder} holds the run (its lease runs to {expires_at})")
        self.holder = holder


class LeaseLostError(RuntimeError):
    """Our lease expired unrenewed or another instance took it: we must stop writing."""


@dataclass(frozen=True)
class LeaseTimings:
    ttl_seconds: float = 300.0  # a holder that stops renewing loses the run after this
    renew_seconds: float = 60.0  # the holder renews this often (well inside the TTL)
    poll_seconds: float = 15.0  # a waiting instance checks this often
    max_wait_seconds: float = 900.0  # a waiting instance gives up after this


class Lease:
    def __init__(
        self,
        aws: object,
        output_uri: str,
        run_id: str,
        holder: str,
        timings: LeaseTimings = LeaseTimings(),
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.aws = aws
        self.uri = f"{output_uri.rstrip('/')}/{contract.LEASE_NAME}"
        self.run_id = run_id
        self.holder = holder
        self.timings = timings
        self.clock = clock
        self.sleep = sleep
        self.expires_at = 0.0
        self._next_renewal = 0.0
        self._keeping: threading.Event | None = None
        self._renewer: threading.Thread | None = None

    # -- taking and keeping it ------------------------------------------------------------

    def acquire(self, say: Callable[[str], None], stopping: Callable[[], bool]) -> None:
        """Hold the lease, waiting while another live holder has it; LeaseBusyError after
        ``max_wait_seconds`` of waiting or when ``stopping()`` (the host goes down)."""
        started = self.clock()
        waiting_for = None
        while True:
            found = self.aws.get_object(self.uri)
            doc, etag = (json.loads(found[0]), found[1]) if found else (None, None)
            free = doc is None or self._is_free(doc)
            if free and self._write(etag):
                if doc and doc.get("holder") not in (None, self.holder):
                    say(f"took over the run's lease from {doc['holder']} ({self._state(doc)})")
                return
            if not free:
                if waiting_for != doc.get("holder"):
                    waiting_for = doc.get("holder")
                    say(
                        f"instance {waiting_for} holds run {self.run_id} (lease to "
                        f"{doc.get('expiresAt')}): waiting for it to be released or to expire"
                    )
                if stopping() or self.clock() - started >= self.timings.max_wait_seconds:
                    raise LeaseBusyError(doc.get("holder", "?"), doc.get("expiresAt", "?"))
                self.sleep(self.timings.poll_seconds)

    def renew_if_due(self) -> None:
        """Renew when due; LeaseLostError when another took it or it expired before we could."""
        now = self.clock()
        if now < self._next_renewal:
            return
        try:
            found = self.aws.get_object(self.uri)
            doc = json.loads(found[0]) if found else None
            if doc is None or doc.get("holder") != self.holder or doc.get("released"):
                raise LeaseLostError(f"the run's lease is no longer ours ({self._state(doc)})")
            if self._write(found[1]):
                return
            raise LeaseLostError("the run's lease changed under us while renewing it")
        except AwsError as error:
            if self.clock() >= self.expires_at:
                raise LeaseLostError(f"the lease expired while S3 failed: {error}") from None
            log.warning("renewing the lease failed (%s); again in %s s", error, 5)
            self._next_renewal = now + 5

    def keep(self, on_lost: Callable[[LeaseLostError], None]) -> None:
        """Renew in the background until :meth:`release` or :meth:`stop_keeping` (an image pull
        or a slow checkpoint outlasts the TTL); ``on_lost`` hears once if the lease is lost."""
        self._keeping = stop = threading.Event()
        tick = min(self.timings.renew_seconds, 5.0)

        def renew() -> None:
            while not stop.wait(tick):
                try:
                    self.renew_if_due()
                except LeaseLostError as lost:
                    on_lost(lost)
                    return

        self._renewer = threading.Thread(target=renew, name="lease-renewal", daemon=True)
        self._renewer.start()

    def stop_keeping(self) -> None:
        """No renewal after this returns (one under way finishes first)."""
        if self._keeping is not None:
            self._keeping.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join(timeout=60)

    def release(self) -> None:
        """Let the next instance take the run at once (after our checkpoint is published)."""
        self.stop_keeping()
        for _ in range(3):
            found = self.aws.get_object(self.uri)
            doc = json.loads(found[0]) if found else None
            if doc is None or doc.get("holder") != self.holder or doc.get("released"):
                return
            doc.update(released=True, releasedAt=iso(self.clock()), writeId=uuid.uuid4().hex)
            try:
                self.aws.put_object(
                    self.uri, self._body(doc), "application/json", if_match=found[1]
                )
                return
            except AwsError as error:
                if error.code not in CONFLICT_CODES:
                    raise

    # -- helpers ------------------------------------------------------------------------------

    def _is_free(self, doc: dict) -> bool:
        if doc.get("holder") == self.holder or doc.get("released"):
            return True
        try:
            return parse_iso(doc["expiresAt"]) <= self.clock()
        except (KeyError, TypeError, ValueError):
            return True  # unreadable: nobody can rely on it

    def _write(self, etag: str | None) -> bool:
        """Write ourselves as holder, conditional on the lease read; False on a conflict."""
        now = self.clock()
        write_id = uuid.uuid4().hex
        doc = {
            "schemaVersion": contract.SCHEMA_VERSION,
            "runId": self.run_id,
            "holder": self.holder,
            "renewedAt": iso(now),
            "expiresAt": iso(now + self.timings.ttl_seconds),
            "released": False,
            "writeId": write_id,
        }
        try:
            self.aws.put_object(
                self.uri,
                self._body(doc),
                "application/json",
                if_match=etag,
                if_none_match=etag is None,
            )
        except AwsError as error:
            if error.code not in CONFLICT_CODES:
                raise
            # Refused, or our own write landed and its retry was refused: the id says which.
            found = self.aws.get_object(self.uri)
            if not found or json.loads(found[0]).get("writeId") != write_id:
                return False
        self.expires_at = now + self.timings.ttl_seconds
        self._next_renewal = now + self.timings.renew_seconds
        return True

    def _state(self, doc: dict | None) -> str:
        if doc is None:
            return "no lease"
        if doc.get("released"):
            return f"released at {doc.get('releasedAt')}"
        return f"held by {doc.get('holder')} to {doc.get('expiresAt')}"

    @staticmethod
    def _body(doc: dict) -> bytes:
        return (json.dumps(doc, indent=2) + "\n").encode()
