"""The MongoDB mirror document built from a VideoJob status."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.unit.operator.conftest import videojob
from vidpipe_operator.mirror import deleted_update, mirror_update, progress_update

pytestmark = pytest.mark.unit

AT = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)


def test_update_mirrors_the_status_fields_the_api_reads() -> None:
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


def test_insert_only_fields_never_overwrite_the_api_record() -> None:
    update = mirror_update(videojob("j-1"), {}, AT)
    on_insert = update["$setOnInsert"]
    assert on_insert["owner"] == "alice"
    assert on_insert["source"] == {"bucket": "media", "key": "sources/j-1/source"}
    assert on_insert["created_at"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert not set(on_insert) & set(update["$set"])
    assert update["$set"]["phase"] == "Pending" and update["$set"]["started_at"] is None


def test_failure_error_is_copied() -> None:
    error = {"code": "not_a_video", "message": "nope"}
    update = mirror_update(videojob(), {"phase": "Failed", "error": error}, AT)
    assert update["$set"]["error"] == error


def test_progress_never_touches_a_finished_document() -> None:
    query, update = progress_update(42, AT)
    assert set(query["phase"]["$nin"]) == {"Succeeded", "Failed", "Cancelled"}
    assert update == {"$set": {"progress": 42, "updated_at": AT}}


def test_deleted_update_records_cancelled_and_keeps_the_other_conditions() -> None:
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
