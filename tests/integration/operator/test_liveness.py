"""The operator's /healthz on the real cluster: the resync loop keeps it alive while idle, and it
answers while the replica waits for the Lease (a follower is alive, not stuck)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import kubernetes
import pytest

from tests.integration.operator.conftest import OperatorProcess, operator_env, wait_for
from tests.utils.servers import S3Server, free_port

pytestmark = pytest.mark.integration


def healthz(port: int) -> dict[str, float | str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        body: dict[str, float | str] = json.loads(resp.read())
        return body


Start = Callable[[str, str], tuple[OperatorProcess, int]]


@pytest.fixture
def start_operator(
    namespace: str, mongo_url: str, s3: S3Server, output_bucket: str, tmp_path: Path
) -> Start:
    """`start_operator(lease, stale_seconds)`: an operator resyncing every second, with its
    /healthz on the port returned."""

    def start(lease: str, stale: str) -> tuple[OperatorProcess, int]:
        port = free_port()
        env = operator_env(
            namespace,
            mongo_url,
            s3,
            output_bucket,
            VIDPIPE_OPERATOR_LIVENESS_PORT=str(port),
            VIDPIPE_OPERATOR_RESYNC_SECONDS="1",
            VIDPIPE_OPERATOR_SLOT_RETRY_SECONDS="1",
            VIDPIPE_OPERATOR_LIVENESS_STALE_SECONDS=stale,
            VIDPIPE_OPERATOR_LEASE_NAME=lease,
        )
        proc = OperatorProcess(env, tmp_path / "operator.log")
        proc.start()
        return proc, port

    return start


def test_an_idle_operator_stays_alive_through_resync_rounds(start_operator: Start) -> None:
    # No VideoJob exists, so no watch event arrives: only the resync loop beats. Fails if it
    # stopped beating (the age would grow past the 2 s rounds) or if nothing served /healthz.
    proc, port = start_operator("vidpipe-liveness-test", "30")
    try:
        wait_for("/healthz", lambda: _answers(port), 60, on_timeout=proc.log_tail)
        ages = []
        for _ in range(4):  # across several resync rounds, well past the first beat at start
            wait_for("a resync round", lambda: _answers(port), 30)
            body = healthz(port)
            assert body["status"] == "ok"
            ages.append(float(body["secondsSinceLastActivity"]))
            time.sleep(2.5)
        assert max(ages) < 5, (ages, proc.log_tail())
    finally:
        proc.stop()


def _answers(port: int) -> bool:
    try:
        return healthz(port)["status"] == "ok"
    except OSError:
        return False


def test_a_standby_replica_waiting_for_the_lease_stays_alive(
    kube: kubernetes.client.ApiClient, namespace: str, start_operator: Start
) -> None:
    # Fails if a replica that waits for a Lease another replica holds stops beating its
    # heartbeat: neither watch events nor resync rounds run before the Lease is won, so with
    # operator.replicas=2 the kubelet would restart the standby every few minutes.
    lease = f"vidpipe-standby-{free_port()}"
    now = datetime.now(UTC)
    kubernetes.client.CoordinationV1Api(kube).create_namespaced_lease(
        namespace,
        {
            "metadata": {"name": lease},
            "spec": {
                "holderIdentity": "the-leader",
                "leaseDurationSeconds": 3600,
                "acquireTime": now.isoformat(),
                "renewTime": now.isoformat(),
            },
        },
    )
    proc, port = start_operator(lease, "3")
    try:
        wait_for("waiting for the lease", lambda: "waiting for lease" in proc.log_tail(), 60)
        time.sleep(8)  # well past the 3 s stale limit, still waiting
        assert "holds lease" not in proc.log_tail(200)
        body = healthz(port)
        assert body["status"] == "ok", (body, proc.log_tail())
        assert float(body["secondsSinceLastActivity"]) < 3, body
    finally:
        proc.stop()
