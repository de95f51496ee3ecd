"""Interruption requests: SIGTERM (docker stop) and EC2 spot notices seen through IMDSv2.

    AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:PORT tuning-trainer train --config ...

Either one sets :attr:`Interruption.requested`; the training callback then finishes the current
optimizer step, publishes a checkpoint and the trainer exits 75 within the deadline.

"On EC2" is decided by asking IMDSv2 for a session token with a short timeout (the SDKs' own
endpoint variable ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` overrides the link-local address).
``interruption.spot_polling``: ``auto`` polls only when that token request succeeds,
``always`` keeps retrying it, ``never`` does not ask. (Not on/off: YAML 1.1 reads those as
booleans.)
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from types import FrameType

log = logging.getLogger(__name__)

DEFAULT_IMDS_ENDPOINT = "http://169.254.169.254"
TOKEN_TTL_SECONDS = 21600
PROBE_TIMEOUT_SECONDS = 1.0


@dataclass
class Interruption:
    deadline_seconds: float
    requested: threading.Event = field(default_factory=threading.Event)
    reason: str = ""
    requested_at: float | None = None  # time.monotonic() of the first request

    def request(self, reason: str) -> None:
        if self.requested.is_set():
            return
        self.reason = reason
        self.requested_at = time.monotonic()
        self.requested.set()
        log.warning(
            "interruption requested (%s): finishing this step, then checkpoint and exit 75 "
            "within %.0f s",
            reason,
            self.deadline_seconds,
        )

    def seconds_left(self) -> float:
        if self.requested_at is None:
            return self.deadline_seconds
        return self.deadline_seconds - (time.monotonic() - self.requested_at)

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            if signum == signal.SIGINT and self.requested.is_set():
                raise KeyboardInterrupt  # a second Ctrl-C on a laptop: stop without saving
            self.request(signal.Signals(signum).name)

        self._previous = {
            signum: signal.signal(signum, handler) for signum in (signal.SIGTERM, signal.SIGINT)
        }

    def restore_signal_handlers(self) -> None:
        for signum, previous in getattr(self, "_previous", {}).items():
            signal.signal(signum, previous)


class SpotNoticePoller:
    """A daemon thread that polls ``spot/instance-action`` and requests the interruption."""

    def __init__(
        self,
        interruption: Interruption,
        mode: str,
        interval_seconds: float,
        endpoint: str | None = None,
    ) -> None:
        self.interruption = interruption
        self.mode = mode
        self.interval = interval_seconds
        self.endpoint = (
            endpoint or os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or DEFAULT_IMDS_ENDPOINT
        ).rstrip("/")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spot-notice-poller", daemon=True)
        self._token = ""
        self._token_time = 0.0

    def start(self) -> SpotNoticePoller:
        if self.mode != "never":
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._refresh_token():
            if self.mode == "auto":
                log.info("no IMDSv2 at %s: not on EC2, spot notice polling off", self.endpoint)
                return
            if self._stop.wait(self.interval):
                return
        log.info("polling %s for spot notices every %.0f s", self.endpoint, self.interval)
        while not self._stop.is_set() and not self.interruption.requested.is_set():
            notice = self._poll()
            if notice is not None:
                action = notice.get("action", "?")
                self.interruption.request(f"spot {action} notice for {notice.get('time', '?')}")
                return
            self._stop.wait(self.interval)

    def _refresh_token(self) -> bool:
        request = urllib.request.Request(
            f"{self.endpoint}/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)},
        )
        try:
            with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_SECONDS) as response:
                self._token = response.read().decode()
        except (urllib.error.URLError, OSError, TimeoutError):
            return False
        self._token_time = time.monotonic()
        return True

    def _poll(self) -> dict | None:
        if time.monotonic() - self._token_time > TOKEN_TTL_SECONDS / 2:
            self._refresh_token()
        request = urllib.request.Request(
            f"{self.endpoint}/latest/meta-data/spot/instance-action",
            headers={"X-aws-ec2-metadata-token": self._token},
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            if err.code == 401:
                self._refresh_token()
            return None  # 404: no notice
        except (urllib.error.URLError, OSError, TimeoutError, json.JSONDecodeError):
            return None
