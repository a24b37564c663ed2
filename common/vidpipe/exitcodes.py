"""Processor exit codes: the one contract the Job's podFailurePolicy is built on."""

from typing import Final

SUCCESS: Final = 0
# EX_DATAERR from sysexits.h: the input is not a usable video. Never retried.
BAD_INPUT: Final = 65
# EX_TEMPFAIL: a fault worth retrying (S3 hiccup, ffmpeg crash, out of disk...).
RETRYABLE: Final = 75
# 128 + SIGTERM: stopped by cancellation or eviction; retryable by definition.
TERMINATED: Final = 143
