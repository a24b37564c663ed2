"""Validate a stored upload with the shared probe policy (`vidpipe.probe`), as the processor will.

ffprobe reads the object through a short-lived presigned URL with range requests, so nothing is
copied to local disk and the API pod needs no scratch space; the URL never reaches a log (the
probe module masks it in ffprobe's messages).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio

from vidpipe.errors import BadInput, ErrorCode, VidpipeError
from vidpipe.probe import MediaInfo, ProbeFailed, probe
from vidpipe_api.errors import StorageUnavailable
from vidpipe_api.settings import Settings
from vidpipe_api.storage import Storage


def media_summary(info: MediaInfo) -> dict[str, Any]:
    """What the job document keeps: enough for listings without the whole stream dump."""
    return {
        "durationSeconds": round(info.duration_seconds, 3),
        "container": info.container,
        "videoCodec": info.video_codec,
        "width": info.width,
        "height": info.height,
        "frameRate": round(info.frame_rate, 3),
        "bitrate": info.bitrate,
        "audio": [{"codec": a.codec, "channels": a.channels} for a in info.audio_streams],
    }


class Validator:
    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.storage = storage
        self.limits = settings.probe_limits
        self.limiter = anyio.CapacityLimiter(settings.probe_concurrency)

    async def validate(self, key: str) -> MediaInfo:
        """Raise `BadInput` (the caller deletes the object) or return the media facts."""
        url = self.storage.presign_get(key, public=False)
        try:
            return await anyio.to_thread.run_sync(
                partial(probe, url, self.limits, network=True), limiter=self.limiter
            )
        except BadInput:
            raise
        except ProbeFailed as exc:
            if exc.code is ErrorCode.STORAGE_UNAVAILABLE:
                raise StorageUnavailable("could not read the upload back for validation") from exc
            # A timeout or a crash of ffprobe: nothing wrong with storage, say what happened.
            raise VidpipeError(ErrorCode.PROCESSING_FAILED, f"validation failed: {exc}") from exc
