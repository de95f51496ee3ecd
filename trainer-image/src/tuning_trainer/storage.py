"""Local folders and s3:// prefixes behind one small interface.

    AWS_ENDPOINT_URL=http://127.0.0.1:PORT tuning-trainer train --config s3://bucket/cfg.yaml

S3 goes through boto3 with adaptive retries and honours ``AWS_ENDPOINT_URL`` (moto in tests and
the demo). Large files use boto3's managed transfer, which switches to multipart above
:data:`MULTIPART_THRESHOLD_BYTES`.
"""

from __future__ import annotations

import functools
import os
import posixpath
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MULTIPART_THRESHOLD_BYTES = 64 * 1024 * 1024
S3_SCHEME = "s3://"


def is_s3(uri: str) -> bool:
    return uri.startswith(S3_SCHEME)


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len(S3_SCHEME) :].partition("/")
    if not bucket:
        raise ValueError(f"not an s3:// URI with a bucket: {uri!r}")
    return bucket, key


def is_absolute(uri: str) -> bool:
    return is_s3(uri) or os.path.isabs(uri)


def absolute(uri: str) -> str:
    return uri if is_s3(uri) else os.path.abspath(os.path.expanduser(uri))


def parent(uri: str) -> str:
    """The folder holding ``uri``: ``s3://b/p/config.yaml`` -> ``s3://b/p/``."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        folder = posixpath.dirname(key)
        return f"{S3_SCHEME}{bucket}/{folder + '/' if folder else ''}"
    return os.path.dirname(os.path.abspath(uri))


def join(base: str, relative: str) -> str:
    if is_absolute(relative):
        return relative
    if is_s3(base):
        bucket, key = split_s3(base)
        joined = posixpath.normpath(posixpath.join(key or ".", relative))
        return f"{S3_SCHEME}{bucket}/{'' if joined == '.' else joined}"
    return os.path.normpath(os.path.join(base, relative))


@functools.cache
def s3_client():
    import boto3
    from botocore.config import Config

    addressing = "path" if os.environ.get("AWS_ENDPOINT_URL") else "auto"
    config = Config(
        retries={"max_attempts": 10, "mode": "adaptive"},
        s3={"addressing_style": addressing},
        connect_timeout=10,
        read_timeout=60,
    )
    return boto3.session.Session().client("s3", config=config)


def _transfer_config():
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD_BYTES,
        multipart_chunksize=MULTIPART_THRESHOLD_BYTES,
        max_concurrency=8,
    )


def read_bytes(uri: str) -> bytes:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        client = s3_client()
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            raise FileNotFoundError(uri) from None
        except client.exceptions.NoSuchBucket:
            raise FileNotFoundError(f"{uri} (no such bucket)") from None
    return Path(uri).read_bytes()


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def exists(uri: str) -> bool:
    """A file, or a folder / prefix holding at least one file."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        key = key.rstrip("/")
        try:
            page = s3_client().list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=2)
        except s3_client().exceptions.NoSuchBucket:
            return False
        return any(
            item["Key"] == key or item["Key"].startswith(f"{key}/" if key else "")
            for item in page.get("Contents", [])
        )
    return os.path.exists(uri)


def download_tree(uri: str, local_dir: str | Path) -> None:
    """Copy every object under the prefix ``uri`` into ``local_dir``."""
    store = Store(uri)
    for relative in store.list(""):
        store.download(relative, Path(local_dir) / relative)


@dataclass(frozen=True)
class Store:
    """A run folder (``runs/<run-id>``) on local disk or under an s3:// prefix.

    Paths given to the methods are relative to the root and use ``/``.
    """

    root: str

    def uri(self, relative: str) -> str:
        return join(self.root.rstrip("/") + "/", relative) if relative else self.root

    def _key(self, relative: str) -> tuple[str, str]:
        bucket, key = split_s3(self.root)
        prefix = key.rstrip("/")
        return bucket, f"{prefix}/{relative}" if prefix else relative

    def upload(self, local: str | Path, relative: str) -> None:
        if is_s3(self.root):
            bucket, key = self._key(relative)
            s3_client().upload_file(str(local), bucket, key, Config=_transfer_config())
            return
        target = Path(self.uri(relative))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(local, tmp)
        os.replace(tmp, target)

    def put_bytes(self, relative: str, data: bytes) -> None:
        if is_s3(self.root):
            bucket, key = self._key(relative)
            s3_client().put_object(Bucket=bucket, Key=key, Body=data)
            return
        target = Path(self.uri(relative))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)  # readers never see a half-written file

    def get_bytes(self, relative: str) -> bytes:
        return read_bytes(self.uri(relative))

    def download(self, relative: str, local: str | Path) -> None:
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        if is_s3(self.root):
            bucket, key = self._key(relative)
            s3_client().download_file(bucket, key, str(local), Config=_transfer_config())
        else:
            shutil.copyfile(self.uri(relative), local)

    def list(self, prefix: str) -> Iterator[str]:
        """Relative paths of every file under ``prefix`` (a folder path or '')."""
        if is_s3(self.root):
            bucket, key = self._key(prefix)
            root_len = len(self._key("")[1])
            paginator = s3_client().get_paginator("list_objects_v2")
            try:
                for page in paginator.paginate(Bucket=bucket, Prefix=key):
                    for item in page.get("Contents", []):
                        yield item["Key"][root_len:]
            except s3_client().exceptions.NoSuchBucket:
                return
            return
        base = Path(self.uri(prefix)) if prefix else Path(self.root)
        if not base.exists():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.endswith(".tmp"):
                yield path.relative_to(self.root).as_posix()

    def sizes(self, prefix: str) -> dict[str, int]:
        """Every file under ``prefix`` with its size in bytes (one listing, no downloads)."""
        if is_s3(self.root):
            bucket, key = self._key(prefix)
            root_len = len(self._key("")[1])
            found: dict[str, int] = {}
            paginator = s3_client().get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=key):
                for item in page.get("Contents", []):
                    relative = item["Key"][root_len:]
                    if relative and not relative.endswith("/"):  # skip console "folder" keys
                        found[relative] = item["Size"]
            return found
        return {relative: Path(self.uri(relative)).stat().st_size for relative in self.list(prefix)}

    def subfolders(self, prefix: str) -> list[str]:
        """Names of the folders directly under ``prefix`` (e.g. checkpoint step folders)."""
        prefix = prefix.rstrip("/") + "/"
        if is_s3(self.root):
            bucket, key = self._key(prefix)
            paginator = s3_client().get_paginator("list_objects_v2")
            names = []
            for page in paginator.paginate(Bucket=bucket, Prefix=key, Delimiter="/"):
                for common in page.get("CommonPrefixes", []):
                    names.append(common["Prefix"][len(key) :].rstrip("/"))
            return sorted(names)
        base = Path(self.uri(prefix))
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def delete(self, relative: str) -> None:
        """Remove one file (no error when it is already gone)."""
        if is_s3(self.root):
            bucket, key = self._key(relative)
            s3_client().delete_object(Bucket=bucket, Key=key)
            return
        Path(self.uri(relative)).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        if is_s3(self.root):
            bucket, _ = self._key(prefix)
            keys = [self._key(relative)[1] for relative in self.list(prefix)]
            for start in range(0, len(keys), 1000):
                chunk = [{"Key": k} for k in keys[start : start + 1000]]
                s3_client().delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
            return
        shutil.rmtree(self.uri(prefix), ignore_errors=True)
