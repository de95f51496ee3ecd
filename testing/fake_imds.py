"""A fake EC2 instance-metadata service (IMDSv2) for tests and the demo.

    python -m testing.fake_imds --port 0          # prints FAKE_IMDS_URL=http://127.0.0.1:PORT

AWS's own metadata mock is a Go binary that cannot be installed here, so this is the repo's
stand-in. It implements what the trainer and the host supervisor rely on:

- the IMDSv2 token flow: ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds``
  returns a token; every ``GET`` without a valid ``X-aws-ec2-metadata-token`` header gets 401;
- ``/latest/meta-data/spot/instance-action``: 404 until :meth:`FakeImds.interrupt` is called, then
  ``{"action": "terminate", "time": "<ISO 8601, two minutes ahead>"}``;
- ``/latest/meta-data/events/recommendations/rebalance``: 404 until
  :meth:`FakeImds.recommend_rebalance`;
- identity: ``instance-id``, ``instance-type``, ``instance-life-cycle``,
  ``placement/availability-zone``, ``placement/region`` and
  ``/latest/dynamic/instance-identity/document``;
- the instance profile's credentials, when it has a role (:class:`InstanceRole`):
  ``/latest/meta-data/iam/security-credentials/`` (the role's name) and
  ``/latest/meta-data/iam/security-credentials/<name>`` (the keys, as the SDKs and the AWS CLI
  read them).

Point clients at it with ``AWS_EC2_METADATA_SERVICE_ENDPOINT=<url>`` (the variable the AWS SDKs
use). Requests are recorded in :attr:`FakeImds.requests` so tests can assert on polling.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN_PATH = "/latest/api/token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"


@dataclass
class InstanceIdentity:
    instance_id: str = "i-0fa4e0000000000001"
    instance_type: str = "g5.xlarge"
    availability_zone: str = "us-east-1a"
    life_cycle: str = "spot"  # "spot" or "on-demand", as EC2 reports instance-life-cycle

    @property
    def region(self) -> str:
        return self.availability_zone[:-1]


@dataclass(frozen=True)
class InstanceRole:
    """The role the instance profile hands out: its name and a session's keys."""

    name: str
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: str = "2099-01-01T00:00:00Z"


@dataclass
class _State:
    identity: InstanceIdentity
    role: InstanceRole | None = None
    tokens: set[str] = field(default_factory=set)
    spot_action: dict | None = None
    rebalance: dict | None = None
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeImds:
    """Start with ``with FakeImds() as imds:``; ``imds.url`` is the endpoint."""

    def __init__(
        self,
        identity: InstanceIdentity | None = None,
        port: int = 0,
        role: InstanceRole | None = None,
    ) -> None:
        self._state = _State(identity=identity or InstanceIdentity(), role=role)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self._state))
        self._server.daemon_threads = True
        # A short poll interval: stop() returns in ~50 ms instead of serve_forever's default 0.5 s.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request served so far."""
        with self._state.lock:
            return list(self._state.requests)

    def interrupt(self, action: str = "terminate", seconds_ahead: int = 120) -> None:
        """Serve a spot interruption notice from now on, as EC2 does two minutes ahead."""
        when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds_ahead)
        with self._state.lock:
            self._state.spot_action = {"action": action, "time": _iso(when)}

    def recommend_rebalance(self) -> None:
        with self._state.lock:
            self._state.rebalance = {"noticeTime": _iso(dt.datetime.now(dt.UTC))}

    def clear(self) -> None:
        with self._state.lock:
            self._state.spot_action = None
            self._state.rebalance = None

    def start(self) -> FakeImds:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeImds:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler_for(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, body: str = "", content_type: str = "text/plain") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            with state.lock:
                state.requests.append((self.command, self.path, status))

        def do_PUT(self) -> None:
            if self.path != TOKEN_PATH:
                return self._send(404)
            ttl = self.headers.get(TTL_HEADER)
            if ttl is None or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                return self._send(400)
            token = secrets.token_urlsafe(24)
            with state.lock:
                state.tokens.add(token)
            self._send(200, token)

        def do_GET(self) -> None:
            with state.lock:
                authorised = self.headers.get(TOKEN_HEADER) in state.tokens
            if not authorised:
                return self._send(401)
            body = self._lookup(self.path)
            if body is None:
                return self._send(404)
            is_json = body.startswith("{")
            self._send(200, body, "application/json" if is_json else "text/plain")

        def _lookup(self, path: str) -> str | None:
            ident = state.identity
            with state.lock:
                spot, rebalance = state.spot_action, state.rebalance
            document = {
                "instanceId": ident.instance_id,
                "instanceType": ident.instance_type,
                "availabilityZone": ident.availability_zone,
                "region": ident.region,
                "accountId": "123456789012",
            }
            table = {
                "/latest/meta-data/instance-id": ident.instance_id,
                "/latest/meta-data/instance-type": ident.instance_type,
                "/latest/meta-data/instance-life-cycle": ident.life_cycle,
                "/latest/meta-data/placement/availability-zone": ident.availability_zone,
                "/latest/meta-data/placement/region": ident.region,
                "/latest/dynamic/instance-identity/document": json.dumps(document),
                "/latest/meta-data/spot/instance-action": json.dumps(spot) if spot else None,
                "/latest/meta-data/events/recommendations/rebalance": (
                    json.dumps(rebalance) if rebalance else None
                ),
            }
            role = state.role
            if role is not None:
                credentials = {
                    "Code": "Success",
                    "LastUpdated": _iso(dt.datetime.now(dt.UTC)),
                    "Type": "AWS-HMAC",
                    "AccessKeyId": role.access_key_id,
                    "SecretAccessKey": role.secret_access_key,
                    "Token": role.session_token,
                    "Expiration": role.expiration,
                }
                table["/latest/meta-data/iam/security-credentials/"] = role.name
                table[f"/latest/meta-data/iam/security-credentials/{role.name}"] = json.dumps(
                    credentials
                )
            return table.get(path)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a fake IMDSv2 on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--instance-type", default="g5.xlarge")
    parser.add_argument("--life-cycle", choices=["spot", "on-demand"], default="spot")
    args = parser.parse_args()
    identity = InstanceIdentity(instance_type=args.instance_type, life_cycle=args.life_cycle)
    imds = FakeImds(identity, port=args.port).start()
    print(f"FAKE_IMDS_URL={imds.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        imds.stop()


if __name__ == "__main__":
    main()
