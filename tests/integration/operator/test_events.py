"""The event log (issue 14) as the operator writes it: one event per state, with the client's
metadata, the outputs and the manifest's facts; a restart that mirrors everything again adds
nothing."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient

from tests.integration.operator.conftest import (
    DB,
    Cluster,
    OperatorProcess,
    wait_for,
)
from tests.utils.servers import S3Server
from vidpipe import constants
from vidpipe.events import EVENTS_COLLECTION, TERMINAL_SEQUENCE
from vidpipe.keys import output_key

pytestmark = pytest.mark.integration


# This module's operator runs ten Jobs at once, so a burst keeps many in flight.
OPERATOR_ENV = {"VIDPIPE_OPERATOR_MAX_RUNNING_PER_NAMESPACE": "10"}


@pytest.fixture(scope="module")
def events_collection(mongo_url: str) -> Iterator[Any]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url)
    yield client[DB][EVENTS_COLLECTION]
    client.close()


def test_a_job_logs_each_state_once_even_when_a_restart_mirrors_it_again(
    cluster: Cluster,
    operator: OperatorProcess,
    jobs_collection: Any,
    events_collection: Any,
    s3: S3Server,
    output_bucket: str,
) -> None:
    # Fails if the operator logs no event for Running or Succeeded, drops the client's metadata,
    # the outputs or the manifest's facts, or if the resume after a kill -9 (which mirrors every
    # VideoJob again) adds or rewrites an event.
    name = "ev-1"
    manifest = {
        "durationSeconds": 4.0,
        "outputs": [
            {"key": output_key(name, "720p.mp4"), "rendition": "720p", "width": 1280,
             "height": 720, "size": 7},
            {"key": output_key(name, "poster.jpg"), "size": 3},
        ],
    }  # fmt: skip
    s3.client().put_object(
        Bucket=output_bucket, Key=output_key(name, "manifest.json"), Body=json.dumps(manifest)
    )
    cluster.create_videojob(name, owner="tenant-e", userMetadata={"order": "42"})
    wait_for(
        "Succeeded",
        lambda: cluster.status(name).get("phase") == "Succeeded",
        90,
        on_timeout=operator.log_tail,
    )

    def logged() -> list[dict[str, Any]]:
        return list(events_collection.find({"job_id": name}).sort("seq", 1))

    events = wait_for(
        "job.succeeded logged",
        lambda: (e := logged()) and e[-1]["type"] == "job.succeeded" and e,
    )
    by_type = {e["type"]: e for e in events}
    assert by_type["job.running"]["seq"] == 1000
    succeeded = by_type["job.succeeded"]
    assert succeeded["_id"] == f"evt_{name}_{TERMINAL_SEQUENCE}"
    assert succeeded["owner"] == "tenant-e" and succeeded["metadata"] == {"order": "42"}
    assert succeeded["data"]["outputs"] == [
        output_key(name, "720p.mp4"),
        output_key(name, "poster.jpg"),
    ]
    assert succeeded["data"]["media"] == {
        "durationSeconds": 4.0,
        "renditions": [{"name": "720p", "width": 1280, "height": 720, "size": 7}],
    }
    assert succeeded["dispatched"] is False  # the outbox: the dispatcher has not seen it
    assert all(e["type"] != "job.failed" for e in events)
    doc = jobs_collection.find_one({"_id": name})
    assert doc["metadata"] == {"order": "42"}  # the record of a kubectl-made VideoJob too

    before = doc["updated_at"]
    operator.kill()
    operator.start()
    wait_for(
        "the resume's mirror write",
        lambda: jobs_collection.find_one({"_id": name})["updated_at"] > before,
        90,
        on_timeout=operator.log_tail,
    )
    assert logged() == events


def _phases(cluster: Cluster, prefix: str) -> dict[str, str]:
    listed = cluster.custom.list_namespaced_custom_object(
        constants.GROUP, constants.VERSION, cluster.namespace, constants.PLURAL
    )
    return {
        vj["metadata"]["name"]: (vj.get("status") or {}).get("phase", "")
        for vj in listed["items"]
        if vj["metadata"]["name"].startswith(prefix)
    }


def test_a_kill_9_in_the_middle_of_a_burst_of_50_jobs_loses_no_event(
    cluster: Cluster, operator: OperatorProcess, events_collection: Any
) -> None:
    # Fails if an event of a job that ran or finished while the operator was dead is missing
    # from the log after the restart (job.running included, for jobs the operator never saw
    # running), or if the restart's second mirror of each job logged anything twice.
    names = [f"burst-{i:02d}" for i in range(50)]
    for name in names:
        cluster.create_videojob(name, owner="ok")
    wait_for(
        "a third of the burst done",
        lambda: list(_phases(cluster, "burst-").values()).count("Succeeded") >= 15,
        240,
        on_timeout=operator.log_tail,
    )
    operator.kill()
    time.sleep(5)  # Jobs run on and finish while no operator watches
    operator.start()
    wait_for(
        "the whole burst done",
        lambda: set(_phases(cluster, "burst-").values()) == {"Succeeded"},
        400,
        on_timeout=operator.log_tail,
    )

    def logged() -> dict[str, Counter[str]]:
        found: dict[str, Counter[str]] = {name: Counter() for name in names}
        for event in events_collection.find({"job_id": {"$in": names}}, {"job_id": 1, "type": 1}):
            found[event["job_id"]][event["type"]] += 1
        return found

    def complete() -> bool:
        return all(c["job.running"] and c["job.succeeded"] for c in logged().values())

    wait_for("every job's events logged", complete, 60, on_timeout=lambda: str(logged()))
    for name, counts in logged().items():
        assert counts["job.running"] == 1 and counts["job.succeeded"] == 1, (name, counts)
        assert set(counts) <= {"job.submitted", "job.running", "job.succeeded"}, (name, counts)
        assert counts["job.submitted"] <= 1, (name, counts)
