"""Signed playback: the owner issues tokens (`/v1`, API key), players use them (`/play`, none).

`/play/{token}/{name}` takes no API key: the token is the credential, checked on every request
(vidpipe_api.playback_service). The token travels in the path, not a query string, so the
playlists' relative URIs resolve under it; the API writes no access log, and the log
formatter redacts anything shaped like a JWT as a second line of defence.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from vidpipe.keys import (
    MASTER_PLAYLIST_NAME,
    POSTER_NAME,
    STORYBOARD_IMAGE_NAME,
    STORYBOARD_VTT_NAME,
    output_key,
)
from vidpipe.record import JobRecord
from vidpipe_api.deps import CurrentOwner, JobRecordDep, SettingsDep
from vidpipe_api.errors import InvalidRequest
from vidpipe_api.playback import (
    MAX_RESOLUTION,
    MAX_TOKEN_LENGTH,
    Claims,
    PlaybackNotFound,
    PlaybackNotReady,
    TokenType,
)
from vidpipe_api.playback_service import (
    PlaybackService,
    Redirect,
    Stream,
    Text,
    content_type,
)
from vidpipe_api.schemas import ERROR_RESPONSES, ErrorOut

router = APIRouter(tags=["playback"])
# Browsers on any origin may play: the token, not a cookie, is the credential.
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, Accept-Ranges",
}


def get_playback(request: Request) -> PlaybackService:
    service: PlaybackService = request.app.state.playback
    return service


PlaybackDep = Annotated[PlaybackService, Depends(get_playback)]


class PlaybackIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"ttlSeconds": 3600}]}
    )

    ttlSeconds: int | None = Field(
        default=None, ge=60, description="Token lifetime (default and maximum: API settings)"
    )
    maxResolution: str | None = Field(
        default=None,
        pattern=MAX_RESOLUTION.pattern,
        description="Leave out renditions whose shorter side is above this, e.g. `720p`",
    )


class PlaybackOut(BaseModel):
    playbackId: str
    jobId: str
    expiresAt: str
    maxResolution: str | None
    tokens: dict[str, str] = Field(description="By type: video, thumbnail, storyboard")
    urls: dict[str, str] = Field(
        description="Paths on this API: master, and poster / storyboard when the job has them"
    )


@router.post(
    "/v1/jobs/{job_id}/playback",
    status_code=201,
    response_model=PlaybackOut,
    responses={**ERROR_RESPONSES, 404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
)
async def create_playback(
    job: JobRecordDep,
    owner: CurrentOwner,
    settings: SettingsDep,
    playback: PlaybackDep,
    body: PlaybackIn | None = None,
) -> PlaybackOut:
    """A playback id and its signed tokens for a Succeeded job with HLS outputs; 409 before."""
    ready_reason = _not_ready(job)
    if ready_reason:
        raise PlaybackNotReady(job.id, ready_reason)
    body = body or PlaybackIn()
    ttl = body.ttlSeconds or settings.playback_token_ttl_seconds
    if ttl > settings.playback_max_token_ttl_seconds:
        raise InvalidRequest(
            f"ttlSeconds may be at most {settings.playback_max_token_ttl_seconds}",
            {"max": settings.playback_max_token_ttl_seconds},
        )
    issued = int(time.time())
    expires = issued + ttl
    expires_at = datetime.fromtimestamp(expires, UTC)
    doc = await playback.store.create(owner, job.id, expires_at, body.maxResolution)

    def token(kind: TokenType) -> str:
        return playback.signer.sign(
            Claims(doc["_id"], job.id, kind, expires, issued, body.maxResolution)
        )

    video = token(TokenType.VIDEO)
    tokens = {TokenType.VIDEO.value: video}
    urls = {"master": f"/play/{video}/{MASTER_PLAYLIST_NAME}"}
    if output_key(job.id, POSTER_NAME) in job.outputs:
        tokens[TokenType.THUMBNAIL.value] = thumb = token(TokenType.THUMBNAIL)
        urls["poster"] = f"/play/{thumb}/{POSTER_NAME}"
    if output_key(job.id, STORYBOARD_VTT_NAME) in job.outputs:
        tokens[TokenType.STORYBOARD.value] = board = token(TokenType.STORYBOARD)
        urls["storyboard"] = f"/play/{board}/{STORYBOARD_VTT_NAME}"
        urls["storyboardImage"] = f"/play/{board}/{STORYBOARD_IMAGE_NAME}"
    return PlaybackOut(
        playbackId=doc["_id"],
        jobId=job.id,
        expiresAt=expires_at.isoformat(),
        maxResolution=body.maxResolution,
        tokens=tokens,
        urls=urls,
    )


def _not_ready(job: JobRecord) -> str | None:
    if not job.succeeded:
        return f"its phase is {job.phase.value}, not Succeeded"
    if output_key(job.id, MASTER_PLAYLIST_NAME) not in job.outputs:
        return "it has no HLS outputs (its formats did not include hls)"
    return None


@router.delete(
    "/v1/playbacks/{playback_id}",
    status_code=204,
    responses={**ERROR_RESPONSES, 404: {"model": ErrorOut}},
)
async def revoke_playback(
    playback_id: Annotated[str, Path(max_length=64)], owner: CurrentOwner, playback: PlaybackDep
) -> Response:
    """Revoke every token of the playback id; a repeat is a no-op. Other API replicas stop
    serving it within `playback_state_cache_seconds`."""
    if await playback.store.revoke(owner, playback_id) is None:
        raise PlaybackNotFound(playback_id)
    return Response(status_code=204)


TokenPath = Annotated[str, Path(max_length=MAX_TOKEN_LENGTH, include_in_schema=True)]
NamePath = Annotated[str, Path(max_length=128, examples=["master.m3u8"])]


@router.get(
    "/play/{token}/{name}",
    responses={
        403: {
            "model": ErrorOut,
            "description": "Token invalid, expired, revoked, wrong type or "
            "rendition above max_resolution (see `code`)",
        },
        404: {"model": ErrorOut},
    },
    response_class=Response,
)
async def play(
    token: TokenPath,
    name: NamePath,
    playback: PlaybackDep,
    range_header: Annotated[str | None, Header(alias="Range", include_in_schema=False)] = None,
) -> Response:
    """A playlist, segment file, poster or storyboard of the token's job (no API key)."""
    served = await playback.serve(token, name, range_header)
    if isinstance(served, Text):
        return Response(
            served.body,
            media_type=content_type(served.name),
            # Playlists carry no secret but are per token: never in a shared cache.
            headers={**CORS, "Cache-Control": "private, no-store"},
        )
    if isinstance(served, Redirect):
        return RedirectResponse(
            served.url, status_code=302, headers={**CORS, "Cache-Control": "private, no-store"}
        )
    assert isinstance(served, Stream)
    return StreamingResponse(
        _chunks(served.body),
        status_code=served.status,
        headers={**CORS, **served.headers, "Cache-Control": "private, max-age=300"},
    )


@router.options("/play/{token}/{name}", include_in_schema=False)
async def play_preflight() -> Response:
    """CORS preflight of a player on another origin sending `Range`."""
    return Response(
        status_code=204,
        headers={
            **CORS,
            "Access-Control-Allow-Methods": "GET, OPTIONS",
            "Access-Control-Allow-Headers": "Range",
            "Access-Control-Max-Age": "600",
        },
    )


def _chunks(body: Any) -> Any:
    """The object in 64 KiB chunks; Starlette reads a plain iterator in worker threads, so the
    event loop never blocks and memory stays at one chunk per request."""
    with body:
        yield from body.iter_chunks(64 * 1024)
