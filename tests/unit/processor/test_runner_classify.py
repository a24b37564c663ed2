"""How a failed ffmpeg run is judged (runner.classify_ffmpeg_failure): the file's fault is bad
input (exit 65, never retried), the machine's fault is retryable."""

from __future__ import annotations

import signal

import pytest

from vidpipe.errors import BadInput, ErrorCode
from vidpipe_processor.errors import FfmpegFailed
from vidpipe_processor.runner import classify_ffmpeg_failure

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("returncode", "tail", "code"),
    [
        (1, "[h264 @ 0x1] Invalid NAL unit size (1 > 0).", ErrorCode.CORRUPT_MEDIA),
        (1, "Error while decoding stream #0:0: Invalid data", ErrorCode.CORRUPT_MEDIA),
        (1, "/work/src: Invalid data found when processing input", ErrorCode.CORRUPT_MEDIA),
        (1, "[cinepak @ 0x1] Codec (cinepak) not on whitelist 'h264'", ErrorCode.UNSUPPORTED_CODEC),
        (1, "[mov @ 0x1] Cannot allocate memory", ErrorCode.MEDIA_TOO_COMPLEX),
        (-signal.SIGXCPU, "", ErrorCode.MEDIA_TOO_COMPLEX),
    ],
)  # fmt: skip
def test_the_file_is_to_blame(returncode: int, tail: str, code: ErrorCode) -> None:
    error = classify_ffmpeg_failure(returncode, tail)
    assert isinstance(error, BadInput) and error.code is code


@pytest.mark.parametrize(
    ("returncode", "tail"),
    [
        (1, "av_interleaved_write_frame(): No space left on device"),
        # A decode error next to a machine error: retrying may help, so it is not a verdict.
        (1, "Error while decoding stream #0:0\n/work/out/720p.mp4: Input/output error"),
        (-signal.SIGKILL, "Error while decoding stream #0:0"),  # OOM killer or eviction
        # Killed from outside: an allocation failure in its stderr is no verdict on the file
        # (fails if vidpipe.probe.limit_verdict reads stderr before the signal).
        (-signal.SIGKILL, "[mov @ 0x1] Cannot allocate memory"),
        (1, "Conversion failed!"),
    ],
)
def test_the_machine_is_to_blame(returncode: int, tail: str) -> None:
    error = classify_ffmpeg_failure(returncode, tail)
    assert isinstance(error, FfmpegFailed) and not isinstance(error, BadInput)
    assert error.code is ErrorCode.PROCESSING_FAILED
