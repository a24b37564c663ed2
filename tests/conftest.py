"""Session-wide fixtures: real servers started once per test run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.utils.servers import S3Server, mongo_server, s3_server


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mongo_server(tmp_path_factory.mktemp("mongo")) as url:
        yield url


@pytest.fixture
def bucket(s3: S3Server, request: pytest.FixtureRequest) -> str:
    """A fresh bucket per test, so tests never see each other's objects."""
    import re
    import secrets

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    # A random suffix: parametrized tests share the 40-character prefix, and id() of a request
    # object is often the freed address of the previous one (CreateBucket then answered
    # BucketAlreadyOwnedByYou).
    name = f"t-{name}-{secrets.token_hex(4)}"
    s3.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    return tmp_path
