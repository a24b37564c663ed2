"""The compatibility layer's pure mappings: our error codes and phases onto the replaced service's
status codes and task statuses, and the bodies it answers with."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.utils.records import job_record
from vidpipe.errors import ErrorCode, VidpipeError
from vidpipe.phases import SEED_STATUS, Phase, SeedStatus
from vidpipe_api.compat import (
    INTERNAL_STATUS,
    REAL_HTTP_STATUS,
    SCOPED,
    THUMBNAIL_NOT_READY,
    InternalStatus,
    LegacyUpload,
    http_status,
    internal_status,
    missing_fields,
    ok,
    queue,
    refusal,
    task,
    validation_body,
)
from vidpipe_api.errors import (
    InvalidRequest,
    JobNotFound,
    RateLimited,
    TooManyConcurrentUploads,
    TooManyUploadSessions,
)
from vidpipe_api.formstream import FilePart, read_form
from vidpipe_api.jobs import job_view
from vidpipe_api.ratelimit import limits_for
from vidpipe_api.settings import Settings

pytestmark = pytest.mark.unit

S = InternalStatus


def test_every_error_code_maps_to_exactly_one_old_code() -> None:
    # Fails when an ErrorCode is added without a row in INTERNAL_STATUS (or a row maps to
    # something that is not an old code, or claims success).
    assert set(INTERNAL_STATUS) == set(ErrorCode)
    for code, old in INTERNAL_STATUS.items():
        assert isinstance(old, InternalStatus), code
        assert old is not S.SUCCESS, code
        # 7 means "not done yet", which only a task's phase can say (THUMBNAIL_NOT_READY).
        assert old is not S.FILE_UNDER_PROCESSING, code
    assert [int(s) for s in InternalStatus] == list(range(1, 10))


def test_the_old_codes_an_old_client_acts_on() -> None:
    # Fails if a refusal the old service had a code for lands on another code.
    assert INTERNAL_STATUS[ErrorCode.NOT_A_VIDEO] is S.NOT_SUPPORTED_FILE_TYPE
    assert INTERNAL_STATUS[ErrorCode.UNSUPPORTED_FORMAT] is S.NOT_SUPPORTED_FILE_TYPE
    assert INTERNAL_STATUS[ErrorCode.UPLOAD_TOO_LARGE] is S.FILE_UPLOAD_SIZE_EXCEEDED
    assert INTERNAL_STATUS[ErrorCode.VALIDATION_FAILED] is S.INVALID_INPUT
    assert INTERNAL_STATUS[ErrorCode.PROCESSING_FAILED] is S.FILE_PROCESSING_FAILED
    assert INTERNAL_STATUS[ErrorCode.STORAGE_UNAVAILABLE] is S.PROCESSING_ERROR


def test_limits_map_by_whose_limit_it_was() -> None:
    # Fails if a user's own limit and the service-wide one are not told apart (6 vs 5), or if a
    # scope the limiters raise has no entry.
    assert internal_status(ErrorCode.RATE_LIMITED, RateLimited("owner", "day", 1, 5).details) is (
        S.USER_RATE_LIMIT_EXHAUSTED
    )
    assert internal_status(ErrorCode.RATE_LIMITED, RateLimited("global", "day", 1, 5).details) is (
        S.GLOBAL_RATE_LIMIT_EXHAUSTED
    )
    own = TooManyConcurrentUploads("owner", 4, 5)
    shared = TooManyConcurrentUploads("instance", 16, 5)
    assert internal_status(own.code, own.details) is S.USER_RATE_LIMIT_EXHAUSTED
    assert internal_status(shared.code, shared.details) is S.GLOBAL_RATE_LIMIT_EXHAUSTED
    sessions = TooManyUploadSessions(8, 60)
    assert internal_status(sessions.code, sessions.details) is S.USER_RATE_LIMIT_EXHAUSTED
    scopes = {limit.scope for limit in limits_for("acme", Settings())}
    assert scopes == set(SCOPED[ErrorCode.RATE_LIMITED])
    for code, by_scope in SCOPED.items():
        assert INTERNAL_STATUS[code] is by_scope["owner"]  # the unscoped default is the user's


def test_every_phase_maps_to_one_old_task_status() -> None:
    # Fails if a phase has no old status, an old status is never produced, or the v1 view's
    # `seedStatus` comes from anywhere but SEED_STATUS.
    assert set(SEED_STATUS) == set(Phase)
    assert set(SEED_STATUS.values()) == set(SeedStatus)
    assert {p.value: s.value for p, s in SEED_STATUS.items()} == {
        "Pending": "Saved",
        "Queued": "Saved",
        "Admitted": "Saved",
        "Running": "Processing",
        "Succeeded": "Processed",
        "Failed": "Failed",
        "Cancelled": "Failed",
    }
    for phase in Phase:
        view = job_view(job_record(phase=phase.value))
        assert view["seedStatus"] == SEED_STATUS[phase]
        assert task(view)["task_status"] == SEED_STATUS[phase].value


def test_thumbnail_refusals_cover_every_unfinished_status() -> None:
    # Fails if a status without a poster has no old code, or "processing" stops meaning 7.
    assert set(THUMBNAIL_NOT_READY) == set(SeedStatus) - {SeedStatus.PROCESSED}
    assert THUMBNAIL_NOT_READY[SeedStatus.SAVED] is S.FILE_UNDER_PROCESSING
    assert THUMBNAIL_NOT_READY[SeedStatus.PROCESSING] is S.FILE_UNDER_PROCESSING
    assert THUMBNAIL_NOT_READY[SeedStatus.FAILED] is S.FILE_PROCESSING_FAILED


def test_only_the_new_refusals_keep_their_http_status() -> None:
    # Fails if an error the old service answered in a 200 body gets a real status (old clients
    # that call raise_for_status would break), or a credential failure becomes a 200.
    assert REAL_HTTP_STATUS == {ErrorCode.UNAUTHENTICATED: 401, ErrorCode.FORBIDDEN: 403}
    assert {code for code in ErrorCode if http_status(code) != 200} == set(REAL_HTTP_STATUS)


def test_bodies_have_the_old_fields() -> None:
    # Fails if a body loses or renames an old field, or the success body grows extra ones.
    assert ok(LegacyUpload, task_id="vj-1") == {
        "status": "ok",
        "task_id": "vj-1",
        "internal_status_code": 1,
    }
    limited = refusal(RateLimited("global", "minute", 600, 7))
    assert limited["status"] == "error" and limited["task_id"] is None
    assert limited["internal_status_code"] == 5 and limited["code"] == "rate_limited"
    assert limited["details"]["retryAfterSeconds"] == 7
    missing = refusal(JobNotFound("vj-x"))
    assert set(missing) == {"status", "task_id", "internal_status_code", "code", "message"}
    assert missing["internal_status_code"] == 2
    rejected = refusal(VidpipeError(ErrorCode.JOB_REJECTED, "refused", {"jobId": "vj-9"}))
    assert rejected["task_id"] == "vj-9" and rejected["internal_status_code"] == 9


def test_validation_body_is_fastapis_without_the_input() -> None:
    # Fails if the 422 loses FastAPI's `detail` list (what old clients read) or echoes input.
    body = validation_body(missing_fields(["user_id", "video_file"]))
    assert body["detail"] == [
        {"type": "missing", "loc": ["body", "user_id"], "msg": "Field required"},
        {"type": "missing", "loc": ["body", "video_file"], "msg": "Field required"},
    ]
    assert body["internal_status_code"] == 2 and body["status"] == "error"
    assert "input" not in str(body)


def test_task_and_queue_views() -> None:
    # Fails if a task loses its id, status, progress or name, or the queue miscounts a status
    # that several phases share (Failed = Failed + Cancelled).
    at = datetime(2025, 1, 1, tzinfo=UTC)
    record = job_record(
        "vj-2",
        phase="Failed",
        progress=30,
        filename="a.mp4",
        created_at=at,
        updated_at=at,
        error={"code": "corrupt_media", "message": "damaged"},
    )
    assert task(job_view(record)) == {
        "task_id": "vj-2",
        "task_status": "Failed",
        "progress": 30,
        "file_name": "a.mp4",
        "created_at": "2025-01-01T00:00:00+00:00",
        "updated_at": "2025-01-01T00:00:00+00:00",
        "error": {"code": "corrupt_media", "message": "damaged"},
    }
    counts = {"Pending": 2, "Running": 1, "Succeeded": 3, "Failed": 1, "Cancelled": 2}
    body = queue(counts, "user")
    assert body["queue_depth"] == 2 and body["processing"] == 1
    assert body["tasks_by_status"] == {"Saved": 2, "Processing": 1, "Processed": 3, "Failed": 3}
    assert body["jobs_by_phase"] == {**counts, "Queued": 0, "Admitted": 0}
    assert body["scope"] == "user"


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(body), 5):
        yield body[i : i + 5]


def _form(*parts: tuple[str, str | None, bytes]) -> bytes:
    out = b""
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--b\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + b"--b--\r\n"


def test_the_old_form_may_send_user_id_after_the_file() -> None:
    # Fails if the named trailing field is refused after the file part, if the file field's
    # name is not honoured, or if any other field after the file is let through.
    received = bytearray()

    async def sink(_: FilePart, data: bytes) -> None:
        received.extend(data)

    body = _form(("video_file", "v.mp4", b"VIDEO"), ("user_id", None, b"acme"))
    form = asyncio.run(
        read_form(
            "multipart/form-data; boundary=b",
            _chunks(body),
            sink,
            file_field="video_file",
            trailing_fields=frozenset({"user_id"}),
        )
    )
    assert form.fields == {"user_id": "acme"} and bytes(received) == b"VIDEO"
    assert form.file is not None and form.file.filename == "v.mp4"
    late = _form(("video_file", "v.mp4", b"VIDEO"), ("options", None, b"{}"))
    with pytest.raises(InvalidRequest, match="after the file"):
        asyncio.run(
            read_form(
                "multipart/form-data; boundary=b",
                _chunks(late),
                sink,
                file_field="video_file",
                trailing_fields=frozenset({"user_id"}),
            )
        )
    # Without the option, `file` is still the only file field and nothing may follow it.
    with pytest.raises(InvalidRequest, match="after the file"):
        asyncio.run(
            read_form(
                "multipart/form-data; boundary=b",
                _chunks(_form(("file", "v", b"V"), ("user_id", None, b"acme"))),
                sink,
            )
        )


def test_the_docs_table_is_the_mapping() -> None:
    # Fails if docs/api.md's table of old codes drifts from INTERNAL_STATUS / SCOPED: a code
    # missing from its row, or listed under an old code it never gets.
    docs = (Path(__file__).resolve().parents[3] / "docs" / "api.md").read_text()
    section = docs.split("## Migrating from the replaced service", 1)[1].split("\n## ", 1)[0]
    rows = {
        int(m["number"]): set(re.findall(r"`([a-z_]+)`", m["codes"]))
        for m in re.finditer(r"^\| (?P<number>\d) [A-Z_]+ \| (?P<codes>.*) \|$", section, re.M)
    }
    assert set(rows) == {int(s) for s in InternalStatus}
    for code, old in INTERNAL_STATUS.items():
        assert code.value in rows[int(old)], code
    possible = {int(s): {c.value for c, o in INTERNAL_STATUS.items() if o is s} for s in S}
    for code, by_scope in SCOPED.items():
        for old in by_scope.values():
            possible[int(old)].add(code.value)
    for number, codes in rows.items():
        assert codes - {"global", "instance", "owner"} <= possible[number], number
