"""The trainer's AWS credentials (docs/contracts.md section 3b): short-lived keys of the trainer
role, never the instance role's.

The trainer container is untrusted code (remote model code, a bad image) and IMDS answers only
the host (hop limit 1), so the supervisor assumes the trainer role (read the datasets, write the
run's checkpoints and model; not the ledger, the lease, the capacity or the run settings) and
hands the keys over as a file in the run folder. The trainer's AWS config names that file in a
``credential_process`` (``cat <file>``), which botocore re-runs on its own 15 minutes before the
keys expire; a chained role session lasts at most an hour, so the supervisor rewrites the file
with fresh keys every :data:`REFRESH_SECONDS`, long before that.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from typing import Callable

from . import contract
from .ledger import iso, parse_iso

log = logging.getLogger(__name__)

SESSION_SECONDS = 3600  # the most a chained role session may last
REFRESH_SECONDS = 1200  # fresh keys this often: every file the trainer reads has >= 40 min left
RETRY_SECONDS = 30


class TrainerCredentials:
    def __init__(
        self,
        aws: object,
        role_arn: str,
        session_name: str,
        folder: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.aws = aws
        self.role_arn = role_arn
        # Session names allow [\w+=,.@-], 2 to 64 characters.
        self.session_name = re.sub(r"[^\w+=,.@-]", "-", session_name)[:64]
        self.path = os.path.join(folder, contract.CREDENTIALS_NAME)
        self.clock = clock
        self.expires_at = 0.0
        self._next_refresh = 0.0

    def refresh(self) -> None:
        """Assume the trainer role and write its keys, atomically (the trainer may be reading)."""
        found = self.aws.call(
            "sts",
            "AssumeRole",
            {
                "RoleArn": self.role_arn,
                "RoleSessionName": self.session_name,
                "DurationSeconds": SESSION_SECONDS,
            },
        )["Credentials"]
        expires_at = parse_iso(str(found["Expiration"]))
        document = {
            "Version": 1,
            "AccessKeyId": found["AccessKeyId"],
            "SecretAccessKey": found["SecretAccessKey"],
            "SessionToken": found["SessionToken"],
            "Expiration": iso(expires_at),
        }
        folder = os.path.dirname(self.path)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".credentials-")
        # Readable by the container's user (the folder is root's and mounted read-only); every
        # refresh, not just the first, since mkstemp makes a file only its owner may read.
        os.fchmod(handle, 0o644)
        with os.fdopen(handle, "w") as out:
            json.dump(document, out)
        os.replace(temporary, self.path)
        self.expires_at = expires_at
        self._next_refresh = self.clock() + REFRESH_SECONDS

    def refresh_if_due(self) -> None:
        """Refresh when due; a failure is retried soon, and only logged while the keys last."""
        if self.clock() < self._next_refresh:
            return
        try:
            self.refresh()
        except Exception as error:  # any failure: retried soon, the old keys still work
            self._next_refresh = self.clock() + RETRY_SECONDS
            left = self.expires_at - self.clock()
            log.warning("renewing the trainer's credentials failed (%s); %.0f s left", error, left)
