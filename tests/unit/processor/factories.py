"""Canned ffprobe output and MediaInfo builders for the processor's unit tests.

The JSON files in `ffprobe/` are real `ffprobe -print_format json -show_format -show_streams`
output of small files made with ffmpeg's lavfi sources (see each file's `filename`); edge cases
the files do not cover are derived from them by editing the parsed dict.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from vidpipe.probe import AudioStream, MediaInfo, ProbeLimits, parse_probe

FFPROBE_DIR = Path(__file__).parent / "ffprobe"
LIMITS = ProbeLimits(max_duration_seconds=3600, max_pixels=1920 * 1080, max_streams=8)


def canned(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FFPROBE_DIR / f"{name}.json").read_text())
    return copy.deepcopy(data)


def info(
    *,
    width: int = 1920,
    height: int = 1080,
    duration: float = 60.0,
    audio: int = 1,
    rotation: int = 0,
    pixel_format: str = "yuv420p",
    frame_rate: float = 30.0,
    channels: int = 2,
) -> MediaInfo:
    """A MediaInfo as parse_probe would build it, for plan and argv tests."""
    base = parse_probe(canned("basic_mp4"), LIMITS)
    coded_w, coded_h = (height, width) if rotation in (90, 270) else (width, height)
    return replace(
        base,
        duration_seconds=duration,
        coded_width=coded_w,
        coded_height=coded_h,
        width=width,
        height=height,
        rotation=rotation,
        pixel_format=pixel_format,
        bit_depth=10 if "10" in pixel_format else 8,
        frame_rate=frame_rate,
        audio_streams=tuple(
            AudioStream(index=1 + i, codec="aac", channels=channels, sample_rate=48000)
            for i in range(audio)
        ),
    )
