"""The local cluster's MongoDB-protocol server demands authentication (issue 11, finding 7: it had
none and every Pod could reach it). FerretDB runs with SCRAM ("new auth") and a user whose name
and password `hack/cluster.sh up` generated into .local/cluster/env (mode 600).

Each attack runs against the cluster's real server: no credentials, a wrong password, a wrong
user, and no credentials from inside a Pod. Each asserts the refusal code and that nothing was
written; the generated credentials must still work, also for the installed API.
"""

from __future__ import annotations

import stat
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pymongo
import pytest
from pymongo.errors import OperationFailure

from tests.utils.cluster import STATE, LocalCluster
from tests.utils.platform import Platform

pytestmark = pytest.mark.security

UNAUTHORIZED = 13
AUTHENTICATION_FAILED = 18
DATABASE = "vidpipe-security"
TIMEOUT_MS = 5000


def _client(url: str) -> pymongo.MongoClient[dict[str, Any]]:
    return pymongo.MongoClient(
        url, serverSelectionTimeoutMS=TIMEOUT_MS, connectTimeoutMS=TIMEOUT_MS
    )


@pytest.fixture(scope="module")
def address(cluster: LocalCluster) -> str:
    """host:port of the server, as Pods reach it (the bridge address)."""
    netloc = urlsplit(cluster.mongo_url).netloc
    return netloc.rsplit("@", 1)[-1]


@pytest.fixture
def admin(cluster: LocalCluster) -> Iterator[pymongo.MongoClient[dict[str, Any]]]:
    """A client with the generated credentials; drops this module's scratch database after."""
    client = _client(cluster.mongo_url)
    try:
        yield client
    finally:
        client.drop_database(DATABASE)
        client.close()


def test_credentials_are_generated_and_private(cluster: LocalCluster) -> None:
    env = STATE / "env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    url = urlsplit(cluster.mongo_url)
    assert url.username == cluster.env["VIDPIPE_MONGO_USERNAME"]
    assert url.password == cluster.env["VIDPIPE_MONGO_PASSWORD"]
    password = url.password or ""
    assert len(password) >= 32 and int(password, 16) > 0  # random hex, not a placeholder


def test_an_unauthenticated_client_is_refused(
    address: str, admin: pymongo.MongoClient[dict[str, Any]]
) -> None:
    marker = uuid.uuid4().hex
    with _client(f"mongodb://{address}/") as anonymous:
        # The handshake commands stay open (drivers need them before authenticating) ...
        assert anonymous.admin.command("ping")["ok"] == 1
        # ... and nothing else: no reads, no writes, no listing.
        with pytest.raises(OperationFailure) as write:
            anonymous[DATABASE].probe.insert_one({"marker": marker})
        assert write.value.code == UNAUTHORIZED
        with pytest.raises(OperationFailure) as read:
            anonymous[DATABASE].probe.find_one({})
        assert read.value.code == UNAUTHORIZED
        with pytest.raises(OperationFailure) as listing:
            anonymous.list_database_names()
        assert listing.value.code == UNAUTHORIZED
    assert admin[DATABASE].probe.count_documents({"marker": marker}) == 0


@pytest.mark.parametrize("wrong", ["password", "user"])
def test_wrong_credentials_are_refused(
    cluster: LocalCluster, address: str, admin: pymongo.MongoClient[dict[str, Any]], wrong: str
) -> None:
    user = cluster.env["VIDPIPE_MONGO_USERNAME"]
    password = cluster.env["VIDPIPE_MONGO_PASSWORD"]
    if wrong == "password":
        password = password[:-1] + ("0" if password[-1] != "0" else "1")  # one character off
    else:
        user = f"{user}-x"
    marker = uuid.uuid4().hex
    with _client(f"mongodb://{user}:{password}@{address}/") as intruder:
        with pytest.raises(OperationFailure) as refused:
            intruder[DATABASE].probe.insert_one({"marker": marker})
        assert refused.value.code == AUTHENTICATION_FAILED
    assert admin[DATABASE].probe.count_documents({"marker": marker}) == 0


def test_the_generated_credentials_work(admin: pymongo.MongoClient[dict[str, Any]]) -> None:
    marker = uuid.uuid4().hex
    admin[DATABASE].probe.insert_one({"marker": marker})
    assert admin[DATABASE].probe.find_one({"marker": marker}, {"_id": 0}) == {"marker": marker}


def test_a_pod_without_credentials_is_refused_and_the_api_gets_in(
    platform: Platform, address: str
) -> None:
    """Every Pod can reach the server (no NetworkPolicy enforcement here): only credentials
    keep it out. The API Pod's own URL (from the vidpipe-mongo Secret) does get in."""
    script = (
        "import sys, pymongo\n"
        "from pymongo.errors import OperationFailure\n"
        f"c = pymongo.MongoClient('mongodb://{address}/', serverSelectionTimeoutMS={TIMEOUT_MS})\n"
        "try:\n"
        "    c['vidpipe'].jobs.find_one({})\n"
        "except OperationFailure as e:\n"
        "    print(e.code)\n"
        "    sys.exit(0)\n"
        "print('read without credentials')\n"
        "sys.exit(1)\n"
    )
    pod = platform.api_pod()["metadata"]["name"]
    # The script's URL carries no credentials (pymongo reads none from the environment).
    out = platform.kubectl("exec", pod, "--", "python3", "-c", script)
    assert out.strip() == str(UNAUTHORIZED)
    with platform.client() as http:
        ready = http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["mongodb"]["status"] == "ok"
    secret = platform.get("secret", "vidpipe-mongo")
    assert "url" in secret["data"]
