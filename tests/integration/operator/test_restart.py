"""Restart safety: kill -9 the operator mid-flight, change things while it is down, restart.

Every VideoJob must still reach the right terminal phase, with exactly one Job each (the same Job
as before the kill), and MongoDB must agree with the CR. A second replica must stay idle while
the first holds the Lease, and take over when it dies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest

from tests.integration.operator.conftest import (
    Cluster,
    OperatorProcess,
    operator_env,
    wait_for,
)
from tests.utils.servers import S3Server
from vidpipe.keys import output_key

pytestmark = pytest.mark.integration

TERMINAL = {"Succeeded", "Failed", "Cancelled"}


@pytest.fixture(scope="module")
def operator(
    namespace: str,
    mongo_url: str,
    s3: S3Server,
    output_bucket: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    env = operator_env(
        namespace, mongo_url, s3, output_bucket, VIDPIPE_OPERATOR_MAX_RUNNING_PER_NAMESPACE="6"
    )
    proc = OperatorProcess(env, tmp_path_factory.mktemp("operator") / "operator.log")
    proc.start()
    yield proc
    proc.stop()


def _phases(cluster: Cluster) -> dict[str, str]:
    items = cluster.custom.list_namespaced_custom_object(
        "media.vidpipe.io", "v1alpha1", cluster.namespace, "videojobs"
    )["items"]
    return {i["metadata"]["name"]: (i.get("status") or {}).get("phase", "") for i in items}


def _job_uids(cluster: Cluster) -> dict[str, str]:
    return {j.metadata.name: j.metadata.uid for j in cluster.jobs()}


def test_kill_9_mid_flight_then_restart_converges(
    cluster: Cluster,
    operator: OperatorProcess,
    jobs_collection: Any,
    s3: S3Server,
    output_bucket: str,
) -> None:
    plan = {f"ok-{i}": "ok" for i in range(10)}
    plan |= {f"med-{i}": "medium" for i in range(6)}
    plan |= {f"bad-{i}": "bad" for i in range(4)}
    plan |= {f"slow-{i}": "slow" for i in range(4)}
    for name, owner in plan.items():
        cluster.create_videojob(name, owner=owner)

    def mixed() -> bool:
        phases = list(_phases(cluster).values())
        done = sum(p in TERMINAL for p in phases)
        return done >= 3 and phases.count("Running") >= 3

    wait_for("a mix of phases", mixed, 90, on_timeout=operator.log_tail)
    operator.kill()
    before = _job_uids(cluster)
    phases_at_kill = _phases(cluster)
    assert {"Running", "Pending"} & set(phases_at_kill.values()), phases_at_kill

    # While the operator is down: cancel two, delete one, add two more.
    cluster.patch_spec("slow-0", {"cancel": True})
    cluster.patch_spec("slow-1", {"cancel": True})
    # Deleted while nobody watches: gone at once (no finalizer); the sweep after the restart
    # records it Cancelled and deletes its partial outputs.
    s3.client().put_object(
        Bucket=output_bucket, Key=output_key("slow-2", "720p.mp4"), Body=b"partial"
    )
    cluster.delete("slow-2")
    wait_for("slow-2 deleted", lambda: cluster.get("slow-2") is None, 10)
    cluster.create_videojob("late-0", owner="ok")
    cluster.create_videojob("late-1", owner="bad")
    plan |= {"late-0": "ok", "late-1": "bad"}
    del plan["slow-2"]

    operator.start()
    wait_for(
        "slow-3 running",
        lambda: _phases(cluster).get("slow-3") == "Running",
        120,
        on_timeout=operator.log_tail,
    )
    cluster.patch_spec("slow-3", {"cancel": True})

    expected = {"ok": "Succeeded", "medium": "Succeeded", "bad": "Failed", "slow": "Cancelled"}

    def converged() -> bool:
        phases = _phases(cluster)
        return all(phases.get(n) == expected[o] for n, o in plan.items())

    wait_for(
        "all terminal",
        converged,
        180,
        on_timeout=lambda: f"{_phases(cluster)}\n{operator.log_tail()}",
    )

    # Exactly one Job per finished VideoJob, and the same one as before the kill.
    after = _job_uids(cluster)
    for name, owner in plan.items():
        job = f"vj-{name}"
        if owner == "slow":
            gone: Callable[[], bool] = partial(lambda j: j not in _job_uids(cluster), job)
            wait_for(f"{job} deleted", gone, 60)
            continue
        assert job in after, name
        if job in before:
            assert after[job] == before[job], f"{job} was recreated"

    # MongoDB agrees with every CR.
    def mongo_agrees() -> list[str]:
        wrong = []
        for name in plan:
            status = cluster.status(name)
            doc = jobs_collection.find_one({"_id": name}) or {}
            fields = ("phase", "attempts", "outputs")
            if [doc.get(f) for f in fields] != [
                status.get(f, [] if f == "outputs" else 0) for f in fields
            ]:
                wrong.append(f"{name}: cr={status.get('phase')} mongo={doc.get('phase')}")
        return wrong

    wait_for("Mongo == CR", lambda: not mongo_agrees(), 30, on_timeout=lambda: str(mongo_agrees()))
    slow_2 = wait_for(
        "slow-2 swept",
        lambda: (
            (d := jobs_collection.find_one({"_id": "slow-2"})) and d["phase"] == "Cancelled" and d
        ),
        30,
        on_timeout=operator.log_tail,
    )
    assert "VideoJobDeleted" in {c["reason"] for c in slow_2["conditions"]}
    listed = s3.client().list_objects_v2(Bucket=output_bucket, Prefix="outputs/slow-2/")
    assert listed.get("KeyCount", 0) == 0
    assert operator.proc is not None and operator.proc.poll() is None


def test_second_replica_waits_for_the_lease_then_takes_over(
    cluster: Cluster,
    operator: OperatorProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    standby = OperatorProcess(
        {**operator.env, "VIDPIPE_OPERATOR_IDENTITY": "standby"},
        tmp_path_factory.mktemp("standby") / "operator.log",
    )
    standby.start()
    try:
        wait_for("standby waiting", lambda: "waiting for lease" in standby.log_tail(), 30)
        cluster.create_videojob("leader-0", owner="ok")
        wait_for("leader-0 done", lambda: _phases(cluster).get("leader-0") == "Succeeded", 60)
        assert "created Job" not in standby.log_tail(200)
        operator.kill()
        cluster.create_videojob("leader-1", owner="ok")
        wait_for(
            "standby took over",
            lambda: _phases(cluster).get("leader-1") == "Succeeded",
            60,
            on_timeout=standby.log_tail,
        )
        assert "holds lease" in standby.log_tail(200)
    finally:
        standby.stop()
        operator.start()  # leave the module fixture as it found it
