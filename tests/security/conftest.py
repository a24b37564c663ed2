"""Attacks on the real platform: the chart installed into the local cluster with the real images.

One release for the whole security session (installing takes ~30 s); each test asserts the
refusal, that the API Pod did not restart, and that nothing was left behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.utils.cluster import LocalCluster, local_cluster
from tests.utils.platform import Platform, installed

RELEASE = "vidpipe-sec"


@pytest.fixture(scope="session")
def cluster() -> LocalCluster:
    return local_cluster()


@pytest.fixture(scope="session")
def platform(cluster: LocalCluster) -> Iterator[Platform]:
    with installed(cluster, RELEASE) as platform:
        yield platform


@pytest.fixture
def tenant(platform: Platform) -> str:
    """A fresh owner's API key, so counts in MongoDB are this test's own."""
    return platform.create_key(f"sec-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="session")
def s3(cluster: LocalCluster) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=cluster.env["VIDPIPE_S3_ENDPOINT_URL"],
        aws_access_key_id=cluster.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=cluster.env["AWS_SECRET_ACCESS_KEY"],
        region_name=cluster.env.get("AWS_REGION", "us-east-1"),
    )


def object_keys(s3: Any, bucket: str) -> set[str]:
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.update(o["Key"] for o in page.get("Contents", []))
    return keys
