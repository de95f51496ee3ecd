"""The trainer image of a run, pinned: ``<registry>/<repository>:<tag>`` becomes
``<registry>/<repository>@sha256:...`` at the run's first start (ledger ``imageUri``).

A tag can move (``latest`` does with every build), and a run resumes on other instances over
hours or days: pulling by digest is how every attempt trains with the same code.
"""

from __future__ import annotations

import re

from . import contract
from .aws import AwsError
from .launchers import PrepareError

_ECR_URI = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


def resolve_digest(aws: object, image_uri: str) -> str:
    """``image_uri`` by digest, asking ECR what its tag names now (ecr:DescribeImages)."""
    found = _ECR_URI.match(image_uri)
    if not found:
        raise PrepareError(
            contract.REASON_IMAGE_PULL_FAILED,
            f"image {image_uri} is not an ECR image URI (<account>.dkr.ecr.<region>."
            "amazonaws.com/<repository>:<tag>)",
            [image_uri],
        )
    if found.group("digest"):
        return image_uri
    repository, tag = found.group("repository"), found.group("tag") or "latest"
    try:
        described = aws.call(
            "ecr",
            "DescribeImages",
            {
                "registryId": found.group("account"),
                "repositoryName": repository,
                "imageIds": [{"imageTag": tag}],
            },
        )
    except AwsError as error:
        missing = error.code in ("ImageNotFoundException", "RepositoryNotFoundException")
        why = (
            f"no image tagged {tag} in the repository {repository}: has the image workflow "
            "pushed it? (aws ecr describe-images)"
            if missing
            else f"describing {image_uri} failed: {error}"
        )
        raise PrepareError(contract.REASON_IMAGE_PULL_FAILED, why, [str(error)]) from None
    details = described.get("imageDetails") or [{}]
    digest = details[0].get("imageDigest")
    if not digest:
        raise PrepareError(
            contract.REASON_IMAGE_PULL_FAILED, f"ECR returned no digest for {image_uri}", []
        )
    registry = image_uri.split("/", 1)[0]
    return f"{registry}/{repository}@{digest}"


def record(ledger: dict, image_uri: str) -> dict:
    """The first start's image stays the run's image."""
    if not ledger.get("imageUri"):
        ledger["imageUri"] = image_uri
    return ledger
