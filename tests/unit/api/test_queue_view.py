"""Kueue mode in the read model: the operator mirrors a VideoJob's queue and place into the job
record, and the API's job view shows them (docs/queueing.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.utils.records import job_record
from vidpipe.record import mirror_update
from vidpipe_api.compat import queue
from vidpipe_api.jobs import downloads, job_view
from vidpipe_api.schemas import JobOut

pytestmark = pytest.mark.unit

AT = datetime(2026, 1, 1, tzinfo=UTC)
VIDEOJOB = {
    "metadata": {"name": "vj-1", "namespace": "jobs"},
    "spec": {"jobId": "vj-1", "owner": "alice", "source": {"bucket": "b", "key": "k"}},
}


def test_a_queued_jobs_queue_and_place_reach_the_job_view() -> None:
    # Fails if the mirror drops status.queue/queuePosition or the view (or its response model)
    # leaves them out: a tenant could not see where the job waits.
    status = {"phase": "Queued", "queue": "vidpipe-alice-1a2b", "queuePosition": 3}
    record = job_record(phase="Pending").updated(mirror_update(VIDEOJOB, status, AT)["$set"])
    view = JobOut.model_validate(job_view(record)).model_dump()
    assert (view["phase"], view["queue"], view["queuePosition"]) == (
        "Queued",
        "vidpipe-alice-1a2b",
        3,
    )
    assert view["seedStatus"] == "Saved"


def test_once_admitted_the_place_is_gone_and_builtin_jobs_have_neither() -> None:
    # Fails if a running job kept its stale queue position, or a builtin-mode job showed any.
    running = {"phase": "Running", "queue": "vidpipe-alice-1a2b"}
    record = job_record(phase="Queued").updated(mirror_update(VIDEOJOB, running, AT)["$set"])
    assert job_view(record)["queuePosition"] is None
    builtin = job_view(job_record(phase="Running"))
    assert builtin["queue"] is None and builtin["queuePosition"] is None


def test_queued_and_admitted_jobs_wait_like_pending_ones() -> None:
    # Fails if a Queued job offers downloads (it has run nothing) or the old API's queue depth
    # leaves out the jobs waiting in Kueue.
    for phase in ("Pending", "Queued", "Admitted"):
        assert downloads(job_record(phase=phase), lambda key: key) is None
    counts = {"Pending": 1, "Queued": 2, "Admitted": 1, "Running": 3}
    assert queue(counts, "user")["queue_depth"] == 4
