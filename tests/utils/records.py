"""A factory for job records (`vidpipe.record.JobRecord`) as the API reads them from MongoDB."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from vidpipe.keys import source_key
from vidpipe.record import JobRecord

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def job_record(job_id: str = "vj-1", **fields: Any) -> JobRecord:
    """A stored record with the fields every writer sets, plus `fields` (stored names)."""
    doc: dict[str, Any] = {
        "_id": job_id,
        "owner": "alice",
        "source": {"bucket": "media", "key": source_key(job_id)},
        "created_at": CREATED,
        **fields,
    }
    return JobRecord.model_validate(doc)
