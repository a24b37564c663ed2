"""Restart safety: kill -9 the operator mid-flight, change things while it is down, restart.

Every VideoJob must still reach the right terminal phase, with exactly one Job each (the same Job
as before the kill), and MongoDB must agree with the CR. A Job deleted while no operator runs is
run again. A second replica must stay idle while the first holds the Lease, and take over when
it dies; a leader whose Lease is taken exits, and one that was paused past its Lease exits
without acting on what happened meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from tests.integration.operator.conftest import (
    Cluster,
    OperatorProcess,
    wait_for,
)
from tests.utils.servers import S3Server
from vidpipe.keys import output_key
from vidpipe_operator.jobspec import job_name
from vidpipe_operator.lease import LeaseElector

pytestmark = pytest.mark.integration

TERMINAL = {"Succeeded", "Failed", "Cancelled"}
LEASE = "vidpipe-operator"  # OperatorSettings.lease_name; the lease namespace is the test's


OPERATOR_ENV = {"VIDPIPE_OPERATOR_MAX_RUNNING_PER_NAMESPACE": "6"}


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
        job = job_name(name)
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


def test_job_deleted_while_the_operator_is_down_is_run_again(
    cluster: Cluster, operator: OperatorProcess, jobs_collection: Any
) -> None:
    # docs/operator.md: a Job that vanished while no operator ran, with no manifest, is run
    # again. Fails if the restarted operator leaves the VideoJob Running for ever (it waits for
    # events of a Job that no longer exists) or records it finished without running it.
    name = "vanish-0"
    jname = job_name(name)
    cluster.create_videojob(name, owner="slow")
    wait_for(
        "Running", lambda: _phases(cluster).get(name) == "Running", 60, on_timeout=operator.log_tail
    )
    first_uid = _job_uids(cluster)[jname]
    operator.kill()
    try:
        cluster.batch.delete_namespaced_job(
            jname, cluster.namespace, propagation_policy="Foreground"
        )
        wait_for("the Job gone", lambda: jname not in _job_uids(cluster), 60)
    finally:
        operator.start()
    again = wait_for(
        "a new Job", lambda: _job_uids(cluster).get(jname), 60, on_timeout=operator.log_tail
    )
    assert again != first_uid
    # The new Job really runs: its Pod comes up and the VideoJob is Running on it.
    wait_for(
        "a Pod of the new Job running",
        lambda: any(
            p.status.phase == "Running" and p.metadata.owner_references[0].uid == again
            for p in cluster.pods(f"batch.kubernetes.io/job-name={jname}")
        ),
        60,
        on_timeout=operator.log_tail,
    )
    wait_for("Running on the new Job", lambda: _phases(cluster).get(name) == "Running", 30)
    assert "disappeared before finishing" in operator.log_tail(300)
    cluster.patch_spec(name, {"cancel": True})  # the stub would sleep for ten minutes
    wait_for("Cancelled", lambda: _phases(cluster).get(name) == "Cancelled", 60)


def _coordination(cluster: Cluster) -> Any:
    return kubernetes.client.CoordinationV1Api(cluster.api)


def _holder(cluster: Cluster) -> str | None:
    try:
        lease = _coordination(cluster).read_namespaced_lease(LEASE, cluster.namespace)
    except ApiException as exc:
        if exc.status == 404:  # no operator has run in this namespace yet
            return None
        raise
    holder: str | None = lease.spec.holder_identity
    return holder


def _expired(cluster: Cluster) -> bool:
    spec = _coordination(cluster).read_namespaced_lease(LEASE, cluster.namespace).spec
    renewed = spec.renew_time or spec.acquire_time
    return bool(renewed + timedelta(seconds=spec.lease_duration_seconds) < datetime.now(UTC))


def _successor(cluster: Cluster) -> LeaseElector:
    """Another replica's elector (the operator's own code), holding the Lease for an hour once
    it has it, so the old leader cannot see it expire during the test."""
    return LeaseElector(
        cluster.api,
        name=LEASE,
        namespace=cluster.namespace,
        identity="successor",
        duration_seconds=3600,
    )


def _exit_code(operator: OperatorProcess) -> int:
    proc = operator.proc
    assert proc is not None
    wait_for(
        "the operator to exit", lambda: proc.poll() is not None, 30, on_timeout=operator.log_tail
    )
    return proc.returncode


def test_a_leader_whose_lease_is_taken_exits(cluster: Cluster, operator: OperatorProcess) -> None:
    # Fails if the leader's renewal does not notice that the Lease names another holder, or
    # notices and keeps running (two replicas acting), or takes the Lease back.
    wait_for("leading", lambda: _holder(cluster) == operator.env["VIDPIPE_OPERATOR_IDENTITY"])
    coordination = _coordination(cluster)
    lease = coordination.read_namespaced_lease(LEASE, cluster.namespace)
    # Written as a replica that ignores expiry (or an admin moving leadership) would.
    lease.spec.holder_identity = "successor"
    lease.spec.lease_duration_seconds = 3600
    lease.spec.renew_time = lease.spec.acquire_time = datetime.now(UTC)
    coordination.replace_namespaced_lease(LEASE, cluster.namespace, lease)
    try:
        assert _exit_code(operator) == 1
        assert "taken by another replica" in operator.log_tail(100)
        assert _holder(cluster) == "successor"
    finally:
        _successor(cluster).release()
        operator.start()
    wait_for("leading again", lambda: _holder(cluster) == operator.env["VIDPIPE_OPERATOR_IDENTITY"])


def _per_job_objects(cluster: Cluster) -> set[str]:
    """Names of the Jobs, Secrets and ServiceAccounts in the namespace (the operator writes the
    per-job Secret and ServiceAccount just before each Job)."""
    ns = cluster.namespace
    return (
        set(_job_uids(cluster))
        | {s.metadata.name for s in cluster.core.list_namespaced_secret(ns).items}
        | {a.metadata.name for a in cluster.core.list_namespaced_service_account(ns).items}
    )


def test_a_paused_leader_that_lost_its_lease_exits_without_acting(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    # SIGSTOP the leader past its Lease; another replica takes the expired Lease (its elector,
    # without an operator behind it, so whatever acts on the cluster afterwards can only be the
    # old leader); three VideoJobs are created; the old leader is resumed with their events
    # waiting in its watch. Fails if the old leader acts on them (writes a Job, Secret,
    # ServiceAccount or status) before noticing that its Lease is gone, or does not exit.
    names = [f"paused-{i}" for i in range(3)]
    wait_for("leading", lambda: _holder(cluster) == operator.env["VIDPIPE_OPERATOR_IDENTITY"])
    successor = _successor(cluster)
    operator.pause()
    try:
        wait_for("the Lease to expire", partial(_expired, cluster), 60)
        assert successor.try_acquire()
        for name in names:
            cluster.create_videojob(name, owner="ok")
    finally:
        operator.resume()
    try:
        assert _exit_code(operator) == 1
        acted = {job_name(n) for n in names} & _per_job_objects(cluster)
        assert not acted, f"the old leader acted after losing its Lease: {acted}"
        assert all(cluster.status(n) == {} for n in names)
        assert _holder(cluster) == "successor"
    finally:
        successor.release()
        operator.start()
    # Nothing was lost: the next leader runs them.
    wait_for(
        "all done",
        lambda: all(_phases(cluster).get(n) == "Succeeded" for n in names),
        90,
        on_timeout=operator.log_tail,
    )
