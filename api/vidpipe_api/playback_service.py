"""What `/play/{token}/{name}` serves: the checks in order, then the file from S3.

Checks, cheapest first, each refusal its own code (vidpipe.errors): the token's signature and
expiry (no I/O), the token type against the file, the playback id not revoked (cached,
vidpipe_api.playback_store), the file among the job record's outputs (never an S3 listing),
and, for a video token with `max_resolution`, the rendition at or below it.

Media delivery (`playback_media`): "proxy" (default) streams segments, poster and storyboard
through the API with Range support; "presign" rewrites media playlists to presigned S3 URLs and
redirects images to them. Why proxy is the default: (1) it needs nothing of the S3 endpoint but
what the API already has: players reach only the API's address, and no bucket CORS rule is
needed for browsers (the local platform's S3 is not reachable from a browser at all); (2) the
token's expiry and a revocation stop a player at the next segment, while a presigned URL stays
valid until it expires, and for VOD it must outlive the whole watch because players load a
media playlist once. The cost is that the bytes flow through the API: bench/playback.py
measures both ways on the same objects.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from vidpipe.errors import ErrorCode, VidpipeError
from vidpipe.keys import (
    MASTER_PLAYLIST_NAME,
    POSTER_NAME,
    STORYBOARD_IMAGE_NAME,
    STORYBOARD_VTT_NAME,
    output_key,
)
from vidpipe_api.db import Database
from vidpipe_api.playback import (
    Claims,
    PlaybackRevoked,
    ResolutionRefused,
    Signer,
    TokenType,
    WrongTokenType,
)
from vidpipe_api.playback_hls import (
    MEDIA_SUFFIXES,
    PLAYLIST_SUFFIX,
    FilteredMaster,
    PlaylistError,
    filter_master,
    media_names,
    plain_name,
    rewrite_uris,
    rewrite_vtt,
)
from vidpipe_api.playback_store import PlaybackState, PlaybackStore, TtlCache
from vidpipe_api.settings import Settings
from vidpipe_api.storage import Storage

log = logging.getLogger(__name__)

# The HLS contract's master playlist name (docs: the HLS output layout, issue 15).
# Playlists and VTT files are read whole; the processor's are a few KiB.
MAX_TEXT_BYTES = 4 * 1024 * 1024
# A job's outputs never change once it succeeded; its master is cached for this long.
MASTER_CACHE_SECONDS = 300.0
_RANGE = re.compile(r"^bytes=(\d+-\d*|-\d+)$")

CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".cmfv": "video/mp4",
    ".mp4": "video/mp4",
    ".m4s": "video/iso.segment",
    ".cmfa": "audio/mp4",
    ".jpg": "image/jpeg",
    ".vtt": "text/vtt; charset=utf-8",
}


class PlaybackFileNotFound(VidpipeError):
    def __init__(self, name: str) -> None:
        super().__init__(ErrorCode.NOT_FOUND, f"no file {name[:80]!r} to play here")


class RangeNotSatisfiable(VidpipeError):
    """416 with the file's size (RFC 9110 15.5.17), so a player can ask again within it."""

    def __init__(self, size: int | None) -> None:
        super().__init__(
            ErrorCode.RANGE_NOT_SATISFIABLE,
            "the requested range starts beyond the end of the file",
            {} if size is None else {"sizeBytes": size},
        )
        if size is not None:
            self.headers["Content-Range"] = f"bytes */{size}"


def token_type_for(name: str) -> TokenType | None:
    """Which token type covers a file name; None for names that are never served."""
    if name == POSTER_NAME:
        return TokenType.THUMBNAIL
    if name in (STORYBOARD_IMAGE_NAME, STORYBOARD_VTT_NAME):
        return TokenType.STORYBOARD
    if name.endswith(PLAYLIST_SUFFIX) or name.endswith(MEDIA_SUFFIXES):
        return TokenType.VIDEO
    return None


def content_type(name: str) -> str:
    return CONTENT_TYPES.get("." + name.rsplit(".", 1)[-1], "application/octet-stream")


def valid_range(header: str | None) -> str | None:
    """One `bytes=` range passed on to S3; anything else is ignored (RFC 9110 lets a server
    answer 200 with the whole file), never forwarded."""
    if header is None:
        return None
    value = header.strip()
    return value if _RANGE.match(value) else None


@dataclass(frozen=True)
class Text:
    body: str
    name: str


@dataclass(frozen=True)
class Redirect:
    url: str


@dataclass(frozen=True)
class Stream:
    body: Any  # botocore StreamingBody
    status: int
    headers: dict[str, str]


Served = Text | Redirect | Stream


class PlaybackService:
    """Built once per app (vidpipe_api.main); the routes call `serve` and the store."""

    def __init__(self, settings: Settings, storage: Storage, db: Database, signer: Signer):
        self.settings = settings
        self.storage = storage
        self.signer = signer
        self.store = PlaybackStore(db, settings.playback_state_cache_seconds)
        self.masters: TtlCache[str, str] = TtlCache(MASTER_CACHE_SECONDS)

    async def authorize(self, token: str, name: str) -> tuple[Claims, PlaybackState]:
        """The token's claims and its id's state, or the refusal; `name` is a plain name."""
        claims = self.signer.verify(token)
        try:
            plain_name(name)
        except PlaylistError:
            raise PlaybackFileNotFound(name) from None
        needed = token_type_for(name)
        if needed is None:
            raise PlaybackFileNotFound(name)
        if claims.type is not needed:
            raise WrongTokenType(claims.type, needed)
        state = await self.store.state(claims.playback_id)
        # No record: it expired with its last token (TTL index) or its job was purged; either
        # way the id no longer plays, as if revoked.
        if state is None or state.revoked or state.job_id != claims.job_id:
            raise PlaybackRevoked()
        if output_key(state.job_id, name) not in state.outputs:
            raise PlaybackFileNotFound(name)
        return claims, state

    async def serve(self, token: str, name: str, range_header: str | None) -> Served:
        claims, state = await self.authorize(token, name)
        job = state.job_id
        presign = self.settings.playback_media == "presign"
        if claims.type is TokenType.VIDEO:
            master = await self._master(job, claims.max_height)
            if master.variants == 0:
                raise ResolutionRefused(claims.max_resolution or "")
            if name == MASTER_PLAYLIST_NAME:
                return Text(master.text, name)
            if name.endswith(PLAYLIST_SUFFIX):
                self._check_rendition(master, claims, name, name)
                text = await self._read_text(job, name)
                # Only media files of the job's outputs: a video token reaches nothing else
                # through a playlist either.
                for listed in media_names(text):
                    if not listed.endswith(MEDIA_SUFFIXES) or output_key(job, listed) not in (
                        state.outputs
                    ):
                        raise PlaybackFileNotFound(listed)
                if presign:
                    return Text(
                        rewrite_uris(text, lambda n: self._presigned(state, claims, n)), name
                    )
                return Text(text, name)
            playlist = name.rsplit(".", 1)[0] + PLAYLIST_SUFFIX
            self._check_rendition(master, claims, playlist, name)
        elif name == STORYBOARD_VTT_NAME:
            text = await self._read_text(job, name)
            if presign:
                text = rewrite_vtt(
                    text, lambda n: self._presigned(state, claims, n, STORYBOARD_IMAGE_NAME)
                )
            return Text(text, name)
        if presign:
            return Redirect(self._presigned(state, claims, name))
        return await self._stream(job, name, valid_range(range_header))

    @staticmethod
    def _check_rendition(master: FilteredMaster, claims: Claims, playlist: str, name: str) -> None:
        if playlist in master.refused:
            raise ResolutionRefused(claims.max_resolution or "")
        if playlist not in master.allowed:
            raise PlaybackFileNotFound(name)

    async def _master(self, job: str, max_height: int | None) -> FilteredMaster:
        hit, text = self.masters.get(job)
        if not hit or text is None:
            text = await self._read_text(job, MASTER_PLAYLIST_NAME)
            self.masters.put(job, text)
        return filter_master(text, max_height)

    def _presigned(
        self, state: PlaybackState, claims: Claims, name: str, only: str | None = None
    ) -> str:
        """A presigned GET of one of the job's outputs (`only`: and no other name), the token's
        type having been checked for the file that lists it. It expires with the token at the
        latest: a URL must not keep playing what a token no longer may."""
        key = output_key(state.job_id, name)
        if key not in state.outputs or (only is not None and name != only):
            raise PlaybackFileNotFound(name)
        # The public client: the URL is for the player, like download links (api settings).
        return self.storage.public_client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.storage.bucket, "Key": key},
            ExpiresIn=max(
                1,
                min(self.settings.playback_presign_ttl_seconds, claims.expires - int(time.time())),
            ),
        )

    async def _get(self, key: str, byte_range: str | None) -> dict[str, Any]:
        """get_object off the event loop; RangeNotSatisfiable when the range is outside it."""
        client = self.storage.client
        bucket = self.storage.bucket

        def get() -> dict[str, Any]:
            params: dict[str, Any] = {"Bucket": bucket, "Key": key}
            if byte_range:
                params["Range"] = byte_range
            try:
                return dict(client.get_object(**params))
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code", "")) != "InvalidRange":
                    raise
            # The size for Content-Range: S3's refusal does not always carry it.
            size = client.head_object(Bucket=bucket, Key=key).get("ContentLength")
            raise RangeNotSatisfiable(None if size is None else int(size))

        try:
            return await self.storage.call(get)
        except ClientError:  # not found: listed by the manifest but gone (being deleted)
            raise PlaybackFileNotFound(key.rsplit("/", 1)[-1]) from None

    async def _read_text(self, job: str, name: str) -> str:
        got = await self._get(output_key(job, name), None)

        def read() -> bytes:
            with got["Body"] as body:
                data: bytes = body.read(MAX_TEXT_BYTES + 1)
            return data

        data = await self.storage.call(read)
        if len(data) > MAX_TEXT_BYTES:
            raise PlaybackFileNotFound(name)
        return data.decode("utf-8")

    async def _stream(self, job: str, name: str, byte_range: str | None) -> Stream:
        got = await self._get(output_key(job, name), byte_range)
        headers = {
            "Accept-Ranges": "bytes",
            "Content-Length": str(got["ContentLength"]),
            "Content-Type": content_type(name),
        }
        status = 200
        if got.get("ContentRange"):
            headers["Content-Range"] = str(got["ContentRange"])
            status = 206
        return Stream(got["Body"], status, headers)


def signer_from_settings(settings: Settings) -> Signer:
    """The configured key, or a random one for this process only (a warning says so)."""
    key = settings.playback_signing_key
    previous = settings.playback_previous_signing_key
    if key is None:
        log.warning(
            "no playback signing key set (VIDPIPE_API_PLAYBACK_SIGNING_KEY): using a random "
            "key, so playback tokens end with this process and work on this replica only"
        )
        return Signer(secrets.token_bytes(32))
    return Signer(
        key.get_secret_value().encode(),
        previous.get_secret_value().encode() if previous is not None else None,
    )
