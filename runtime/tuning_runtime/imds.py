"""IMDSv2 client: the instance's identity and its spot interruption / rebalance notices.

``AWS_EC2_METADATA_SERVICE_ENDPOINT`` (the AWS SDKs' own variable) points it at
testing/fake_imds.py in tests and the demo.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from . import contract

DEFAULT_ENDPOINT = "http://169.254.169.254"
TOKEN_TTL_SECONDS = 21600
REQUEST_TIMEOUT_SECONDS = 2.0


class ImdsError(RuntimeError):
    pass


@dataclass(frozen=True)
class Identity:
    instance_id: str
    instance_type: str
    availability_zone: str
    market: str  # "spot" or "on-demand", as the ledger spells it


@dataclass(frozen=True)
class Notice:
    action: str  # terminate | stop | hibernate (spot/instance-action)
    time: str  # when EC2 acts
    reason: str  # the ledger reason this notice leads to


class Imds:
    def __init__(self, endpoint: str | None = None) -> None:
        chosen = endpoint or os.environ.get(contract.ENV_IMDS_ENDPOINT) or DEFAULT_ENDPOINT
        self.endpoint = chosen.rstrip("/")
        self._token = ""
        self._token_expires = 0.0

    def _refresh_token(self) -> None:
        request = urllib.request.Request(
            f"{self.endpoint}/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)},
        )
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            self._token = response.read().decode()
        self._token_expires = time.monotonic() + TOKEN_TTL_SECONDS - 60

    def get(self, path: str) -> str | None:
        """The body at ``path``, or None when IMDS answers 404 (no such data, e.g. no notice)."""
        for _ in range(2):  # a second try with a fresh token after a 401
            try:
                if time.monotonic() >= self._token_expires:
                    self._refresh_token()
                request = urllib.request.Request(
                    f"{self.endpoint}{path}", headers={"X-aws-ec2-metadata-token": self._token}
                )
                with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
                    return response.read().decode()
            except urllib.error.HTTPError as error:
                if error.code == 404:
                    return None
                if error.code != 401:
                    raise ImdsError(f"IMDS {path}: HTTP {error.code}") from None
                self._token_expires = 0.0
            except (OSError, ValueError) as error:
                raise ImdsError(f"IMDS {path}: {error}") from None
        raise ImdsError(f"IMDS {path}: token refused")

    def identity(self) -> Identity:
        document = json.loads(self.get("/latest/dynamic/instance-identity/document") or "{}")
        life_cycle = self.get("/latest/meta-data/instance-life-cycle") or "on-demand"
        try:
            return Identity(
                instance_id=document["instanceId"],
                instance_type=document["instanceType"],
                availability_zone=document["availabilityZone"],
                market="spot" if life_cycle == "spot" else "on-demand",
            )
        except KeyError as missing:
            raise ImdsError(f"instance identity document lacks {missing}") from None

    def notice(self) -> Notice | None:
        """A spot interruption notice (stop, hibernate or terminate in two minutes), else None."""
        action = self.get("/latest/meta-data/spot/instance-action")
        if action:
            body = json.loads(action)
            return Notice(body.get("action", "terminate"), body.get("time", ""), _SPOT)
        return None

    def rebalance_recommended(self) -> str | None:
        """When EC2 recommended rebalancing, else None. Only logged: capacity rebalancing is off
        and a recommendation may never turn into an interruption, so the run stays put until a
        spot notice (docs/architecture.md)."""
        rebalance = self.get("/latest/meta-data/events/recommendations/rebalance")
        return json.loads(rebalance).get("noticeTime", "") if rebalance else None


_SPOT = contract.REASON_SPOT_INTERRUPTION
