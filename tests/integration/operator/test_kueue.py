"""Kueue in the local cluster (hack/cluster.sh starts it): a plain Job labelled for a LocalQueue is
suspended by Kueue's webhook, gets a Workload, and runs once admitted."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from tests.integration.operator.conftest import STUB_IMAGE, Cluster, wait_for

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

