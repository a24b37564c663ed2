"""Job events: deterministic ids and sequence numbers, and what each event says."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vidpipe.events import (
    TERMINAL_SEQUENCE,
    EventType,
    JobEvent,
    event_id,
    outbox_insert,
    progress_event,
    record_event,
    status_event,
    status_events,
)
from vidpipe.models import SourceObject
from vidpipe.record import JobRecord, mirror_update

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SPEC = {"jobId": "vj-1", "owner": "alice", "userMetadata": {"order": "42"}}


@pytest.mark.parametrize(
    ("status", "event_type", "seq"),
    [
        ({}, EventType.SUBMITTED, 1),
        ({"phase": "Pending", "attempts": 0}, EventType.SUBMITTED, 1),
        ({"phase": "Running", "attempts": 1}, EventType.RUNNING, 1000),
        ({"phase": "Running", "attempts": 3}, EventType.RUNNING, 3000),
        ({"phase": "Succeeded", "attempts": 2}, EventType.SUCCEEDED, TERMINAL_SEQUENCE),
        ({"phase": "Failed", "attempts": 3}, EventType.FAILED, TERMINAL_SEQUENCE),
        ({"phase": "Cancelled"}, EventType.CANCELLED, TERMINAL_SEQUENCE),
    ],
)
def test_each_state_has_one_event_whose_id_and_seq_anyone_recomputes(
    status: dict[str, object], event_type: EventType, seq: int
) -> None:
    # Fails if the event of a state depended on when or by whom it was computed (a replay after
    # a crash would then log it twice) or if sequence numbers did not follow the job's life.
    first = status_event(SPEC, status, AT)
    again = status_event(SPEC, status, datetime(2027, 1, 1, tzinfo=UTC))
    assert (first.type, first.seq, first.id) == (event_type, seq, event_id("vj-1", seq))
    assert again.id == first.id
    assert first.metadata == {"order": "42"} and first.owner == "alice"


def test_order_of_a_job_life_is_the_order_of_its_sequence_numbers() -> None:
    # Fails if a receiver sorting by seq could not rebuild the order things happened in,
    # retries and progress included.
    life = [
        status_event(SPEC, {"phase": "Pending"}, AT),
        status_event(SPEC, {"phase": "Running", "attempts": 1}, AT),
        progress_event(SPEC, 1, 35, AT),
        status_event(SPEC, {"phase": "Running", "attempts": 2}, AT),
        progress_event(SPEC, 2, 90, AT),
        status_event(SPEC, {"phase": "Succeeded", "attempts": 2}, AT),
    ]
    seqs = [e.seq for e in life if e is not None]
    assert len(seqs) == 6 and seqs == sorted(seqs) and len(set(seqs)) == 6


def test_succeeded_carries_outputs_and_facts_failed_says_whether_a_retry_may_help() -> None:
    # Fails if job.succeeded lost its outputs or media facts, or if a bad input were reported
    # retryable (or a processing fault final).
    done = status_event(
        SPEC,
        {"phase": "Succeeded", "attempts": 1, "outputs": ["outputs/vj-1/720p.mp4"]},
        AT,
        facts={"durationSeconds": 12.5},
    )
    assert done.data["outputs"] == ["outputs/vj-1/720p.mp4"]
    assert done.data["media"] == {"durationSeconds": 12.5}
    bad = status_event(
        SPEC, {"phase": "Failed", "error": {"code": "not_a_video", "message": "x"}}, AT
    )
    fault = status_event(
        SPEC, {"phase": "Failed", "error": {"code": "processing_failed", "message": "y"}}, AT
    )
    assert bad.data["error"] == {"code": "not_a_video", "message": "x", "retryable": False}
    assert fault.data["error"]["retryable"] is True


@pytest.mark.parametrize(
    ("progress", "seq"),
    [(0, None), (9, None), (10, 1010), (19, 1010), (57, 1050), (99, 1090), (100, None)],
)
def test_progress_events_come_once_per_tenth(progress: int, seq: int | None) -> None:
    # Fails if progress were logged per percent (a request per percent to every receiver) or
    # if two reports in the same tenth made two events.
    event = progress_event(SPEC, 1, progress, AT)
    assert (event.seq if event else None) == seq


def test_the_api_records_events_from_its_job_record() -> None:
    # Fails if job.submitted lost the client's metadata or job.deleted its own sequence number.
    record = JobRecord(
        id="vj-2",
        owner="bob",
        source=SourceObject(bucket="media", key="sources/vj-2/source"),
        created_at=AT,
        filename="a.mp4",
        metadata={"k": "v"},
    )
    submitted = record_event(record, EventType.SUBMITTED, AT)
    deleted = record_event(record, EventType.DELETED, AT)
    assert (submitted.seq, submitted.metadata, submitted.data["filename"]) == (
        1,
        {"k": "v"},
        "a.mp4",
    )
    assert deleted.seq == TERMINAL_SEQUENCE + 1 and deleted.id == "evt_vj-2_1000001"


def test_outbox_insert_only_inserts_and_the_payload_has_the_standard_shape() -> None:
    # Fails if a second write of an event could overwrite the first (not $setOnInsert), or if
    # the delivered body lost type, timestamp or the event id.
    event = status_event(SPEC, {"phase": "Running", "attempts": 1}, AT)
    query, update = outbox_insert(event)
    assert query == {"_id": event.id} and set(update) == {"$setOnInsert"}
    assert JobEvent.model_validate({"_id": event.id, **update["$setOnInsert"]}) == event
    payload = event.payload()
    assert payload["type"] == "job.running" and payload["timestamp"] == "2026-11-30T12:00:00Z"
    assert payload["data"]["id"] == event.id and payload["data"]["seq"] == 1000


def test_metadata_keys_mongodb_cannot_store_are_left_out() -> None:
    # Fails if a kubectl-made VideoJob's key with a '.' or a leading '$' (which the API refuses
    # but the API server does not) reached the record or an event: every write of that job's
    # record would then fail and be retried forever.
    spec = {**SPEC, "userMetadata": {"ok": "1", "a.b": "2", "$x": "3"}}
    videojob = {"metadata": {"namespace": "n", "name": "vj-1"}, "spec": spec}
    assert status_event(spec, {"phase": "Running", "attempts": 1}, AT).metadata == {"ok": "1"}
    assert progress_event(spec, 1, 50, AT).metadata == {"ok": "1"}  # type: ignore[union-attr]
    assert mirror_update(videojob, {}, AT)["$setOnInsert"]["metadata"] == {"ok": "1"}


def test_an_end_logs_the_running_of_its_last_attempt_too() -> None:
    # Fails if a job that started and finished while no operator watched (its status went
    # straight to Succeeded) had no job.running in the log, or if a job that never ran (cancelled
    # while waiting) got one.
    done = {"phase": "Succeeded", "attempts": 2, "startedAt": "2026-11-30T11:59:00Z"}
    running, succeeded = status_events(SPEC, done, AT)
    assert (running.type, running.seq, succeeded.type) == (
        EventType.RUNNING,
        2000,
        EventType.SUCCEEDED,
    )
    assert running.time == datetime(2026, 11, 30, 11, 59, tzinfo=UTC)
    (cancelled,) = status_events(SPEC, {"phase": "Cancelled"}, AT)
    assert cancelled.type is EventType.CANCELLED
    (only,) = status_events(SPEC, {"phase": "Running", "attempts": 1, "startedAt": "x"}, AT)
    assert only.type is EventType.RUNNING
