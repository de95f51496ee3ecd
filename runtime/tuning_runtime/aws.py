"""The supervisor's one door to AWS: the AWS CLI the Deep Learning AMI ships, called as a process.

The Base OSS DLAMI (Ubuntu 22.04) ships AWS CLI v1 (the `awscli` 1.4x package, on its
python3.10) and no boto3 for the system python3, so the supervisor stays standard-library only
and works with v1 as with v2: every call names ``--region`` (v1 ignores ``AWS_REGION``), and the
ledger and the lease need conditional writes (``put-object --if-match``/``--if-none-match``),
which v1 has from 1.36.10 and v2 from 2.22.5 (:func:`check_cli_version`).

Requests are the API's own shapes (``{"InstanceIds": [...]}``) passed with ``--cli-input-json``;
the same shapes work with :class:`Boto3Aws`, which the unit tests use because starting the CLI
costs ~0.7 s per call there. Both honour ``AWS_ENDPOINT_URL`` (moto in tests and the demo).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import tempfile
from typing import Any

_ERROR_CODE = re.compile(r"An error occurred \(([^)]+)\)")
MISSING_CODES = ("NoSuchKey", "404", "NotFound")
# S3 answers 403, not 404, for a missing key unless the caller may list the bucket unconditioned;
# the instance role may list its run prefix only, so a 403 is settled by listing that key.
DENIED_CODES = ("AccessDenied", "403")
CALL_TIMEOUT_SECONDS = 120
UPLOAD_TIMEOUT_SECONDS = 600


# The first releases whose `s3api put-object` has --if-match (If-None-Match came earlier).
MIN_CLI_VERSIONS = {1: (1, 36, 10), 2: (2, 22, 5)}


class AwsError(RuntimeError):
    def __init__(self, operation: str, code: str, message: str) -> None:
        super().__init__(f"{operation} failed: {message.strip()}")
        self.operation = operation
        self.code = code


def _kebab(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", operation).lower()


def _listed(aws: object, uri: str) -> bool:
    """Whether the object exists, by listing its exact key (allowed under the run prefix)."""
    bucket, key = split_s3_uri(uri)
    found = aws.call("s3", "ListObjectsV2", {"Bucket": bucket, "Prefix": key, "MaxKeys": 1})
    return any(item.get("Key") == key for item in found.get("Contents", []))


def check_cli_version(text: str) -> str | None:
    """None when ``aws --version`` output names a CLI that writes conditionally, else why not."""
    found = re.search(r"aws-cli/(\d+)\.(\d+)\.(\d+)", text)
    if not found:
        return f"cannot read the AWS CLI version from {text!r}"
    version = tuple(int(part) for part in found.groups())
    needed = MIN_CLI_VERSIONS.get(version[0])
    if needed is None or version < needed:
        wanted = " or ".join(".".join(map(str, v)) + "+" for v in MIN_CLI_VERSIONS.values())
        return (
            f"AWS CLI {'.'.join(map(str, version))} cannot write S3 objects conditionally "
            f"(put-object --if-match), which the ledger and the run lease need; install {wanted}"
        )
    return None


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"expected an s3:// URI; got '{uri}'")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


class AwsCli:
    """Calls ``aws <service> <operation> --cli-input-json ... --output json``."""

    def __init__(self, region: str, executable: str = "aws") -> None:
        self.region = region
        self.executable = executable
        self._env = dict(os.environ)
        self._env.setdefault("AWS_RETRY_MODE", "standard")
        self._env.setdefault("AWS_MAX_ATTEMPTS", "5")
        self._env["AWS_PAGER"] = ""  # CLI v2 would page output through less

    def _run(
        self, operation: str, args: list, timeout: float = CALL_TIMEOUT_SECONDS
    ) -> subprocess.CompletedProcess:
        argv = [self.executable, *args, "--region", self.region]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, env=self._env, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise AwsError(operation, "CliUnavailable", str(error)) from None
        if done.returncode != 0:
            match = _ERROR_CODE.search(done.stderr)
            raise AwsError(operation, match.group(1) if match else "CliError", done.stderr)
        return done

    def call(self, service: str, operation: str, params: dict | None = None) -> dict:
        command = "s3api" if service == "s3" else service  # `aws s3` is the high-level one
        args = [command, _kebab(operation), "--output", "json"]
        # The request as a file: an SNS message with log lines could exceed what one command-line
        # argument may hold.
        with tempfile.NamedTemporaryFile("w", suffix=".json") as request:
            if params:
                json.dump(params, request)
                request.flush()
                args += ["--cli-input-json", f"file://{request.name}"]
            out = self._run(operation, args).stdout.strip()
        return json.loads(out) if out else {}

    def get_object(self, uri: str) -> tuple[bytes, str] | None:
        """(body, ETag) of an object, or None when it does not exist."""
        bucket, key = split_s3_uri(uri)
        with tempfile.TemporaryDirectory() as tmp:
            target = os.path.join(tmp, "body")
            args = ["s3api", "get-object", "--bucket", bucket, "--key", key, target]
            try:
                done = self._run("GetObject", [*args, "--output", "json"])
            except AwsError as error:
                if error.code in MISSING_CODES:
                    return None
                if error.code in DENIED_CODES and not _listed(self, uri):
                    return None
                raise
            with open(target, "rb") as body:
                return body.read(), json.loads(done.stdout)["ETag"]

    def put_object(
        self,
        uri: str,
        body: bytes,
        content_type: str,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> None:
        """Write an object; ``if_match``/``if_none_match`` make it conditional (412 -> AwsError)."""
        bucket, key = split_s3_uri(uri)
        with tempfile.NamedTemporaryFile() as tmp:
            tmp.write(body)
            tmp.flush()
            args = ["s3api", "put-object", "--bucket", bucket, "--key", key, "--body", tmp.name]
            args += ["--content-type", content_type, "--output", "json"]
            conditions = ["--if-match", if_match] if if_match else []
            conditions += ["--if-none-match", "*"] if if_none_match else []
            # No unconditional fallback: the lease and the ledger are only safe conditional.
            self._run("PutObject", args + conditions)

    def object_exists(self, uri: str) -> bool:
        bucket, key = split_s3_uri(uri)
        try:
            self._run("HeadObject", ["s3api", "head-object", "--bucket", bucket, "--key", key])
        except AwsError as error:
            if error.code in MISSING_CODES:
                return False
            if error.code in DENIED_CODES:
                return _listed(self, uri)
            raise
        return True

    def upload_file(self, path: str, uri: str) -> None:
        self._run("Upload", ["s3", "cp", "--only-show-errors", path, uri], UPLOAD_TIMEOUT_SECONDS)

    def ecr_password(self) -> str:
        return self._run("GetLoginPassword", ["ecr", "get-login-password"]).stdout.strip()

    def version(self) -> str:
        """What ``aws --version`` prints, e.g. ``aws-cli/1.44.28 Python/3.10.12 Linux/...``."""
        done = self._run("Version", ["--version"])
        return (done.stdout or done.stderr).strip()


class Boto3Aws:
    """The same interface through boto3, for Python environments that have it (the tests)."""

    def __init__(self, region: str) -> None:
        import boto3  # only where boto3 exists; the instance uses AwsCli

        self.region = region
        self._session = boto3.session.Session(region_name=region)
        self._clients: dict = {}

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(service)
        return self._clients[service]

    def _call(self, service: str, operation: str, params: dict) -> dict:
        from botocore.exceptions import BotoCoreError, ClientError

        method = getattr(self._client(service), re.sub(r"-", "_", _kebab(operation)))
        try:
            response = method(**params)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "ClientError")
            raise AwsError(operation, str(code), str(error)) from None
        except BotoCoreError as error:
            raise AwsError(operation, "BotoCoreError", str(error)) from None
        response.pop("ResponseMetadata", None)
        return response

    def call(self, service: str, operation: str, params: dict | None = None) -> dict:
        return json.loads(json.dumps(self._call(service, operation, params or {}), default=str))

    def get_object(self, uri: str) -> tuple[bytes, str] | None:
        bucket, key = split_s3_uri(uri)
        try:
            response = self._call("s3", "GetObject", {"Bucket": bucket, "Key": key})
        except AwsError as error:
            if error.code in MISSING_CODES:
                return None
            if error.code in DENIED_CODES and not _listed(self, uri):
                return None
            raise
        return response["Body"].read(), response["ETag"]

    def put_object(
        self,
        uri: str,
        body: bytes,
        content_type: str,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> None:
        bucket, key = split_s3_uri(uri)
        params: dict = {"Bucket": bucket, "Key": key, "Body": body, "ContentType": content_type}
        if if_match:
            params["IfMatch"] = if_match
        if if_none_match:
            params["IfNoneMatch"] = "*"
        self._call("s3", "PutObject", params)

    def object_exists(self, uri: str) -> bool:
        bucket, key = split_s3_uri(uri)
        try:
            self._call("s3", "HeadObject", {"Bucket": bucket, "Key": key})
        except AwsError as error:
            if error.code in MISSING_CODES:
                return False
            if error.code in DENIED_CODES:
                return _listed(self, uri)
            raise
        return True

    def upload_file(self, path: str, uri: str) -> None:
        bucket, key = split_s3_uri(uri)
        with open(path, "rb") as body:
            self._call("s3", "PutObject", {"Bucket": bucket, "Key": key, "Body": body})

    def ecr_password(self) -> str:
        token = self._call("ecr", "GetAuthorizationToken", {})["authorizationData"][0]
        return base64.b64decode(token["authorizationToken"]).decode().partition(":")[2]
