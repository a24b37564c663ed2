"""Media fixtures for the processor's integration tests, made once per session with ffmpeg's
lavfi sources (testsrc2 pictures, sine tones): no downloaded media, and small enough for 2 cores.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

LAVFI_VIDEO = "testsrc2=size={size}:rate={rate}:duration={duration}"
LAVFI_TONE = "sine=frequency={freq}:duration={duration}"


@dataclass(frozen=True)
class Media:
    """Every source file the tests upload, by what makes it interesting."""

    hd_with_audio: Path
    no_audio: Path
    two_seconds: Path
    rotated: Path
    odd_444: Path
    ten_bit: Path
    two_audio_tracks: Path
    variable_frame_rate: Path
    long_for_sigterm: Path
    video_shorter_than_audio: Path
    empty: Path
    text: Path
    truncated: Path
    hls_playlist: Path
    concat_list: Path
    png_image: Path


def ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
        check=True,
        timeout=120,
    )


def video(size: str, duration: float, rate: int = 25) -> list[str]:
    return ["-f", "lavfi", "-i", LAVFI_VIDEO.format(size=size, rate=rate, duration=duration)]


def tone(duration: float, freq: int = 440) -> list[str]:
    return ["-f", "lavfi", "-i", LAVFI_TONE.format(freq=freq, duration=duration)]


# Sources are encoded as fast as possible; their quality does not matter.
FAST_H264 = ["-c:v", "libx264", "-preset", "ultrafast"]


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    d = tmp_path_factory.mktemp("media")
    m = Media(
        hd_with_audio=d / "hd.mp4",
        no_audio=d / "no-audio.mp4",
        two_seconds=d / "two-seconds.mp4",
        rotated=d / "rotated.mp4",
        odd_444=d / "odd-444.mkv",
        ten_bit=d / "ten-bit.mkv",
        two_audio_tracks=d / "two-audio.mp4",
        variable_frame_rate=d / "vfr.mkv",
        long_for_sigterm=d / "long.mp4",
        video_shorter_than_audio=d / "short-video.mp4",
        empty=d / "empty.mp4",
        text=d / "text.mp4",
        truncated=d / "truncated.mp4",
        hls_playlist=d / "playlist.mp4",
        concat_list=d / "concat.mp4",
        png_image=d / "image.mp4",
    )
    ffmpeg(*video("1920x1080", 2), *tone(2), *FAST_H264, "-c:a", "aac", str(m.hd_with_audio))
    ffmpeg(*video("320x240", 3), *FAST_H264, str(m.no_audio))
    ffmpeg(*video("640x360", 2), *tone(2), *FAST_H264, "-c:a", "aac", str(m.two_seconds))
    # A phone held upright: landscape pixels plus a display matrix saying "rotate 90 degrees".
    # ffmpeg 5.1 turns a `rotate` tag into a display matrix only when remuxing (-c copy).
    landscape = d / "landscape.mp4"
    ffmpeg(*video("320x240", 2), *tone(2), *FAST_H264, "-c:a", "aac", str(landscape))
    ffmpeg("-i", str(landscape), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(m.rotated))
    ffmpeg(*video("320x240", 2), "-vf", "scale=321:241", *FAST_H264, "-pix_fmt", "yuv444p",
           str(m.odd_444))  # fmt: skip
    ffmpeg(*video("320x240", 2), *tone(2), *FAST_H264, "-pix_fmt", "yuv420p10le", "-c:a", "aac",
           str(m.ten_bit))  # fmt: skip
    # Track 0 is mono, track 1 stereo: the output's channel count tells which one was used.
    ffmpeg(
        *video("320x240", 2),
        *tone(2, 440),
        *tone(2, 880),
        "-filter_complex",
        "[2:a]aformat=channel_layouts=stereo[stereo]",
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-map",
        "[stereo]",
        *FAST_H264,
        "-c:a",
        "aac",
        str(m.two_audio_tracks),
    )
    # Irregular frame timestamps: a random third of the frames dropped, timestamps kept.
    ffmpeg(*video("320x240", 3), "-vf", "select='gt(random(0),0.33)'", "-fps_mode", "vfr",
           *FAST_H264, str(m.variable_frame_rate))  # fmt: skip
    ffmpeg(*video("320x240", 40, rate=25), *FAST_H264, str(m.long_for_sigterm))
    # Half a second of picture, ten of sound: the poster time (1 s) is past the last frame.
    ffmpeg(*video("320x240", 0.5), *tone(10), *FAST_H264, "-c:a", "aac",
           str(m.video_shorter_than_audio))  # fmt: skip

    m.empty.write_bytes(b"")
    m.text.write_text("this is a text file, not a video\n" * 20)
    # Default MP4s keep the index (moov) at the end: cutting the tail loses it.
    data = m.no_audio.read_bytes()
    m.truncated.write_bytes(data[: len(data) * 2 // 3])
    # Both would make ffmpeg read another local file named inside the upload.
    m.hls_playlist.write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n"
        f"#EXTINF:3.0,\n{m.no_audio}\n#EXT-X-ENDLIST\n"
    )
    m.concat_list.write_text(f"ffconcat version 1.0\nfile '{m.no_audio}'\n")
    ffmpeg(*video("320x240", 1), "-frames:v", "1", "-f", "image2", "-c:v", "png", str(m.png_image))
    return m
