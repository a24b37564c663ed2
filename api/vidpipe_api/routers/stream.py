"""Live job changes as Server-Sent Events (vidpipe_api.streams says how and at what cost).

curl -N -H "Authorization: Bearer $KEY" http://…/v1/jobs/stream
curl -N -H "Authorization: Bearer $KEY" http://…/v1/jobs/vj-…/events   # ends with the job
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response

from vidpipe_api import auth
from vidpipe_api.db import now, to_ms
from vidpipe_api.deps import ContextDep, JobRecordDep, PrincipalDep
from vidpipe_api.schemas import ERROR_RESPONSES, ErrorOut
from vidpipe_api.streams import (
    JobPoller,
    Position,
    SlotResponse,
    StreamSlots,
    job_stream,
    parse_event_id,
    start_position,
)

router = APIRouter(tags=["jobs"])

LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        max_length=200,
        description="The id of the last event received: the stream resumes after it",
    ),
]

SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    200: {
        "content": {"text/event-stream": {}},
        "description": "`event: job` (a job as `GET /v1/jobs/{id}` shows it, without links), "
        "`event: deleted`, `event: end` (`reason`: `max_age` or `finished`), `: keep-alive`",
    },
    429: {"model": ErrorOut, "description": "`too_many_event_streams`, with `Retry-After`"},
}


def get_slots(request: Request) -> StreamSlots:
    """The app's stream counters (main.create_app makes them, one set per app)."""
    slots: StreamSlots = request.app.state.stream_slots
    return slots


SlotsDep = Annotated[StreamSlots, Depends(get_slots)]


def open_stream(
    request: Request,
    ctx: ContextDep,
    slots: StreamSlots,
    principal: auth.Principal,
    position: Position,
    job_id: str | None = None,
) -> Response:
    """Take a slot of the caller's key (or 429) and start polling from `position`."""
    settings = ctx.settings
    release = slots.take(principal.key_id)
    try:
        poller = JobPoller(
            ctx.db,
            principal.owner,
            batch=settings.stream_poll_batch,
            overlap_ms=int(settings.stream_overlap_seconds * 1000),
            job_id=job_id,
            position=position,
        )
        if position.job_id:
            poller.sent[position.job_id] = position.ms  # the client has that version already
        until_finished = job_id is not None
        body = job_stream(poller, settings, request.is_disconnected, until_finished=until_finished)
        return SlotResponse(body, release)
    except BaseException:
        release()
        raise


@router.get("/v1/jobs/stream", response_class=Response, responses=SSE_RESPONSES)
async def stream_jobs(
    request: Request,
    ctx: ContextDep,
    slots: SlotsDep,
    principal: PrincipalDep,
    last_event_id: LastEventId = None,
) -> Response:
    """Every change of the caller's jobs from now on (or after `Last-Event-ID`), as SSE.

    Each `job` event is the job's whole state; its id resumes the stream. The stream ends with
    `event: end` after `STREAM_MAX_SECONDS`; reconnect with the last id (EventSource does).
    """
    position = start_position(last_event_id, ctx.settings, now())
    return open_stream(request, ctx, slots, principal, position)


@router.get("/v1/jobs/{job_id}/events", response_class=Response, responses=SSE_RESPONSES)
async def stream_job(
    request: Request,
    ctx: ContextDep,
    slots: SlotsDep,
    principal: PrincipalDep,
    job: JobRecordDep,
    last_event_id: LastEventId = None,
) -> Response:
    """One job's state now and at every change, as SSE; ends (`event: end`, `finished`) once
    the job has finished. Reconnecting after that end answers 204, which stops EventSource."""
    resumed = parse_event_id(last_event_id)
    version = to_ms(job.updated_at) if job.updated_at else 0
    if resumed is not None and job.phase.terminal and resumed.ms >= version:
        return Response(status_code=204)
    # Without an id, from the start of its life: the first event is its state now.
    return open_stream(request, ctx, slots, principal, resumed or Position(0), job.id)
