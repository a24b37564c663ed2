"""Progress: ffmpeg's `-progress` key=value stream parsed into a percentage, and the job's overall
0..100 built from its stages (download, encode, upload) so the value only ever rises.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from vidpipe_processor.reporter import ProgressReporter

# Share of the overall progress per stage: encoding dominates the wall time.
DOWNLOAD_SPAN = (0.0, 5.0)
ENCODE_SPAN = (5.0, 95.0)
UPLOAD_SPAN = (95.0, 99.0)


class FfmpegProgressParser:
    """Reads `-progress pipe:1` lines; `feed` returns the encode percentage when it rose.

    ffmpeg writes blocks of `key=value` lines ending in `progress=continue` or `progress=end`.
    The position is `out_time_us` (microseconds; `out_time_ms` is also microseconds despite its
    name, and `out_time` is HH:MM:SS.ffffff). The value is held below 100 until `progress=end`,
    because outputs are only complete once ffmpeg has finished writing them.
    """

    def __init__(self, duration_seconds: float) -> None:
        self._duration_us = max(duration_seconds, 0.0) * 1_000_000
        self._percent = 0.0
        self.finished = False

    @property
    def percent(self) -> float:
        return self._percent

    def feed(self, line: str) -> float | None:
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        value = value.strip()
        position_us: float | None = None
        if key in ("out_time_us", "out_time_ms"):
            position_us = _number(value)
        elif key == "out_time":
            position_us = _clock_us(value)
        elif key == "progress" and value == "end":
            self.finished = True
            return self._rise(100.0)
        if position_us is None or self._duration_us <= 0:
            return None
        return self._rise(min(99.0, 100.0 * position_us / self._duration_us))

    def _rise(self, percent: float) -> float | None:
        if percent <= self._percent:
            return None
        self._percent = percent
        return percent


class ProgressTracker:
    """The job's overall progress: monotonic, clamped to 0..100, forwarded only when it rises.

    Thread-safe because boto3's transfer threads report bytes through it concurrently.
    """

    def __init__(self, reporter: ProgressReporter) -> None:
        self._reporter = reporter
        self._lock = threading.Lock()
        self._value = 0
        # Reports go out one at a time and never below one already sent: two uploading threads
        # that raise the value to 97 and 98 must not report 98 and then 97.
        self._report_lock = threading.Lock()
        self._reported = 0

    @property
    def value(self) -> int:
        return self._value

    def update(self, percent: float) -> None:
        value = int(max(0.0, min(100.0, percent)))
        with self._lock:
            if value <= self._value:
                return
            self._value = value
        with self._report_lock:
            if value <= self._reported:
                return
            self._reported = value
            self._reporter.report(value)

    def span(self, start: float, end: float) -> Callable[[float], None]:
        """A callback taking a fraction (0..1) of one stage, mapped into [start, end]."""

        def on_fraction(fraction: float) -> None:
            self.update(start + (end - start) * max(0.0, min(1.0, fraction)))

        return on_fraction


class ByteCounter:
    """Turns boto3's per-chunk byte callbacks (from several threads) into a fraction done."""

    def __init__(self, total: int, on_fraction: Callable[[float], None]) -> None:
        self._total = max(total, 1)
        self._done = 0
        self._lock = threading.Lock()
        self._on_fraction = on_fraction

    def __call__(self, amount: int) -> None:
        with self._lock:
            self._done += amount
            fraction = self._done / self._total
        self._on_fraction(fraction)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # "N/A" before the first frame is out


def _clock_us(text: str) -> float | None:
    parts = text.split(":")
    if len(parts) != 3:
        return None
    try:
        hours, minutes, seconds = int(parts[0]), int(parts[1]), float(parts[2])
    except ValueError:
        return None
    return ((hours * 60 + minutes) * 60 + seconds) * 1_000_000
