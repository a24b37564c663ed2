"""The foundation smoke test: a real Pod on the local node reaches the real S3 and MongoDB servers.

A Job runs our locally built image in containerd; its Pod writes an object to S3 and a document to
MongoDB through the bridge address, and the host reads both back.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import boto3
import pymongo
import pytest
from kubernetes import client

from tests.utils.cluster import LocalCluster

pytestmark = pytest.mark.e2e

POD_SCRIPT = """
import os, boto3, pymongo
run = os.environ["RUN_ID"]
s3 = boto3.client("s3", endpoint_url=os.environ["S3_URL"], region_name="us-east-1")
s3.put_object(Bucket=os.environ["BUCKET"], Key=f"smoke/{run}", Body=f"hello from {run}".encode())
db = pymongo.MongoClient(os.environ["MONGO_URL"], serverSelectionTimeoutMS=10000).smoke
db.runs.insert_one({"_id": run, "pod": os.environ["HOSTNAME"]})
"""


def smoke_job(name: str, run_id: str, cluster: LocalCluster) -> dict[str, Any]:
    def secret(key: str) -> dict[str, Any]:
        return {"secretKeyRef": {"name": "vidpipe-s3", "key": key}}

    env = [
        {"name": "RUN_ID", "value": run_id},
        {"name": "S3_URL", "value": cluster.s3_endpoint_for_pods},
        {"name": "BUCKET", "value": cluster.env["VIDPIPE_S3_BUCKET"]},
        {"name": "MONGO_URL", "value": cluster.mongo_url},
        {"name": "AWS_ACCESS_KEY_ID", "valueFrom": secret("AWS_ACCESS_KEY_ID")},
        {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": secret("AWS_SECRET_ACCESS_KEY")},
    ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 60,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                    "containers": [
                        {
                            "name": "smoke",
                            "image": "localhost/vidpipe-smoke:latest",
                            "imagePullPolicy": "Never",
                            "command": ["python3", "-c", POD_SCRIPT],
                            "env": env,
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                }
            },
        },
    }


def wait_for_job(api: Any, name: str, namespace: str, timeout: float) -> Any:
    batch = client.BatchV1Api(api)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = batch.read_namespaced_job_status(name, namespace)
        if job.status.succeeded or job.status.failed:
            return job
        time.sleep(1)
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"job-name={name}")
    states = [s.state for p in pods.items for s in p.status.container_statuses or []]
    raise TimeoutError(f"Job {name} did not finish in {timeout}s; containers: {states}")


def test_node_is_ready(kube_api: Any) -> None:
    nodes = client.CoreV1Api(kube_api).list_node().items
    assert len(nodes) == 1
    ready = {c.type: c.status for c in nodes[0].status.conditions}["Ready"]
    assert ready == "True"
    assert nodes[0].status.node_info.container_runtime_version.startswith("containerd://")


def test_job_pod_writes_to_s3_and_mongodb(cluster: LocalCluster, kube_api: Any) -> None:
    run_id = uuid.uuid4().hex[:12]
    name = f"smoke-{run_id}"
    batch = client.BatchV1Api(kube_api)
    batch.create_namespaced_job(cluster.namespace, smoke_job(name, run_id, cluster))
    try:
        job = wait_for_job(kube_api, name, cluster.namespace, timeout=120)
        pods = client.CoreV1Api(kube_api).list_namespaced_pod(
            cluster.namespace, label_selector=f"job-name={name}"
        )
        assert job.status.succeeded == 1, [p.status.container_statuses for p in pods.items]

        s3 = boto3.client(
            "s3",
            endpoint_url=cluster.s3_endpoint_for_pods,
            aws_access_key_id=cluster.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=cluster.env["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )
        body = s3.get_object(Bucket=cluster.env["VIDPIPE_S3_BUCKET"], Key=f"smoke/{run_id}")
        assert body["Body"].read() == f"hello from {run_id}".encode()

        mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            cluster.mongo_url, serverSelectionTimeoutMS=5000
        )
        try:
            doc = mongo.smoke.runs.find_one({"_id": run_id})
        finally:
            mongo.close()
        assert doc is not None
        assert doc["pod"] == pods.items[0].metadata.name
    finally:
        batch.delete_namespaced_job(name, cluster.namespace, propagation_policy="Background")
