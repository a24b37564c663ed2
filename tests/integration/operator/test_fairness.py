"""The built-in queue on a real cluster (issue 16): per-owner fairness and priority within an
owner, read from the order in which the operator hands out slots (a VideoJob's first status
with a `jobName`), as the API server's watch stream reports it."""

from __future__ import annotations

import threading
import time

import kubernetes
import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from tests.integration.operator.conftest import Cluster, OperatorProcess, wait_for
from vidpipe import constants

pytestmark = pytest.mark.integration

MAX_RUNNING = 2
# Two slots: a burst of ten jobs queues for most of its run.
OPERATOR_ENV = {"VIDPIPE_OPERATOR_MAX_RUNNING_PER_NAMESPACE": str(MAX_RUNNING)}


class Timeline:
    """The namespace's VideoJob watch from a given resourceVersion on: ("created", name) and
    ("started", name) in the API server's order."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.events: list[tuple[str, str]] = []
        self.lost = False
        self.stop = threading.Event()
        listed = cluster.custom.list_namespaced_custom_object(
            constants.GROUP, constants.VERSION, cluster.namespace, constants.PLURAL
        )
        self.version = listed["metadata"]["resourceVersion"]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        started: set[str] = set()
        while not self.stop.is_set():
            watch = kubernetes.watch.Watch()
            try:
                for event in watch.stream(
                    self.cluster.custom.list_namespaced_custom_object,
                    constants.GROUP,
                    constants.VERSION,
                    self.cluster.namespace,
                    constants.PLURAL,
                    resource_version=self.version,
                    timeout_seconds=5,
                ):
                    if event["type"] == "ERROR":
                        raise ApiException(status=event["raw_object"].get("code"))
                    obj = event["object"]
                    name = obj["metadata"]["name"]
                    self.version = obj["metadata"]["resourceVersion"]
                    if event["type"] == "ADDED":
                        self.events.append(("created", name))
                    if (obj.get("status") or {}).get("jobName") and name not in started:
                        started.add(name)
                        self.events.append(("started", name))
                    if self.stop.is_set():
                        watch.stop()
            except ApiException as exc:
                if exc.status == 410:  # history compacted: events lost, the order unknowable
                    self.lost = True
                    return
                time.sleep(1)  # throttled (429) or the API server busy: resume where it stopped
            except urllib3.exceptions.HTTPError:
                time.sleep(1)

    def close(self) -> list[tuple[str, str]]:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.lost, "the watch lost events (410 Gone): the order is unknown"
        return list(self.events)


def most_overtaken(events: list[tuple[str, str]], owner_of: dict[str, str]) -> int:
    """The largest number of one other owner's jobs that started while a job waited (between its
    creation and its start)."""
    worst = 0
    for name, owner in owner_of.items():
        created = events.index(("created", name))
        started = events.index(("started", name))
        ahead: dict[str, int] = {}
        for kind, other in events[created:started]:
            if kind == "started" and owner_of[other] != owner:
                ahead[owner_of[other]] = ahead.get(owner_of[other], 0) + 1
        worst = max([worst, *ahead.values()])
    return worst


def test_most_overtaken_counts_another_owners_starts_while_a_job_waits() -> None:
    # Fails if the measure missed starts of another owner inside a job's wait, or counted its
    # own owner's or those before it was created.
    owner_of = {"a1": "a", "a2": "a", "a3": "a", "b1": "b"}
    events = [("created", n) for n in ("a1", "a2", "a3")]
    events += [("started", "a1"), ("created", "b1"), ("started", "a2"), ("started", "a3")]
    events += [("started", "b1")]
    assert most_overtaken(events, owner_of) == 2


def test_no_owner_waits_behind_more_than_max_running_of_another_and_high_goes_first(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    # Alice's burst: six low-priority jobs, then two high ones; then Bob's two. Fails if Bob
    # waits behind more than MAX_RUNNING of Alice's jobs (strict creation order makes it six),
    # if any job waits behind more than that many of one other owner's, or if Alice's high
    # jobs do not overtake her waiting low ones (creation order within the owner).
    owner_of: dict[str, str] = {}
    burst = [(f"a-low-{i}", "tenant-alice", "low") for i in range(6)]
    burst += [(f"a-high-{i}", "tenant-alice", "high") for i in range(2)]
    burst += [(f"b-{i}", "tenant-bob", "normal") for i in range(2)]
    timeline = Timeline(cluster)
    try:
        for name, owner, priority in burst:
            cluster.create_videojob(name, owner=owner, priority=priority)
            owner_of[name] = owner
        wait_for(
            "the whole burst Succeeded",
            lambda: all(cluster.status(n).get("phase") == "Succeeded" for n in owner_of),
            timeout=600,
            interval=1,
            on_timeout=operator.log_tail,
        )
    finally:
        events = timeline.close()
    assert {n for kind, n in events if kind == "started"} == set(owner_of), events
    assert most_overtaken(events, owner_of) <= MAX_RUNNING, events
    started = [n for kind, n in events if kind == "started"]
    # The two lows created last start after both highs, however the first slots went.
    assert max(started.index(f"a-high-{i}") for i in range(2)) < min(
        started.index(f"a-low-{i}") for i in (4, 5)
    ), started
