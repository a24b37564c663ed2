"""The job record (vidpipe.record): documents as stored read back, and both writers' builders."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from tests.utils.records import CREATED, job_record

from vidpipe.models import JobError
from vidpipe.phases import Phase
from vidpipe.record import (
    JobRecord,
    deleted_fields,
    deleted_update,
    insert_document,
    mirror_update,
    progress_update,
    rejected_fields,
    unsubmitted_cancel_fields,
)

pytestmark = pytest.mark.unit

AT = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
Doc = dict[str, Any]

# A document exactly as the API (insert, flags, delete) and the operator (mirror) wrote it
# before vidpipe.record existed, literal so that renaming a stored field fails here.
OLD_DOCUMENT: Doc = {
    "_id": "vj-0a1b",
    "owner": "alice",
    "phase": "Succeeded",
    "progress": 100,
    "source": {"bucket": "vidpipe", "key": "sources/vj-0a1b/source"},
    "options": {"renditions": [{"name": "720p", "height": 720}], "poster": True},
    "filename": "holiday.mp4",
    "content_type": "video/mp4",
    "size_bytes": 1048576,
    "media": {"durationSeconds": 1.0, "width": 160, "height": 120, "audio": []},
    "uploaded_via": "form",
    "created_at": datetime(2025, 6, 1, tzinfo=UTC),
    "updated_at": datetime(2025, 6, 1, 0, 2, tzinfo=UTC),
    "cr_created": True,
    "deleted": True,
    "deleted_at": datetime(2025, 6, 2, tzinfo=UTC),
    "cancel_requested": False,
    "attempts": 1,
    "started_at": datetime(2025, 6, 1, 0, 0, 5, tzinfo=UTC),
    "finished_at": datetime(2025, 6, 1, 0, 1, tzinfo=UTC),
    "outputs": ["outputs/vj-0a1b/720p.mp4", "outputs/vj-0a1b/poster.jpg"],
    "error": None,
    "conditions": [
        {"type": "Complete", "status": "True", "reason": "Succeeded", "message": "2 output(s)"}
    ],
    "job_name": "vj-vj-0a1b",
    "videojob": {"namespace": "vidpipe-jobs", "name": "vj-0a1b"},
}


def videojob(name: str = "j-1") -> Doc:
    return {
        "metadata": {
            "name": name,
            "namespace": "jobs",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {
            "jobId": name,
            "owner": "alice",
            "source": {"bucket": "media", "key": f"sources/{name}/source"},
        },
    }


def upserted(update: Doc, existing: Doc | None = None) -> Doc:
    """What MongoDB stores after an upsert of `update` (`$setOnInsert` only on insert)."""
    doc = dict(existing or {})
    if existing is None:
        doc.update(update.get("$setOnInsert", {}))
    doc.update(update["$set"])
    return doc


def test_an_old_document_reads_unchanged() -> None:
    # Fails if a stored field is renamed, dropped or retyped: existing documents must still read.
    record = JobRecord.model_validate(OLD_DOCUMENT)
    assert record.id == "vj-0a1b" and record.phase is Phase.SUCCEEDED
    assert record.outputs == OLD_DOCUMENT["outputs"]
    assert record.videojob is not None and record.videojob.name == "vj-0a1b"
    assert record.conditions[0].reason == "Succeeded"
    assert record.deleted and record.deleted_at == OLD_DOCUMENT["deleted_at"]
    assert {k: v for k, v in record.document().items() if k in OLD_DOCUMENT} == OLD_DOCUMENT


def test_nulls_and_unknown_fields_read_as_defaults() -> None:
    # Fails if a null progress or media (never written by today's writers, but harmless) or a
    # field added by a newer writer makes a document unreadable.
    doc = {**OLD_DOCUMENT, "progress": None, "media": None, "outputs": None, "new_field": {"x": 1}}
    record = JobRecord.model_validate(doc)
    assert (record.progress, record.media, record.outputs) == (0, {}, [])


def test_insert_writes_the_fields_it_always_wrote() -> None:
    # Fails if the API's insert gains, loses or renames a stored field, or inserts a job that
    # claims a phase other than Pending.
    record = job_record(
        "vj-1",
        options={"poster": True},
        filename="a.mp4",
        content_type="video/mp4",
        size_bytes=10,
        media={"width": 1},
        uploaded_via="raw",
        updated_at=CREATED,
    )
    doc = insert_document(record)
    # Everything the old document held but what is written after the insert.
    later = {"cancel_requested", "deleted_at", "attempts", "started_at", "finished_at"}
    later |= {"outputs", "error", "conditions", "job_name", "videojob"}
    # Added since: the client's metadata (issue 14), priority and preset (issue 16); older
    # documents read without them.
    assert set(doc) == set(OLD_DOCUMENT) - later | {"metadata", "priority", "preset"}
    assert doc["phase"] == "Pending" and doc["cr_created"] is False and doc["deleted"] is False
    assert doc["source"] == {"bucket": "media", "key": "sources/vj-1/source"}
    assert JobRecord.model_validate(doc) == record
    with pytest.raises(ValueError):
        insert_document(record.updated({"phase": "Running"}))


def test_every_field_a_builder_writes_is_declared() -> None:
    # Fails if a writer stores a field the model does not declare (the read model would drop
    # it silently).
    declared = {field.alias or name for name, field in JobRecord.model_fields.items()}
    mirrored = mirror_update(videojob(), {"phase": "Running"}, AT)
    written = [
        insert_document(job_record()),
        mirrored["$set"],
        mirrored["$setOnInsert"],
        progress_update(5, AT)[1]["$set"],
        deleted_update({"_id": "j-1"}, AT)["$set"],
        rejected_fields(JobError(code="job_rejected", message="no"), AT),
        unsubmitted_cancel_fields(AT),
        deleted_fields(job_record(), AT, reached_cluster=False),
    ]
    for fields in written:
        assert set(fields) <= declared, set(fields) - declared


def test_update_mirrors_the_status_fields_the_api_reads() -> None:
    # Fails if a status field the API renders is not copied, or copied under another name.
    status = {
        "phase": "Succeeded",
        "progress": 100,
        "attempts": 2,
        "startedAt": "2026-01-01T00:00:05Z",
        "finishedAt": "2026-01-01T00:01:05Z",
        "outputs": ["outputs/j-1/720p.mp4"],
        "jobName": "vj-j-1",
        "conditions": [
            {
                "type": "Complete",
                "status": "True",
                "reason": "Succeeded",
                "message": "1 output(s) stored",
                "lastTransitionTime": "2026-01-01T00:01:05Z",
                "observedGeneration": 1,
            }
        ],
    }
    update = mirror_update(videojob("j-1"), status, AT)
    fields = update["$set"]
    assert fields["phase"] == "Succeeded" and fields["progress"] == 100
    assert fields["attempts"] == 2
    assert fields["started_at"] == datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)
    assert fields["finished_at"] == datetime(2026, 1, 1, 0, 1, 5, tzinfo=UTC)
    assert fields["outputs"] == ["outputs/j-1/720p.mp4"]
    assert fields["error"] is None and fields["updated_at"] == AT
    assert fields["conditions"] == [
        {
            "type": "Complete",
            "status": "True",
            "reason": "Succeeded",
            "message": "1 output(s) stored",
        }
    ]
    assert fields["videojob"] == {"namespace": "jobs", "name": "j-1"}
    # The API's record, once mirrored, reads as what the operator saw.
    api_doc = insert_document(job_record("j-1", updated_at=CREATED))
    record = JobRecord.model_validate(upserted(update, api_doc))
    assert record.succeeded and record.outputs == ["outputs/j-1/720p.mp4"]
    assert record.uploaded_via is None and record.owner == "alice"


def test_insert_only_fields_never_overwrite_the_api_record() -> None:
    # Fails if the mirror's upsert overwrites what the API recorded at upload.
    update = mirror_update(videojob("j-1"), {}, AT)
    on_insert = update["$setOnInsert"]
    assert on_insert["owner"] == "alice"
    assert on_insert["source"] == {"bucket": "media", "key": "sources/j-1/source"}
    assert on_insert["created_at"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert not set(on_insert) & set(update["$set"])
    assert update["$set"]["phase"] == "Pending" and update["$set"]["started_at"] is None
    # A VideoJob made with kubectl gets a record the API can list (fails if one it needs is
    # missing from the upsert).
    record = JobRecord.model_validate({"_id": "j-1", **upserted(update)})
    assert record.cr_created and not record.deleted and record.created_at == CREATED


def test_priority_reads_normal_when_absent_and_a_kubectl_job_keeps_its_own() -> None:
    # Fails if a document from before priorities became unreadable or not normal, or a
    # VideoJob made with kubectl lost its priority or preset in its record.
    assert JobRecord.model_validate(OLD_DOCUMENT).priority.value == "normal"
    made = videojob("j-1")
    made["spec"]["priority"] = "low"
    made["spec"]["preset"] = {"name": "web", "kind": "VideoPreset", "generation": 3}
    record = JobRecord.model_validate({"_id": "j-1", **upserted(mirror_update(made, {}, AT))})
    assert record.priority.value == "low"
    assert record.preset is not None and record.preset.generation == 3


def test_failure_error_is_copied() -> None:
    # Fails if a failed job's reason does not reach the record.
    error = {"code": "not_a_video", "message": "nope"}
    update = mirror_update(videojob(), {"phase": "Failed", "error": error}, AT)
    assert update["$set"]["error"] == error


def test_progress_never_touches_a_finished_document() -> None:
    # Fails if a late progress report can move a finished job's record.
    query, update = progress_update(42, AT)
    assert set(query["phase"]["$nin"]) == {"Succeeded", "Failed", "Cancelled"}
    assert update == {"$set": {"progress": 42, "updated_at": AT}}


def test_deleted_update_records_cancelled_and_keeps_the_other_conditions() -> None:
    # Fails if the sweep loses the other conditions or records anything but Cancelled.
    doc = {
        "_id": "j-1",
        "conditions": [
            {"type": "Admitted", "status": "True", "reason": "JobCreated", "message": "vj-j-1"},
            {"type": "Cancelled", "status": "False", "reason": "Old", "message": "stale"},
        ],
    }
    fields = deleted_update(doc, AT)["$set"]
    assert fields["phase"] == "Cancelled"
    assert fields["finished_at"] == AT and fields["updated_at"] == AT
    assert fields["outputs"] == []
    by_type = {c["type"]: c for c in fields["conditions"]}
    assert by_type["Admitted"]["reason"] == "JobCreated"
    assert by_type["Cancelled"] == {
        "type": "Cancelled",
        "status": "True",
        "reason": "VideoJobDeleted",
        "message": "VideoJob deleted",
    }
    assert len(fields["conditions"]) == 2


def test_the_api_writes_phase_only_for_a_job_that_never_reached_the_cluster() -> None:
    # Fails if deleting (or cancelling) a job whose VideoJob exists writes a phase: that is the
    # operator's, from the VideoJob status.
    running = job_record(phase="Running", cr_created=True)
    assert deleted_fields(running, AT, reached_cluster=True) == {"deleted": True, "deleted_at": AT}
    pending = job_record()
    assert deleted_fields(pending, AT, reached_cluster=False) == {
        "deleted": True,
        "deleted_at": AT,
        "phase": "Cancelled",
        "finished_at": AT,
    }
    failed = job_record(phase="Failed")
    assert "phase" not in deleted_fields(failed, AT, reached_cluster=False)
    rejected = rejected_fields(JobError(code="job_rejected", message="refused"), AT)
    record = pending.updated(rejected)
    assert record.phase is Phase.FAILED and record.error is not None
    assert record.error.code == "job_rejected" and record.finished_at == AT
    assert pending.updated(unsubmitted_cancel_fields(AT)).phase is Phase.CANCELLED
