"""Trainer images in an emulated ECR repository, pushed the way ``docker push`` pushes one: the
layer and the config blob uploaded (InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload,
after BatchCheckLayerAvailability), then the manifest (PutImage). These are the registry calls
ECR authorizes a push with, so a push under the GitHub role's credentials exercises its policy.

    digest = push_image(boto3.client("ecr"), "trainer", "latest", build="build-1")
"""

from __future__ import annotations

import hashlib
import json

LAYER_MEDIA_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def push_image(ecr, repository: str, tag: str, build: str) -> str:
    """Push a small image whose content depends on ``build`` (so each build has its own digest);
    returns the image digest ECR reports."""
    blobs = [
        (CONFIG_MEDIA_TYPE, json.dumps({"build": build}).encode()),
        (LAYER_MEDIA_TYPE, f"layer of {build}".encode()),
    ]
    described = []
    for media_type, blob in blobs:
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        present = ecr.batch_check_layer_availability(
            repositoryName=repository, layerDigests=[digest]
        )["layers"]
        if not present or present[0].get("layerAvailability") != "AVAILABLE":
            upload = ecr.initiate_layer_upload(repositoryName=repository)["uploadId"]
            ecr.upload_layer_part(
                repositoryName=repository,
                uploadId=upload,
                partFirstByte=0,
                partLastByte=len(blob) - 1,
                layerPartBlob=blob,
            )
            ecr.complete_layer_upload(
                repositoryName=repository, uploadId=upload, layerDigests=[digest]
            )
        described.append({"mediaType": media_type, "size": len(blob), "digest": digest})
    config, *layers = described
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config,
        "layers": layers,
    }
    image = ecr.put_image(
        repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag
    )
    return image["image"]["imageId"]["imageDigest"]
