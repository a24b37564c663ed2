"""The ffmpeg command line: one decode, `split` into every rendition, the poster and the storyboard.

A pure function of the probe result, the output plan and paths, built with ffmpeg-python and
compiled to an argv list (never a shell string), so it is unit-tested without running ffmpeg.

Why one command: decoding is a large share of the work and is done once instead of once per
output; the filter graph fans the decoded frames out with `split`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ffmpeg

from vidpipe.probe import CODEC_WHITELIST, FORMAT_WHITELIST, LOCAL_PROTOCOLS, MediaInfo
from vidpipe.settings import X264_PRESET
from vidpipe_processor.plan import OutputPlan, PosterPlan, RenditionPlan, StoryboardPlan

# x264's default quality; visually good for web delivery at a reasonable size.
X264_CRF = 23
POSTER_JPEG_QUALITY = 2
STORYBOARD_JPEG_QUALITY = 5
# The progress block ffmpeg writes to stdout, and quiet stderr so its tail is the actual error.
GLOBAL_ARGS = ("-hide_banner", "-nostdin", "-loglevel", "error", "-progress", "pipe:1", "-nostats")


def input_options() -> dict[str, Any]:
    """Same guard rails as the probe: only allowed demuxers and decoders, only local files."""
    return {
        "format_whitelist": FORMAT_WHITELIST,
        "codec_whitelist": CODEC_WHITELIST,
        "protocol_whitelist": LOCAL_PROTOCOLS,
    }


def build_ffmpeg_argv(
    info: MediaInfo,
    plan: OutputPlan,
    source: Path,
    out_dir: Path,
    *,
    ffmpeg_path: str = "ffmpeg",
    preset: str = X264_PRESET,
) -> list[str]:
    """argv for the one ffmpeg run that writes every planned video and image output."""
    src = ffmpeg.input(str(source), **input_options())
    # ffmpeg applies the display matrix (autorotate) before our filters, so every size in the plan
    # is in display orientation and the outputs carry no rotation of their own.
    video = src[str(info.video_index)]
    if plan.frame_rate_cap is not None:
        video = video.filter("fps", fps=plan.frame_rate_cap)
    branches = len(plan.renditions) + bool(plan.poster) + bool(plan.storyboard)
    split = video.filter_multi_output("split") if branches > 1 else None

    def branch(i: int) -> Any:
        return split.stream(i) if split is not None else video

    outs: list[Any] = []
    for i, rendition in enumerate(plan.renditions):
        outs.append(_rendition_output(branch(i), src, plan, rendition, out_dir, preset))
    next_branch = len(plan.renditions)
    if plan.poster:
        outs.append(_poster_output(branch(next_branch), plan.poster, out_dir))
        next_branch += 1
    if plan.storyboard:
        outs.append(_storyboard_output(branch(next_branch), plan.storyboard, out_dir))
    stream = ffmpeg.merge_outputs(*outs).global_args(*GLOBAL_ARGS)
    argv: list[str] = stream.compile(cmd=ffmpeg_path, overwrite_output=True)
    return argv


def _rendition_output(
    video: Any, src: Any, plan: OutputPlan, rendition: RenditionPlan, out_dir: Path, preset: str
) -> Any:
    # Explicit size instead of scale=-2:H: the plan already computed it from the display aspect
    # ratio, which also squares anamorphic pixels (setsar=1). format=yuv420p turns 10-bit and
    # 4:2:2/4:4:4 sources into the 8-bit 4:2:0 every browser decodes.
    v = (
        video.filter("scale", w=rendition.width, h=rendition.height)
        .filter("setsar", "1")
        .filter("format", "yuv420p")
    )
    options: dict[str, Any] = {
        "c:v": "libx264",
        "preset": preset,
        "profile:v": "high",
        "movflags": "+faststart",
        # Keep the source timestamps: phone videos are variable frame rate, and forcing a constant
        # rate from a bogus container rate (mkv reports 1000 fps) would duplicate frames massively.
        "fps_mode:v": "vfr",
        # Drop container tags (phone videos carry GPS locations) and chapters.
        "map_metadata": "-1",
        "map_chapters": "-1",
    }
    if rendition.video_bitrate_kbps is None:
        options["crf"] = X264_CRF
    else:
        kbps = rendition.video_bitrate_kbps
        # Average bitrate, capped at the same peak over a 2 s buffer: predictable size, no spikes.
        options |= {"b:v": f"{kbps}k", "maxrate": f"{kbps}k", "bufsize": f"{2 * kbps}k"}
    streams = [v]
    if plan.audio is not None:
        streams.append(src[str(plan.audio.index)])
        options |= {"c:a": "aac", "b:a": f"{rendition.audio_bitrate_kbps}k"}
        if plan.audio_channels is not None:
            options["ac"] = plan.audio_channels
    return ffmpeg.output(*streams, str(out_dir / rendition.file_name), **options)


def _poster_output(video: Any, poster: PosterPlan, out_dir: Path) -> Any:
    # select passes frames from the poster time on; trim keeps the first of them and then ends
    # this branch, so split stops feeding it and no frames queue up behind the finished output.
    v = (
        video.filter("select", f"gte(t,{poster.time_seconds:g})")
        .filter("trim", end_frame=1)
        .filter("scale", w=poster.width, h=poster.height)
        .filter("setsar", "1")
    )
    return ffmpeg.output(
        v,
        str(out_dir / poster.file_name),
        **{"frames:v": 1, "q:v": POSTER_JPEG_QUALITY, "update": 1, "f": "image2"},
    )


# The storyboard's frames are written as small numbered JPEGs during the one decode and tiled
# afterwards (`storyboard_tile_argv`). A `tile` filter in the main graph emits nothing until its
# grid is full, near the end of the video, and ffmpeg reports no progress for any output until
# every output has produced something: progress sat at 1% for the whole encode.
STORYBOARD_FRAMES_DIR = "storyboard-frames"
STORYBOARD_FRAME_PATTERN = "%05d.jpg"


def _storyboard_output(video: Any, board: StoryboardPlan, out_dir: Path) -> Any:
    # Tile k shows the first frame at or after k * interval, which is where its WebVTT cue starts.
    # (The fps filter would pick the nearest frame instead and emits nothing for a clip shorter
    # than half an interval.)
    v = (
        video.filter("select", f"gte(t,selected_n*{board.interval_seconds:g})")
        .filter("scale", w=board.tile_width, h=board.tile_height)
        .filter("setsar", "1")
    )
    frames = out_dir / STORYBOARD_FRAMES_DIR / STORYBOARD_FRAME_PATTERN
    return ffmpeg.output(
        v,
        str(frames),
        **{
            "frames:v": board.tiles,
            "q:v": STORYBOARD_JPEG_QUALITY,
            "fps_mode:v": "vfr",
            "f": "image2",
        },
    )


def storyboard_tile_argv(
    board: StoryboardPlan, out_dir: Path, *, ffmpeg_path: str = "ffmpeg"
) -> list[str]:
    """argv that tiles the storyboard's frames (at most `tiles` small JPEGs) into one image."""
    frames = ffmpeg.input(
        str(out_dir / STORYBOARD_FRAMES_DIR / STORYBOARD_FRAME_PATTERN),
        f="image2",
        framerate=1,
        protocol_whitelist=LOCAL_PROTOCOLS,
    )
    out = ffmpeg.output(
        frames.filter("tile", f"{board.columns}x{board.rows}"),
        str(out_dir / board.image_name),
        **{"frames:v": 1, "q:v": STORYBOARD_JPEG_QUALITY, "update": 1, "f": "image2"},
    )
    argv: list[str] = out.global_args("-hide_banner", "-nostdin", "-loglevel", "error").compile(
        cmd=ffmpeg_path, overwrite_output=True
    )
    return argv


def poster_fallback_argv(
    info: MediaInfo, poster: PosterPlan, source: Path, out_dir: Path, *, ffmpeg_path: str = "ffmpeg"
) -> list[str]:
    """The first frame, for sources whose video ends before the poster time (audio runs longer)."""
    v = (
        ffmpeg.input(str(source), **input_options())[str(info.video_index)]
        .filter("scale", w=poster.width, h=poster.height)
        .filter("setsar", "1")
    )
    out = ffmpeg.output(
        v,
        str(out_dir / poster.file_name),
        **{"frames:v": 1, "q:v": POSTER_JPEG_QUALITY, "update": 1, "f": "image2"},
    )
    argv: list[str] = out.global_args("-hide_banner", "-nostdin", "-loglevel", "error").compile(
        cmd=ffmpeg_path, overwrite_output=True
    )
    return argv
