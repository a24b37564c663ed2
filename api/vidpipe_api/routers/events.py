"""The caller's event log: every event of its jobs as endpoints receive it, whether or not any
endpoint wanted it, for polling clients and for finding what to replay (issue 14)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from vidpipe.events import EventType
from vidpipe_api.deps import CurrentOwner, WebhookStoreDep
from vidpipe_api.pagination import Cursor, decode_cursor, encode_cursor
from vidpipe_api.schemas import ERROR_RESPONSES
from vidpipe_api.webhook_schemas import EventList, EventOut
from vidpipe_api.webhooks import to_ms

router = APIRouter(tags=["events"])

# Event ids are `evt_<job id>_<seq>`: 63-character job ids plus a sequence number.
EVENT_ID_MAX = 80


@router.get("/v1/events", response_model=EventList, responses=ERROR_RESPONSES)
async def list_events(
    owner: CurrentOwner,
    store: WebhookStoreDep,
    jobId: Annotated[str | None, Query(max_length=63, description="Only this job's events")] = None,
    type: Annotated[list[EventType] | None, Query(description="Only these types")] = None,
    order: Annotated[
        Literal["newest", "oldest"], Query(description="Keep the same order across pages")
    ] = "newest",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512, description="From `nextCursor`")] = None,
) -> EventList:
    """The caller's events by time, `limit` at a time; within a job, `seq` orders them."""
    after = decode_cursor(cursor, max_id=EVENT_ID_MAX) if cursor else None
    found = await store.list_events(
        owner,
        job_id=jobId,
        types=type or [],
        after=after,
        limit=limit + 1,
        newest_first=order == "newest",
    )
    page = found[:limit]
    last = page[-1] if page else None
    next_cursor = (
        encode_cursor(Cursor(to_ms(last.time), last.id))
        if last is not None and len(found) > limit
        else None
    )
    return EventList(items=[EventOut.of(e) for e in page], nextCursor=next_cursor)
