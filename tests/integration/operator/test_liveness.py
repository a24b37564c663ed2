"""The operator's /healthz on the real cluster: the resync loop keeps it alive while idle, and it
answers while the replica waits for the Lease (a follower is alive, not stuck)."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.operator.conftest import OperatorProcess, operator_env, wait_for
from tests.utils.servers import S3Server, free_port

pytestmark = pytest.mark.integration


def healthz(port: int) -> dict[str, float | str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        body: dict[str, float | str] = json.loads(resp.read())
        return body


def test_an_idle_operator_stays_alive_through_resync_rounds(
    namespace: str, mongo_url: str, s3: S3Server, output_bucket: str, tmp_path: Path
) -> None:
    # No VideoJob exists, so no watch event arrives: only the resync loop beats. Fails if it
    # stopped beating (the age would grow past the 2 s rounds) or if nothing served /healthz.
    port = free_port()
    env = operator_env(
        namespace,
        mongo_url,
        s3,
        output_bucket,
        VIDPIPE_OPERATOR_LIVENESS_PORT=str(port),
        VIDPIPE_OPERATOR_RESYNC_SECONDS="1",
        VIDPIPE_OPERATOR_SLOT_RETRY_SECONDS="1",
        VIDPIPE_OPERATOR_LIVENESS_STALE_SECONDS="30",
        VIDPIPE_OPERATOR_LEASE_NAME="vidpipe-liveness-test",
    )
    proc = OperatorProcess(env, tmp_path / "operator.log")
    proc.start()
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
