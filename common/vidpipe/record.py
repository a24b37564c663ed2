"""The job record: the MongoDB document (collection `jobs`) that is the API's read model.

One typed model, `JobRecord`, and the update builders of both writers, so every field is named
here and every document reads back into the same shape:

- the API inserts it when it accepts an upload (`insert_document`), flags it as submitted,
  cancel-requested or deleted, and renders its views from the parsed record;
- the operator mirrors the VideoJob into it (`mirror_update`, an upsert that also creates the
  document of a VideoJob made with kubectl), copies the processor's progress (`progress_update`)
  and records VideoJobs deleted while no operator watched (`deleted_update`).

One writer of `phase`: the operator, from the VideoJob status. The API writes it only for a job
that never reached the cluster, whose phase nobody else can know: `Pending` at insert, `Failed`
when the API server refused its VideoJob (`rejected_fields`), `Cancelled` when it was cancelled
or deleted before its VideoJob existed (`unsubmitted_cancel_fields`, `deleted_fields`). Once
the VideoJob exists, a cancel or a delete only asks the cluster, and the operator records what
became of the job.

`outputs` are the keys listed by the processor's manifest (the manifest itself left out), which
the operator records when the job succeeds: the one list of what a job produced, and the only
one the API offers downloads from.

Field names are the stored ones (`_id`, snake_case) and must not change: documents written
before this module existed read unchanged (tests/unit/common/test_record.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vidpipe.models import JobError, PresetRef, Priority, SourceObject
from vidpipe.phases import TERMINAL_PHASES, Phase

Doc = dict[str, Any]

# The condition the operator sets on a VideoJob deleted unfinished (type and reason as the
# operator names them; tests/unit/common/test_record.py checks they agree).
CANCELLED_CONDITION = "Cancelled"
VIDEOJOB_DELETED_REASON = "VideoJobDeleted"


class RecordCondition(BaseModel):
    """A VideoJob condition as mirrored: no timestamps, the VideoJob keeps those."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: str
    status: str | None = None
    reason: str | None = None
    message: str | None = None


class VideoJobRef(BaseModel):
    """Where the job's VideoJob lives (set by the operator's first mirror write)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    namespace: str
    name: str


class JobRecord(BaseModel):
    """A job document as stored; unknown fields are ignored so an older reader survives a newer
    writer."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    # Written by the API at insert (or by the operator's upsert for a kubectl-made VideoJob).
    id: str = Field(alias="_id")
    owner: str
    source: SourceObject
    options: dict[str, Any] | None = Field(default=None, description="spec.outputs, camelCase")
    created_at: datetime
    filename: str | None = None
    content_type: str | None = None
    size_bytes: int | None = None
    media: dict[str, Any] = Field(default_factory=dict)
    # The client's metadata (VideoJob spec.userMetadata), echoed in the job and every event.
    metadata: dict[str, str] = Field(default_factory=dict)
    # VideoJob spec.priority (documents from before it existed read as normal).
    priority: Priority = Priority.NORMAL
    # VideoJob spec.preset: the preset `options` were copied from at upload, if any.
    preset: PresetRef | None = None
    uploaded_via: str | None = None
    # API flags.
    cr_created: bool = False
    cancel_requested: bool = False
    deleted: bool = False
    deleted_at: datetime | None = None
    # Mirrored by the operator from the VideoJob status (see the module docstring for `phase`).
    phase: Phase = Phase.PENDING
    progress: int = 0
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: JobError | None = None
    outputs: list[str] = Field(default_factory=list)
    conditions: list[RecordCondition] = Field(default_factory=list)
    job_name: str | None = None
    # Kueue mode (docs/queueing.md): the LocalQueue and the place in it while Queued.
    queue: str | None = None
    queue_position: int | None = None
    videojob: VideoJobRef | None = None
    updated_at: datetime | None = None

    @field_validator(
        "media", "metadata", "progress", "attempts", "outputs", "conditions", mode="before"
    )
    @classmethod
    def _null_is_empty(cls, value: Any, info: Any) -> Any:
        # A null where the field has an empty default means "nothing yet".
        if value is None:
            empty: dict[str, Any] = {"media": {}, "metadata": {}, "outputs": [], "conditions": []}
            return empty.get(info.field_name, 0)
        return value

    def document(self) -> Doc:
        """Every field under its stored name."""
        return self.model_dump(by_alias=True)

    def updated(self, fields: Doc) -> JobRecord:
        """The record after `{"$set": fields}` (stored names), validated like a read."""
        return JobRecord.model_validate({**self.document(), **fields})

    @property
    def succeeded(self) -> bool:
        return self.phase is Phase.SUCCEEDED


# -- the API ---------------------------------------------------------------------------------

# What the API writes when it records an accepted upload; the rest stays at its default until
# a writer sets it.
_INSERTED = frozenset(
    {
        "id",
        "owner",
        "phase",
        "progress",
        "source",
        "options",
        "filename",
        "content_type",
        "size_bytes",
        "media",
        "metadata",
        "priority",
        "preset",
        "uploaded_via",
        "created_at",
        "updated_at",
        "cr_created",
        "deleted",
    }
)


def insert_document(record: JobRecord) -> Doc:
    """The document the API inserts for a new job (phase Pending, not yet submitted)."""
    if record.phase is not Phase.PENDING or record.cr_created:
        raise ValueError("a job is recorded Pending, before its VideoJob exists")
    return record.model_dump(by_alias=True, include=set(_INSERTED))


def rejected_fields(error: JobError, at: datetime) -> Doc:
    """`$set` for a job whose VideoJob the API server refused: it never reached the cluster."""
    return {"phase": Phase.FAILED.value, "error": error.model_dump(), "finished_at": at}


def unsubmitted_cancel_fields(at: datetime) -> Doc:
    """`$set` for a job cancelled before any VideoJob of it existed."""
    return {"phase": Phase.CANCELLED.value, "finished_at": at}


def deleted_fields(record: JobRecord, at: datetime, *, reached_cluster: bool) -> Doc:
    """`$set` for a job its owner deleted. The phase is the operator's to record once it sees
    the VideoJob go; only an unfinished job that never reached the cluster is Cancelled here."""
    fields: Doc = {"deleted": True, "deleted_at": at}
    if not reached_cluster and not record.phase.terminal:
        fields.update(unsubmitted_cancel_fields(at))
    return fields


# -- the operator ----------------------------------------------------------------------------


def _time(value: str | None) -> datetime | None:
    """A Kubernetes timestamp (RFC 3339, `Z`)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def storable_metadata(metadata: Any) -> dict[str, str]:
    """A VideoJob's `userMetadata` as it can be stored: the API refuses keys MongoDB cannot
    hold ('.' inside, '$' first), but a VideoJob made with kubectl is not checked by the API, and
    one such key would make every write of its record fail. Those keys are left out."""
    if not isinstance(metadata, dict):
        return {}
    return {
        k: str(v)
        for k, v in metadata.items()
        if isinstance(k, str) and k and "." not in k and not k.startswith("$")
    }


def mirror_update(videojob: Doc, status: Doc, at: datetime) -> Doc:
    """The update that makes the job document agree with the VideoJob `status` (upsert-safe).

    `$setOnInsert` covers VideoJobs created without the API (kubectl), so the document still has
    the fields the API lists and sorts by.
    """
    spec, meta = videojob.get("spec") or {}, videojob["metadata"]
    conditions = [
        RecordCondition.model_validate(c).model_dump() for c in status.get("conditions") or []
    ]
    return {
        "$set": {
            "phase": status.get("phase", Phase.PENDING.value),
            "progress": int(status.get("progress") or 0),
            "attempts": int(status.get("attempts") or 0),
            "started_at": _time(status.get("startedAt")),
            "finished_at": _time(status.get("finishedAt")),
            "outputs": list(status.get("outputs") or []),
            "error": status.get("error"),
            "conditions": conditions,
            "job_name": status.get("jobName"),
            "queue": status.get("queue"),
            "queue_position": status.get("queuePosition"),
            "videojob": VideoJobRef(namespace=meta["namespace"], name=meta["name"]).model_dump(),
            "updated_at": at,
        },
        "$setOnInsert": {
            "owner": spec.get("owner"),
            "source": spec.get("source"),
            "options": spec.get("outputs"),
            "metadata": storable_metadata(spec.get("userMetadata")),
            "priority": spec.get("priority") or Priority.NORMAL.value,
            "preset": spec.get("preset"),
            "created_at": _time(meta.get("creationTimestamp")) or at,
            "cr_created": True,
            "deleted": False,
        },
    }


def progress_update(progress: int, at: datetime) -> tuple[Doc, Doc]:
    """Filter and update for a progress report; never touches a finished job's document."""
    terminal = [p.value for p in TERMINAL_PHASES]
    return (
        {"phase": {"$nin": terminal}},
        {"$set": {"progress": progress, "updated_at": at}},
    )


def deleted_update(doc: Doc, at: datetime) -> Doc:
    """The update recording a job whose VideoJob was deleted unfinished while no operator ran
    (the live path has the VideoJob's last status and uses `mirror_update`)."""
    conditions = [c for c in doc.get("conditions") or [] if c.get("type") != CANCELLED_CONDITION]
    conditions.append(
        RecordCondition(
            type=CANCELLED_CONDITION,
            status="True",
            reason=VIDEOJOB_DELETED_REASON,
            message="VideoJob deleted",
        ).model_dump()
    )
    return {
        "$set": {
            "phase": Phase.CANCELLED.value,
            "finished_at": at,
            "outputs": [],
            "conditions": conditions,
            "updated_at": at,
        }
    }
