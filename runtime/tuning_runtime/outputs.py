"""What the trainer published, as anyone reading the run sees it (docs/contracts.md section 3a).

A final model exists only if ``final/manifest.json`` parses and every file it lists is in S3
with the listed size. (The sha256 sums are left to whoever downloads the files: fetching a 15 GB
model to check them would not fit in the minute the supervisor has to finish.)
"""

from __future__ import annotations

import json

from . import contract
from .aws import split_s3_uri


def listed_sizes(aws: object, prefix_uri: str) -> dict:
    """Key -> size of every object under an s3:// prefix."""
    bucket, prefix = split_s3_uri(prefix_uri)
    sizes: dict = {}
    params: dict = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = aws.call("s3", "ListObjectsV2", params)
        sizes.update({item["Key"]: item["Size"] for item in page.get("Contents", [])})
        if not page.get("NextContinuationToken"):
            return sizes
        params["ContinuationToken"] = page["NextContinuationToken"]


def final_model_problem(aws: object, output_uri: str) -> str | None:
    """None when the final model is complete, else what is wrong with it. S3 errors propagate."""
    folder = f"{output_uri.rstrip('/')}/{contract.FINAL_DIR}/"
    found = aws.get_object(folder + contract.MANIFEST_NAME)
    if found is None:
        return f"{folder}{contract.MANIFEST_NAME} does not exist"
    try:
        manifest = json.loads(found[0])
        files = {entry["path"]: entry["size"] for entry in manifest["files"]}
    except (ValueError, KeyError, TypeError) as error:
        return f"{folder}{contract.MANIFEST_NAME} is not a valid manifest ({error})"
    _, prefix = split_s3_uri(folder)
    sizes = listed_sizes(aws, folder)
    for path, size in sorted(files.items()):
        if sizes.get(prefix + path) != size:
            got = sizes.get(prefix + path)
            seen = "missing" if got is None else f"{got} bytes"
            return f"{folder}{path}: the manifest says {size} bytes, S3 has {seen}"
    return None
