"""Parsing ffmpeg's `-progress` output and the job's overall, monotonic progress."""

from __future__ import annotations

import threading
import time

import pytest

from vidpipe_processor.progress import ByteCounter, FfmpegProgressParser, ProgressTracker

pytestmark = pytest.mark.unit

# Two blocks as ffmpeg 5.1 writes them, then the final one.
BLOCKS = """\
frame=0
fps=0.00
stream_0_0_q=0.0
bitrate=N/A
total_size=48
out_time_us=N/A
out_time_ms=N/A
out_time=N/A
dup_frames=0
drop_frames=0
speed=N/A
progress=continue
frame=45
out_time_us=1811156
out_time_ms=1811156
out_time=00:00:01.811156
speed=11.4x
progress=continue
frame=50
out_time_us=4020136
out_time_ms=4020136
out_time=00:00:04.020136
progress=end
"""


class Recorder:
    def __init__(self) -> None:
        self.values: list[int] = []
        self.closed = False

    def report(self, percent: int) -> None:
        self.values.append(percent)

    def close(self) -> None:
        self.closed = True


def feed_all(parser: FfmpegProgressParser, text: str) -> list[float]:
    return [p for line in text.splitlines() if (p := parser.feed(line)) is not None]


def test_blocks_become_rising_percentages_ending_at_100() -> None:
    parser = FfmpegProgressParser(duration_seconds=4.0)
    values = feed_all(parser, BLOCKS)
    assert values == [pytest.approx(45.2789), 99.0, 100.0]
    assert parser.finished


def test_never_reaches_100_before_end() -> None:
    parser = FfmpegProgressParser(duration_seconds=2.0)
    assert parser.feed("out_time_us=9000000") == 99.0
    assert parser.feed("progress=continue") is None
    assert parser.percent == 99.0


def test_monotonic_even_when_ffmpeg_goes_back() -> None:
    parser = FfmpegProgressParser(duration_seconds=10.0)
    assert parser.feed("out_time_us=5000000") == 50.0
    assert parser.feed("out_time_us=4000000") is None
    assert parser.feed("out_time_us=-577") is None
    assert parser.percent == 50.0


def test_out_time_clock_format_is_understood() -> None:
    parser = FfmpegProgressParser(duration_seconds=7200.0)
    assert parser.feed("out_time=01:00:00.000000") == 50.0


def test_noise_and_unknown_duration_are_ignored() -> None:
    parser = FfmpegProgressParser(duration_seconds=0)
    assert feed_all(parser, "garbage\n\nout_time_us=100\nbitrate=1k\n") == []
    assert parser.feed("progress=end") == 100.0


def test_tracker_is_monotonic_and_clamped() -> None:
    recorder = Recorder()
    tracker = ProgressTracker(recorder)
    for value in (-5, 0, 3.7, 3.9, 2, 50, 150, 100):
        tracker.update(value)
    assert recorder.values == [3, 50, 100]
    assert tracker.value == 100


def test_concurrent_updates_are_reported_in_order() -> None:
    """Two upload threads raise progress to 97 and 98; the report of 97 is slow. Without the
    reporting lock, 98 went out first and then 97 (seen in a real run of the 1080p ladder)."""
    sent: list[int] = []
    newer_sent = threading.Event()

    class SlowFirst:
        def report(self, percent: int) -> None:
            if percent == 97:
                newer_sent.wait(0.5)  # gives 98 every chance to overtake
            sent.append(percent)
            if percent == 98:
                newer_sent.set()

        def close(self) -> None:
            pass

    tracker = ProgressTracker(SlowFirst())
    first = threading.Thread(target=tracker.update, args=(97,))
    first.start()
    time.sleep(0.05)  # 97 is being reported
    second = threading.Thread(target=tracker.update, args=(98,))
    second.start()
    first.join()
    second.join()
    assert sent == sorted(sent) and sent[-1] == 98


def test_spans_map_stage_fractions_into_the_overall_range() -> None:
    recorder = Recorder()
    tracker = ProgressTracker(recorder)
    download, encode = tracker.span(0, 5), tracker.span(5, 95)
    download(1.0)
    encode(0.5)
    encode(2.0)
    assert recorder.values == [5, 50, 95]


def test_byte_counter_turns_chunks_into_fractions() -> None:
    fractions: list[float] = []
    counter = ByteCounter(total=1000, on_fraction=fractions.append)
    for _ in range(4):
        counter(250)
    assert fractions == [0.25, 0.5, 0.75, 1.0]
