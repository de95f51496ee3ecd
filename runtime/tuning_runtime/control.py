"""The operator's stop request, ``<outputUri>/control/stop-request.json`` (docs/contracts.md
section 9), which ``npx tuning-lab stop`` writes from the operator's machine.

An S3 object in the run's own prefix rather than SSM Run Command or a tag: the instance role may
already read its run's prefix, so the channel adds no permission to it; the request outlives the
instance, so a spot replacement that boots after it honours it too; and it works against the
emulator as against AWS. The trainer's role may not write or delete it (lib/compute.ts).

A request counts once: the supervisor that honours it copies it into the ledger
(``operatorStop``), and a request whose ``requestId`` the ledger already holds is spent, so a
later redeploy of the same run resumes instead of stopping again.
"""

from __future__ import annotations

import json
import logging

from . import contract

log = logging.getLogger(__name__)

MAX_BYTES = 16 * 1024


def stop_request_uri(output_uri: str) -> str:
    return f"{output_uri.rstrip('/')}/{contract.STOP_REQUEST_NAME}"


def read_stop_request(aws: object, output_uri: str) -> dict | None:
    """The stop request, or None when there is none (or it is unreadable: it is ignored)."""
    found = aws.get_object(stop_request_uri(output_uri))
    if found is None:
        return None
    try:
        request = json.loads(found[0][:MAX_BYTES])
    except ValueError:
        log.warning("ignoring an unreadable stop request")
        return None
    if not isinstance(request, dict) or not isinstance(request.get("requestId"), str):
        log.warning("ignoring a stop request without a requestId")
        return None
    return request


def is_pending(request: dict | None, ledger: dict | None) -> bool:
    """Whether ``request`` still asks for a stop: not yet honoured by any instance of the run."""
    if request is None:
        return False
    honoured = (ledger or {}).get("operatorStop") or {}
    return request["requestId"] != honoured.get("requestId")


def describe(request: dict) -> str:
    who = request.get("requestedBy") or "the operator"
    return f"stop requested by {who} at {request.get('requestedAt') or '?'}"
