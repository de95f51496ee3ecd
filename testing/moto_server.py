"""moto's server mode on 127.0.0.1, as the emulated AWS for tests and the demo.

    python -m testing.moto_server   # prints MOTO_URL=http://127.0.0.1:PORT; runs until stdin closes

In Python: ``with MotoServer() as moto: ...`` then ``moto.env()`` gives the environment a real SDK
client (boto3, AWS SDK v3, the AWS CLI, the CDK CLI) needs to reach it; ``moto.reset()`` empties
every emulated service between tests. From Node (jest), spawn the command above and read the line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import urllib.request
from collections.abc import Callable, Iterator

from moto.server import ThreadedMotoServer

from testing import sagemaker_jobs, service_quotas

REGION = "us-east-1"
# moto accepts any credentials; these are obviously fake so nothing ever reaches a real account.
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


class SkippedTypes(logging.Handler):
    """Collects the resource types moto's CloudFormation skips (it logs one warning per
    resource), to name each once: ``announce`` hears a type the first time it is skipped. moto's
    other warnings go to stderr as they come."""

    PATTERN = re.compile(r"^No Moto CloudFormation support for (\S+)$")

    def __init__(self, announce: Callable[[str], None] | None = None) -> None:
        super().__init__(logging.WARNING)
        self.types: set[str] = set()
        self.announce = announce

    def emit(self, record: logging.LogRecord) -> None:
        found = self.PATTERN.match(record.getMessage())
        if not found:
            sys.stderr.write(self.format(record) + "\n")
        elif found.group(1) not in self.types:
            self.types.add(found.group(1))
            if self.announce:
                self.announce(found.group(1))

    @contextlib.contextmanager
    def installed(self) -> Iterator[SkippedTypes]:
        """In place of moto's own log output while the block runs."""
        moto_log = logging.getLogger("moto")
        saved = moto_log.propagate
        moto_log.addHandler(self)
        moto_log.propagate = False
        try:
            yield self
        finally:
            moto_log.removeHandler(self)
            moto_log.propagate = saved


class MotoServer:
    def __init__(self, port: int = 0) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.url = ""

    def start(self) -> MotoServer:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        service_quotas.install()  # EC2's vCPU quotas, which moto lacks (for the doctor)
        sagemaker_jobs.install()  # training jobs that run, fail and stop (the job controller)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        """Forget every emulated resource (moto's /moto-api/reset)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def env(self, region: str = REGION) -> dict[str, str]:
        """Environment variables that point AWS clients at this server with dummy credentials."""
        return {
            **DUMMY_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            # No profile or shared config on the machine may leak into a test.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    with MotoServer() as moto:
        print(f"MOTO_URL={moto.url}", flush=True)
        sys.stdin.read()  # the parent closes stdin (or exits) to stop the server


if __name__ == "__main__":
    main()
