"""The API server restarts while jobs run: the operator recovers without restarting itself.

`hack/cluster.sh restart-apiserver` stops the shared API server and starts it again.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.integration.operator.conftest import REPO, Cluster, OperatorProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.disruptive]

CLUSTER_SH = REPO / "hack" / "cluster.sh"


def test_operator_survives_an_api_server_restart(
    cluster: Cluster, operator: OperatorProcess, jobs_collection: Any
) -> None:
    names = [f"restart-api-{i}" for i in range(3)]
    for name in names:
        cluster.create_videojob(name, owner="medium")
    wait_for(
        "running",
        lambda: any(cluster.status(n).get("phase") == "Running" for n in names),
        60,
        on_timeout=operator.log_tail,
    )
    subprocess.run([str(CLUSTER_SH), "restart-apiserver"], check=True, timeout=180)
    cluster.create_videojob("restart-api-late", owner="ok")
    names.append("restart-api-late")
    wait_for(
        "all Succeeded",
        lambda: all(cluster.status(n).get("phase") == "Succeeded" for n in names),
        180,
        on_timeout=operator.log_tail,
    )

    def mirrored() -> bool:
        docs = {d["_id"]: d["phase"] for d in jobs_collection.find({"_id": {"$in": names}})}
        return all(docs.get(n) == "Succeeded" for n in names)

    wait_for("MongoDB Succeeded", mirrored, 30)
    assert operator.starts == 1 and operator.proc is not None and operator.proc.poll() is None
