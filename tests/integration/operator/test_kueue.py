"""Kueue in the local cluster (hack/cluster.sh starts it): a plain Job labelled for a LocalQueue is
suspended by Kueue's webhook, gets a Workload, and runs once admitted; the operator in Kueue mode
(fair shares between tenants, priorities and preemption, positions, quota).

The Pods run the busybox stub (conftest.STUB_SCRIPT): queueing is about when Jobs run, and a
scripted lifetime makes the quota and the order observable in a minute or two."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from tests.integration.operator.conftest import (
    STUB_IMAGE,
    Cluster,
    OperatorProcess,
    operator_env,
    running_operator,
    wait_for,
)
from tests.utils.servers import S3Server
from vidpipe import constants
from vidpipe_operator import kueue

pytestmark = pytest.mark.integration

KUEUE = ("kueue.x-k8s.io", "v1beta2")
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
# The local platform's ClusterQueue and priority classes (hack/kueue/queues.yaml).
CLUSTER_QUEUE = "vidpipe"


def workloads(cluster: Cluster) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.custom.list_namespaced_custom_object(
        *KUEUE, cluster.namespace, "workloads"
    )["items"]
    return items


def create_local_queue(cluster: Cluster, name: str, cluster_queue: str = CLUSTER_QUEUE) -> None:
    body = {
        "apiVersion": "/".join(KUEUE),
        "kind": "LocalQueue",
        "metadata": {"name": name},
        "spec": {"clusterQueue": cluster_queue},
    }
    try:
        cluster.custom.create_namespaced_custom_object(
            *KUEUE, cluster.namespace, "localqueues", body
        )
    except ApiException as exc:
        if exc.status != 409:
            raise


def test_a_labelled_job_is_suspended_gets_a_workload_and_runs_when_admitted(
    kube: kubernetes.client.ApiClient, cluster: Cluster
) -> None:
    # Fails if Kueue is not running or its webhooks are not reached by the API server (the Job
    # is created unsuspended and runs without a Workload), if its Job integration creates no
    # Workload, or if the ClusterQueue never admits it (the Job stays suspended).
    create_local_queue(cluster, "smoke")
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "kueue-smoke",
            "labels": {QUEUE_LABEL: "smoke", PRIORITY_LABEL: "vidpipe-low"},
        },
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "c",
                            "image": STUB_IMAGE,
                            "imagePullPolicy": "Never",
                            "command": ["/bin/sh", "-c", "sleep 1"],
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                        }
                    ],
                }
            }
        },
    }
    created = cluster.batch.create_namespaced_job(cluster.namespace, job)
    # Kueue's mutating webhook suspended it on the way in: the stored Job says so.
    assert created.spec.suspend is True
    mine = wait_for(
        "the Job's Workload",
        lambda: [w for w in workloads(cluster) if w["spec"].get("queueName") == "smoke"],
        timeout=60,
    )
    assert mine[0]["spec"].get("priorityClassRef", {}).get("name") == "vidpipe-low"
    done = wait_for(
        "the admitted Job to complete",
        lambda: (cluster.batch.read_namespaced_job("kueue-smoke", cluster.namespace).status
                 .succeeded),
        timeout=180,
    )  # fmt: skip
    assert done == 1
    workload = next(w for w in workloads(cluster) if w["spec"].get("queueName") == "smoke")
    conditions = {c["type"]: c["status"] for c in workload["status"]["conditions"]}
    assert conditions.get("Admitted") == "True"
    assert workload["status"]["admission"]["clusterQueue"] == CLUSTER_QUEUE


# --- the operator in Kueue mode ---------------------------------------------------------------
# Its own ClusterQueue per module, so no other test's Workloads share its quota or its order:
# room for SLOTS stub Pods at once (each requests 10m CPU and 16Mi, see operator_env).
SLOTS = 3
STUB_CPU_MILLI, STUB_MEMORY_MI = 10, 16


@pytest.fixture(scope="module")
def cluster_queue(kube: kubernetes.client.ApiClient, namespace: str) -> Iterator[str]:
    custom = kubernetes.client.CustomObjectsApi(kube)
    name = f"vjop-{namespace}"
    body = {
        "apiVersion": "/".join(KUEUE),
        "kind": "ClusterQueue",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "admissionScope": {"admissionMode": "UsageBasedAdmissionFairSharing"},
            "preemption": {"withinClusterQueue": "LowerPriority"},
            "resourceGroups": [
                {
                    "coveredResources": ["cpu", "memory"],
                    "flavors": [
                        {
                            "name": "default-flavor",
                            "resources": [
                                {"name": "cpu", "nominalQuota": f"{SLOTS * STUB_CPU_MILLI}m"},
                                {"name": "memory", "nominalQuota": f"{SLOTS * STUB_MEMORY_MI}Mi"},
                            ],
                        }
                    ],
                }
            ],
        },
    }
    custom.create_cluster_custom_object(*KUEUE, "clusterqueues", body)
    yield name
    custom.delete_cluster_custom_object(*KUEUE, "clusterqueues", name)


@pytest.fixture(scope="module")
def kueue_operator(
    namespace: str,
    cluster_queue: str,
    mongo_url: str,
    s3: S3Server,
    output_bucket: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    env = operator_env(
        namespace,
        mongo_url,
        s3,
        output_bucket,
        VIDPIPE_OPERATOR_QUEUEING_MODE="kueue",
        VIDPIPE_OPERATOR_KUEUE_CLUSTER_QUEUE=cluster_queue,
        # Queued VideoJobs re-read their place at each resync: often, so the test sees it move.
        VIDPIPE_OPERATOR_RESYNC_SECONDS="3",
        VIDPIPE_OPERATOR_SLOT_RETRY_SECONDS="3",
    )
    with running_operator(env, tmp_path_factory) as proc:
        yield proc


def _reserved(workload: dict[str, Any]) -> bool:
    conds = {c["type"]: c["status"] for c in (workload.get("status") or {}).get("conditions") or []}
    return conds.get("QuotaReserved") == "True"


def _finished(workload: dict[str, Any]) -> bool:
    conds = {c["type"]: c["status"] for c in (workload.get("status") or {}).get("conditions") or []}
    return conds.get("Finished") == "True"


def _tenant(workload: dict[str, Any]) -> str:
    return str(workload["spec"].get("queueName") or "")


@dataclass
class QueueWatch:
    """What the test samples while jobs run: admissions in the order seen, and the most
    Workloads holding quota at once."""

    admitted: list[str] = field(default_factory=list)  # Workload names
    # Per admission: the tenants (LocalQueues) that had a pending Workload just before it.
    contenders: list[set[str]] = field(default_factory=list)
    most_reserved: int = 0

    def sample(self, cluster: Cluster, queues: set[str] | None = None) -> list[dict[str, Any]]:
        items = [w for w in workloads(cluster) if queues is None or _tenant(w) in queues]
        pending_before = {_tenant(w) for w in items if w["metadata"]["name"] not in self.admitted}
        new = sorted(
            (w for w in items if _reserved(w) or _finished(w)),
            key=lambda w: next(
                (c["lastTransitionTime"] for c in w["status"]["conditions"]
                 if c["type"] == "QuotaReserved"),
                "",
            ),
        )  # fmt: skip
        for w in new:
            if w["metadata"]["name"] not in self.admitted:
                self.admitted.append(w["metadata"]["name"])
                self.contenders.append(set(pending_before))
        holding = [w for w in items if _reserved(w) and not _finished(w)]
        self.most_reserved = max(self.most_reserved, len(holding))
        return items


def _condition_time(workload: dict[str, Any], type_: str) -> str:
    for c in (workload.get("status") or {}).get("conditions") or []:
        if c["type"] == type_ and c["status"] == "True":
            return str(c["lastTransitionTime"])
    return ""


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def contested_shares(items: list[dict[str, Any]]) -> tuple[dict[str, float], float]:
    """Each LocalQueue's share of the quota held (seconds a Workload was admitted and not yet
    finished) while every LocalQueue had a Workload waiting, from Kueue's own record of each
    Workload (RFC 3339 times, whole seconds), and that window's length in seconds.

    Quota-time is what Admission Fair Sharing evens out (it orders queues by their recent
    usage), so a tenant whose jobs happen to run shorter is admitted more often for its share.
    """
    by_queue: dict[str, list[tuple[float, float, float]]] = {}
    for w in items:
        created = _seconds(str(w["metadata"]["creationTimestamp"]))
        admitted = _seconds(_condition_time(w, "Admitted"))
        finished = _seconds(_condition_time(w, "Finished"))
        by_queue.setdefault(_tenant(w), []).append((created, admitted, finished))
    # A queue waits from its first Workload's creation until its last one is admitted.
    start = max(min(c for c, _, _ in ws) for ws in by_queue.values())
    end = min(max(a for _, a, _ in ws) for ws in by_queue.values())
    held = {
        queue: sum(max(0.0, min(f, end) - max(a, start)) for _, a, f in ws)
        for queue, ws in by_queue.items()
    }
    total = sum(held.values()) or 1.0
    return {queue: seconds / total for queue, seconds in held.items()}, end - start


def admissions(items: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Each LocalQueue's admission times, seconds after the first Workload was created: what a
    failed share assertion shows, so the turns can be read from the report."""
    t0 = min(_seconds(str(w["metadata"]["creationTimestamp"])) for w in items)
    times: dict[str, list[float]] = {}
    for w in items:
        times.setdefault(_tenant(w), []).append(_seconds(_condition_time(w, "Admitted")) - t0)
    return {queue: sorted(ts) for queue, ts in times.items()}


def test_three_tenants_bursts_are_admitted_by_fair_share_within_quota(
    kueue_operator: OperatorProcess, cluster: Cluster
) -> None:
    # Fails if Kueue admits tenants in arrival order (the first burst would hold the whole
    # quota while the others wait: a share near 1, not 1/3), if the operator puts every owner in
    # one LocalQueue (no fair sharing between them), or if more than the quota runs at once.
    tenants = ["tenant-a", "tenant-b", "tenant-c"]
    names = {t: [f"{t}-{i}" for i in range(10)] for t in tenants}
    queues = {kueue.local_queue_name(t) for t in tenants}
    for tenant in tenants:  # a burst each, one after the other
        for name in names[tenant]:
            cluster.create_videojob(name, owner=tenant)
    watch = QueueWatch()

    def all_done() -> bool:
        watch.sample(cluster, queues)
        items = cluster.custom.list_namespaced_custom_object(
            constants.GROUP, constants.VERSION, cluster.namespace, constants.PLURAL
        )["items"]
        done = {
            i["metadata"]["name"]
            for i in items
            if (i.get("status") or {}).get("phase") == "Succeeded"
        }
        return done >= {n for ns in names.values() for n in ns}

    wait_for("30 jobs to succeed", all_done, timeout=420, interval=0.5,
             on_timeout=kueue_operator.log_tail)  # fmt: skip

    def finished() -> list[dict[str, Any]]:
        mine = [w for w in workloads(cluster) if _tenant(w) in queues]
        return mine if len(mine) == 30 and all(_finished(w) for w in mine) else []

    mine = wait_for("Kueue to mark the 30 Workloads finished", finished, timeout=60)
    shares, window = contested_shares(mine)
    assert window >= 10, (shares, window)  # long enough for the turns to show
    assert set(shares) == queues
    for queue, share in shares.items():
        assert abs(share - 1 / 3) <= 0.2 / 3, (queue, shares, window, admissions(mine))
    assert 0 < watch.most_reserved <= SLOTS
    for name in names["tenant-a"]:
        status = cluster.status(name)
        assert status["queue"] == kueue.local_queue_name("tenant-a")
        assert status["attempts"] == 1 and "queuePosition" not in status


def test_a_high_priority_job_preempts_and_the_preempted_one_is_queued_then_succeeds(
    kueue_operator: OperatorProcess, cluster: Cluster
) -> None:
    # Fails if the high-priority job waits behind the low ones (no priority class on its Job),
    # if a preempted job shows Failed or spends an attempt, if its return to the queue has no
    # condition or Event, or if a queued job's position never moves.
    lows = [f"low-{i}" for i in range(10)]
    for name in lows:  # "evictable": each stub Pod runs 20 s (conftest.STUB_SCRIPT)
        cluster.create_videojob(name, owner="evictable", priority="low")
    positions: dict[str, list[int]] = {name: [] for name in [*lows, "urgent"]}
    watch = QueueWatch()

    def sample_positions() -> None:
        watch.sample(cluster)
        for name in positions:
            pos = cluster.status(name).get("queuePosition")
            if pos and (not positions[name] or positions[name][-1] != pos):
                positions[name].append(pos)

    def low_running() -> bool:
        sample_positions()
        return bool(sum(cluster.status(n).get("phase") == "Running" for n in lows) == SLOTS)

    def urgent_runs() -> bool:
        sample_positions()
        return cluster.status("urgent").get("phase") in {"Running", "Succeeded"}

    wait_for("the low jobs to fill the quota", low_running, timeout=180,
             on_timeout=kueue_operator.log_tail)  # fmt: skip
    running_lows = {n for n in lows if cluster.status(n).get("phase") == "Running"}
    cluster.create_videojob("urgent", owner="evictable", priority="high")
    wait_for("the urgent job to run", urgent_runs, timeout=120, on_timeout=kueue_operator.log_tail)
    # It ran while low jobs queued before it still waited: it overtook them by preemption.
    still_waiting = [n for n in lows if cluster.status(n).get("phase") == "Queued"]
    assert still_waiting, "every low job was admitted before the urgent one"
    # Kueue preempts the low job admitted last: running, or admitted with its Pod still starting.
    preempted = [n for n in lows if any(e.reason == "Evicted" for e in cluster.events(n))]
    assert preempted, {n: cluster.status(n) for n in running_lows}

    def all_done() -> bool:
        sample_positions()
        return all(cluster.status(n).get("phase") == "Succeeded" for n in [*lows, "urgent"])

    wait_for("every job to succeed", all_done, timeout=420, interval=0.5,
             on_timeout=kueue_operator.log_tail)  # fmt: skip
    for name in preempted:
        status = cluster.status(name)
        assert status["attempts"] == 1, status  # the lost Pod is no attempt
        reasons = [e.reason for e in cluster.events(name)]
        assert "Queued" in reasons and "Failed" not in reasons, reasons
    # Queued jobs' places fell as the ones ahead of them were admitted (Kueue orders jobs created
    # in the same second by uid, so which low job waits longest is not known in advance).
    falling = [p for p in positions.values() if len(p) >= 2 and p[-1] < p[0]]
    assert falling, positions
    # The urgent job was never behind anyone: it overtook every low job waiting.
    assert all(p == 1 for p in positions["urgent"]), positions
    assert watch.most_reserved <= SLOTS
