"""MongoDB goes away while jobs run: the VideoJobs go on, the read model catches up afterwards.

The operator mirrors into this module's own FerretDB (tests/utils/servers.py), which the test
stops (SIGTERM, or SIGKILL as an OOM kill or node loss would) while jobs start, report progress,
succeed and fail, then starts again on the same port and data. The operator process is never
restarted: its pymongo client, batcher and retries must carry it through. Job Pods run the stub:
the mirror copies VideoJob status and does not depend on what the processor does (progress is
patched onto the VideoJob status the way the processor sends it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.collection import Collection

from tests.integration.operator.conftest import (
    DB,
    Cluster,
    OperatorProcess,
    operator_env,
    running_operator,
    wait_for,
)
from tests.utils.servers import S3Server, ServerProcess, mongo_process
from vidpipe import constants
from vidpipe_operator.jobspec import job_name

pytestmark = pytest.mark.integration

# The operator's MongoDB timeouts: writes during the outage fail sooner than with the default.
MONGO_TIMEOUT_MS = 2000


@dataclass(frozen=True)
class PrivateMongo:
    url: str
    server: ServerProcess


@pytest.fixture(scope="module")
def private_mongo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMongo]:
    """FerretDB of this module only: stopping it disturbs no other test's operator."""
    url, server = mongo_process(tmp_path_factory.mktemp("outage-mongo"))
    server.start()
    try:
        yield PrivateMongo(url, server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mirror_operator(
    namespace: str,
    private_mongo: PrivateMongo,
    s3: S3Server,
    output_bucket: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    # The periodic resync (which re-reads every job holding a Job) is pushed out of the test's
    # reach: convergence after the outage must come from the operator retrying what failed.
    env = operator_env(
        namespace,
        private_mongo.url,
        s3,
        output_bucket,
        VIDPIPE_OPERATOR_RESYNC_SECONDS="3600",
        VIDPIPE_OPERATOR_LIVENESS_STALE_SECONDS="7200",
        VIDPIPE_OPERATOR_MONGO_TIMEOUT_MS=str(MONGO_TIMEOUT_MS),
        VIDPIPE_OPERATOR_MAX_RUNNING_PER_NAMESPACE="3",
    )
    with running_operator(env, tmp_path_factory) as proc:
        yield proc


@pytest.fixture
def jobs(private_mongo: PrivateMongo) -> Iterator[Collection[dict[str, Any]]]:
    private_mongo.server.start()  # serving at the start of each test, whatever the last left
    client: MongoClient[dict[str, Any]] = MongoClient(private_mongo.url)
    yield client[DB][constants.JOBS_COLLECTION]
    client.close()


def set_progress(cluster: Cluster, name: str, progress: int) -> None:
    """What the processor sends: `status.progress` on its VideoJob's status subresource."""
    cluster.patch_status(name, {"progress": progress})


def outage_log(operator: OperatorProcess, since: int) -> str:
    with operator.log_path.open("rb") as log:
        log.seek(since)
        return log.read().decode(errors="replace")


def disagreements(
    cluster: Cluster, jobs: Collection[dict[str, Any]], names: list[str]
) -> list[str]:
    """Every job whose MongoDB document differs from its VideoJob in phase, progress or error."""
    docs = {d["_id"]: d for d in jobs.find({"_id": {"$in": names}})}
    wrong = []
    for name in names:
        status = cluster.status(name)
        want = [status.get("phase"), int(status.get("progress") or 0), status.get("error")]
        doc = docs.get(name, {})
        got = [doc.get("phase"), doc.get("progress"), doc.get("error")]
        if got != want:
            wrong.append(f"{name}: videojob={want} mongodb={got}")
    return wrong


def waiting_for_slot(cluster: Cluster, name: str) -> bool:
    status = cluster.status(name)
    reasons = {c.get("reason") for c in status.get("conditions") or []}
    return status.get("phase") == "Pending" and "WaitingForSlot" in reasons


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
def test_mongodb_down_while_jobs_run_then_the_mirror_converges(
    cluster: Cluster,
    mirror_operator: OperatorProcess,
    private_mongo: PrivateMongo,
    jobs: Collection[dict[str, Any]],
    crash: bool,
) -> None:
    """Fails if a VideoJob stops progressing while MongoDB is down, if after its restart any
    document's phase, progress or error differs from its VideoJob (a write lost in the outage:
    a progress report, a status change, a new job's first record), if a job is missing or got a
    second Job, or if the operator had to restart."""
    run = "kill" if crash else "term"
    slow, bad, late, queued = f"{run}-slow", f"{run}-bad", f"{run}-late", f"{run}-queued"
    # Three slots (MAX_RUNNING_PER_NAMESPACE): slow and the two medium ones run, bad waits.
    plan = {slow: "slow", f"{run}-med-0": "medium", f"{run}-med-1": "medium", bad: "bad"}
    for name, owner in plan.items():
        cluster.create_videojob(name, owner=owner)
    # Before the outage every job has its document, and the slow one is Running in both.
    wait_for(
        "documents in MongoDB",
        lambda: (
            jobs.count_documents({"_id": {"$in": list(plan)}}) == len(plan)
            and cluster.status(slow).get("phase") == "Running"
            and not disagreements(cluster, jobs, [slow])
        ),
        120,
        on_timeout=mirror_operator.log_tail,
    )

    def at(expected: dict[str, str]) -> bool:
        return all(cluster.status(n).get("phase") == p for n, p in expected.items())

    log_start = mirror_operator.log_path.stat().st_size
    with private_mongo.server.down(crash=crash):
        # While MongoDB is away: a progress report, a new job, jobs finishing and failing...
        set_progress(cluster, slow, 30)
        cluster.create_videojob(late, owner="ok")
        plan[late] = "ok"
        outcomes = {"slow": "Running", "medium": "Succeeded", "bad": "Failed", "ok": "Succeeded"}
        wait_for(
            "every VideoJob at its outcome with MongoDB down",
            lambda: at({n: outcomes[o] for n, o in plan.items()}),
            180,
            on_timeout=mirror_operator.log_tail,
        )
        # ...two more long jobs take the free slots, and a new job has to wait for one.
        for name in (f"{run}-slow-2", f"{run}-slow-3"):
            cluster.create_videojob(name, owner="slow")
            plan[name] = "slow"
        wait_for(
            "three running",
            lambda: at({n: "Running" for n, o in plan.items() if o == "slow"}),
            120,
            on_timeout=mirror_operator.log_tail,
        )
        cluster.create_videojob(queued, owner="ok")
        plan[queued] = "ok"
        wait_for("a waiting job", lambda: waiting_for_slot(cluster, queued), 60)
        # The last report before the restart: its write fails too (the operator says so and
        # hands it to a retrying reconcile), so no later write can carry it by luck.
        set_progress(cluster, slow, 60)
        wait_for(
            "the failed progress write reported",
            lambda: "progress 60 not mirrored" in outage_log(mirror_operator, log_start),
            120,
            on_timeout=mirror_operator.log_tail,
        )
        # The operator met the outage: its status mirror writes failed and are being retried.
        assert "failed, retrying" in outage_log(mirror_operator, log_start)

    # MongoDB is back (same data): every document converges to its VideoJob.
    names = list(plan)
    wait_for(
        "MongoDB == VideoJob",
        lambda: not disagreements(cluster, jobs, names),
        180,
        on_timeout=lambda: f"{disagreements(cluster, jobs, names)}\n{mirror_operator.log_tail()}",
    )
    docs = {d["_id"]: d for d in jobs.find({"_id": {"$in": names}})}
    assert set(docs) == set(names)  # none lost
    assert docs[slow]["progress"] == 60 and docs[slow]["phase"] == "Running"
    assert docs[bad]["error"]["code"] == "not_a_video"
    assert docs[late]["phase"] == "Succeeded" and docs[late]["owner"] == "ok"
    assert docs[queued]["phase"] == "Pending"
    assert "WaitingForSlot" in {c["reason"] for c in docs[queued]["conditions"]}
    # One Job per admitted VideoJob: nothing was started twice because MongoDB writes failed.
    ours = sorted(j.metadata.name for j in cluster.jobs() if j.metadata.name in plan)
    assert ours == sorted(job_name(n) for n in names if n != queued)
    assert mirror_operator.starts == 1
    assert mirror_operator.proc is not None and mirror_operator.proc.poll() is None

    # Slots are given back for the next run; the cancels are mirrored as well.
    for name, owner in plan.items():
        if owner == "slow" or name == queued:
            cluster.patch_spec(name, {"cancel": True})
    wait_for(
        "MongoDB == VideoJob after the cancels",
        lambda: (
            at({n: "Cancelled" for n, o in plan.items() if o == "slow"})
            and not disagreements(cluster, jobs, names)
        ),
        120,
        on_timeout=mirror_operator.log_tail,
    )
