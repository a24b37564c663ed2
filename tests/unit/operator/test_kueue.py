"""Kueue mode without a cluster: the Job's labels, the tenant's LocalQueue, the place in the queue
read off the Workloads, and the VideoJob phases (Queued, Admitted, back to Queued when evicted)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.unit.operator.conftest import cond, job, videojob
from vidpipe.phases import Phase
from vidpipe_operator import kueue, names
from vidpipe_operator import status as st
from vidpipe_operator.jobspec import build_job
from vidpipe_operator.settings import OperatorSettings
from vidpipe_operator.status import Outcome, QueueView, view_job

pytestmark = pytest.mark.unit

AT = datetime(2026, 1, 1, 0, 2, tzinfo=UTC)
KUEUE = OperatorSettings(queueing_mode="kueue")


def _suspended(**kw: Any) -> dict[str, Any]:
    body = job(start=None, **kw)
    body["spec"] = {"suspend": True}
    body["metadata"]["uid"] = "job-uid"
    body["metadata"]["labels"] = {kueue.QUEUE_LABEL: "vidpipe-alice-x"}
    return body


def _workload(
    name: str,
    *,
    priority: int = 100,
    created: str = "2026-01-01T00:00:00Z",
    uid: str = "",
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": created,
            "labels": {names.JOB_UID_LABEL: uid or f"uid-{name}"},
        },
        "spec": {"priority": priority},
        "status": {"conditions": conditions or []},
    }


def test_builtin_jobs_carry_no_kueue_label(settings: OperatorSettings) -> None:
    # Fails if a builtin-mode Job is handed to Kueue (it would wait for a queue nobody made).
    labels = build_job(videojob(), settings)["metadata"]["labels"]
    assert not any(key.startswith("kueue.x-k8s.io/") for key in labels)


def test_kueue_jobs_name_their_tenants_queue_and_priority_class_and_are_not_suspended() -> None:
    # Fails if the Job lacks the labels Kueue admits it by, if the label lands on the Pods only,
    # or if the operator suspends it itself (Kueue's webhook does; the operator never edits it).
    manifest = build_job(videojob(priority="high"), KUEUE)
    labels = manifest["metadata"]["labels"]
    assert labels[kueue.QUEUE_LABEL] == kueue.local_queue_name("alice")
    assert labels[kueue.PRIORITY_LABEL] == "vidpipe-high"
    assert "suspend" not in manifest["spec"]
    assert kueue.QUEUE_LABEL not in manifest["spec"]["template"]["metadata"]["labels"]
    default = build_job(videojob(), KUEUE)["metadata"]["labels"]
    assert default[kueue.PRIORITY_LABEL] == "vidpipe-normal"


@pytest.mark.parametrize(
    "owner", ["alice", "Alice@example.com", "a" * 128, "ünïcode", "tenant a", "--"]
)
def test_every_owner_gets_a_valid_queue_name_of_its_own(owner: str) -> None:
    # Fails if a name is not a DNS label (the API server refuses the LocalQueue) or if two
    # owners differing only in case or punctuation share one queue (and one fair share).
    name = kueue.local_queue_name(owner)
    assert len(name) <= 63
    assert name.replace("-", "").isalnum() and name == name.lower()
    assert not name.endswith("-")
    assert kueue.local_queue_name(owner.upper() + "!") != name


def test_the_local_queue_points_at_the_configured_cluster_queue() -> None:
    lq = kueue.build_local_queue("jobs", "alice", OperatorSettings(kueue_cluster_queue="media"))
    assert lq["spec"] == {"clusterQueue": "media"}
    assert lq["metadata"]["name"] == kueue.local_queue_name("alice")


def test_a_suspended_job_is_queued_and_its_pods_still_stopping_are_no_attempt() -> None:
    # Fails if an evicted Job whose Pod is still terminating counts that Pod as a new attempt.
    view = view_job(_suspended(active=1))
    assert (view.outcome, view.attempts) == (Outcome.SUSPENDED, 0)


def test_position_counts_the_pending_workloads_ahead_by_priority_then_age() -> None:
    # Fails if admitted Workloads are counted, if a higher priority does not go first, or if
    # creation order is not the tie-break.
    admitted = _workload("run", conditions=[cond("QuotaReserved")])
    older = _workload("older", created="2025-12-31T00:00:00Z")
    urgent = _workload("urgent", priority=10_000, created="2026-01-01T00:01:00Z")
    mine = _workload("mine", uid="job-uid", created="2026-01-01T00:00:30Z")
    newer = _workload("newer", created="2026-01-01T00:00:40Z")
    view = kueue.queue_view([admitted, older, urgent, mine, newer], _suspended())
    assert view == QueueView("vidpipe-alice-x", 3)


def test_the_jobs_own_workload_read_fresh_wins_over_the_shared_listing() -> None:
    # Fails if the listing's copy of the Job's own Workload (seconds old) is used when a fresh
    # one was read: an eviction that happened since would be reported late, or the job would
    # keep a place it no longer has; or if the fresh copy is counted twice.
    stale_mine = _workload("mine", uid="job-uid", created="2026-01-01T00:00:30Z")
    older = _workload("older", created="2025-12-31T00:00:00Z")
    evicted = _workload(
        "mine",
        uid="job-uid",
        created="2026-01-01T00:00:30Z",
        conditions=[{**cond("Evicted", reason="Preempted"), "message": "by a higher priority"}],
    )
    view = kueue.queue_view([older, stale_mine], _suspended(), own=[evicted])
    assert view == QueueView("vidpipe-alice-x", 2, "Preempted", "by a higher priority")
    # Admitted since the listing: no place, whatever the listing still says.
    admitted = _workload("mine", uid="job-uid", conditions=[cond("QuotaReserved")])
    assert kueue.queue_view([older, stale_mine], _suspended(), own=[admitted]).position is None
    # Not yet created when read: the listing's copy does not stand in for it.
    assert kueue.queue_view([older, stale_mine], _suspended(), own=[]).position is None


def test_no_workload_yet_means_no_position() -> None:
    assert kueue.queue_view([], _suspended()) == QueueView("vidpipe-alice-x", None)


def test_queued_then_admitted_then_running() -> None:
    # Fails if a waiting Job shows Pending or Running instead of Queued with its place, or if the
    # place outlives the wait.
    queued = st.from_job(
        {}, "j-1", view_job(_suspended()), at=AT, generation=1, queue=QueueView("q", 4)
    )
    assert (queued["phase"], queued["queue"], queued["queuePosition"]) == ("Queued", "q", 4)
    admitted_cond = {c["type"]: c for c in queued["conditions"]}[names.ADMITTED]
    assert (admitted_cond["status"], admitted_cond["reason"]) == ("False", names.QUEUED)
    unsuspended = job(start=None)
    admitted = st.from_job(
        queued, "j-1", view_job(unsuspended), at=AT, generation=1, queue=QueueView("q", None)
    )
    assert admitted["phase"] == Phase.ADMITTED.value and "queuePosition" not in admitted
    assert st.status_patch(queued, admitted)["queuePosition"] is None
    running = st.from_job(
        admitted, "j-1", view_job(job(active=1)), at=AT, generation=1, queue=QueueView("q", None)
    )
    assert (running["phase"], running["attempts"]) == ("Running", 1)


def test_an_evicted_job_is_queued_again_with_the_reason_never_failed_and_no_new_attempt() -> None:
    # Fails if a preemption shows as Failed, loses the reason Kueue gave, or adds an attempt.
    running = st.from_job(
        {}, "j-1", view_job(job(active=1)), at=AT, generation=1, queue=QueueView("q", None)
    )
    evicted = QueueView("q", 2, "Preempted", "Preempted to accommodate a higher priority")
    back = st.from_job(
        running, "j-1", view_job(_suspended(active=1)), at=AT, generation=1, queue=evicted
    )
    assert back["phase"] == Phase.QUEUED.value and back["attempts"] == 1
    admitted_cond = {c["type"]: c for c in back["conditions"]}[names.ADMITTED]
    assert admitted_cond["reason"] == names.EVICTED
    assert "Preempted" in admitted_cond["message"]
    assert back["evictedPods"] == 1
    # Kubernetes then counts the deleted Pod as failed: still the first attempt, also once the
    # Job runs again.
    gone = st.from_job(
        back, "j-1", view_job(_suspended(failed=1)), at=AT, generation=1, queue=evicted
    )
    assert (gone["attempts"], gone["evictedPods"]) == (1, 1)
    rerun = st.from_job(
        gone,
        "j-1",
        view_job(job(active=1, failed=1)),
        at=AT,
        generation=1,
        queue=QueueView("q", None),
    )
    assert (rerun["phase"], rerun["attempts"]) == ("Running", 1)


def test_every_priority_needs_a_class() -> None:
    with pytest.raises(ValueError, match="high"):
        OperatorSettings(kueue_priority_classes={"low": "a", "normal": "b"})
