"""The ffmpeg command line: one decode, `split` into every rendition, the poster and the storyboard.

A pure function of the probe result, the output plan and paths, built with ffmpeg-python and
compiled to an argv list (never a shell string), so it is unit-tested without running ffmpeg.

Why one command: decoding is a large share of the work and is done once instead of once per
output; the filter graph fans the decoded frames out with `split`.

HLS: each rendition is still encoded once. With both formats, its one encode goes through the
`tee` muxer to the MP4 file and to an HLS muxer (fMP4 single file, byte-range playlist) that takes
the video only; the rendition with the ladder's highest audio bitrate also feeds the audio group's
HLS muxer. With HLS only, the renditions are video-only and the audio is encoded once on its own.
The master playlist is written afterwards (vidpipe_processor.hls), from what the muxers wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ffmpeg

from vidpipe.probe import CODEC_WHITELIST, FORMAT_WHITELIST, LOCAL_PROTOCOLS, MediaInfo
from vidpipe.settings import X264_PRESET
from vidpipe_processor.plan import (
    MAX_FRAME_RATE,
    HlsPlan,
    OutputPlan,
    PosterPlan,
    RenditionPlan,
    StoryboardPlan,
)

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
    audio_carrier = _audio_carrier(plan)
    for i, rendition in enumerate(plan.renditions):
        outs.append(
            _rendition_output(
                branch(i), src, plan, rendition, out_dir, preset, rendition.name == audio_carrier
            )
        )
    if plan.hls and plan.hls.audio and audio_carrier is None:
        outs.append(_hls_audio_output(src, plan, plan.hls, out_dir))
    next_branch = len(plan.renditions)
    if plan.poster:
        outs.append(_poster_output(branch(next_branch), plan.poster, out_dir))
        next_branch += 1
    if plan.storyboard:
        outs.append(_storyboard_output(branch(next_branch), plan.storyboard, out_dir))
    stream = ffmpeg.merge_outputs(*outs).global_args(*GLOBAL_ARGS)
    argv: list[str] = stream.compile(cmd=ffmpeg_path, overwrite_output=True)
    return argv


def _audio_carrier(plan: OutputPlan) -> str | None:
    """The rendition whose AAC encode also feeds the HLS audio group (the first one at the
    group's bitrate), or None when the audio is encoded on its own (no MP4 files to share with)."""
    if not (plan.mp4 and plan.hls and plan.hls.audio):
        return None
    bitrate = plan.hls.audio.bitrate_kbps
    return next(r.name for r in plan.renditions if r.audio_bitrate_kbps == bitrate)


def _rendition_output(
    video: Any,
    src: Any,
    plan: OutputPlan,
    rendition: RenditionPlan,
    out_dir: Path,
    preset: str,
    carries_hls_audio: bool,
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
    if plan.audio is not None and plan.mp4:
        streams.append(src[str(plan.audio.index)])
        options |= {"c:a": "aac", "b:a": f"{rendition.audio_bitrate_kbps}k"}
        if plan.audio_channels is not None:
            options["ac"] = plan.audio_channels
    mp4 = out_dir / rendition.file_name
    if plan.hls is None:
        return ffmpeg.output(*streams, str(mp4), movflags="+faststart", **options)
    options |= gop_options(plan.hls)
    variant = next(x for x in plan.hls.variants if x.rendition == rendition.name)
    video_hls = hls_options(plan.hls, out_dir / variant.media_name)
    if not plan.mp4:
        return ffmpeg.output(*streams, str(out_dir / variant.playlist_name), **options, **video_hls)
    slaves = [
        tee_slave({"f": "mp4", "movflags": "+faststart"}, mp4),
        tee_slave({**video_hls, "select": "v"}, out_dir / variant.playlist_name),
    ]
    if carries_hls_audio and plan.hls.audio:
        audio = plan.hls.audio
        audio_hls = hls_options(plan.hls, out_dir / audio.media_name)
        slaves.append(tee_slave({**audio_hls, "select": "a"}, out_dir / audio.playlist_name))
    return ffmpeg.output(*streams, "|".join(slaves), f="tee", **options)


def gop_options(hls: HlsPlan) -> dict[str, Any]:
    """Keyframes at the same timestamps on every rendition, and nowhere else: forced every
    `keyframe_seconds` of presentation time, IDR (closed GOP), no scene-cut keyframes, and a
    keyint above the frames between two forced ones at the highest frame rate we output."""
    return {
        "force_key_frames": f"expr:gte(t,n_forced*{hls.keyframe_seconds:g})",
        "forced-idr": 1,
        "flags": "+cgop",
        "sc_threshold": 0,
        "g": int(hls.keyframe_seconds * MAX_FRAME_RATE) + 1,
    }


def hls_options(hls: HlsPlan, media: Path) -> dict[str, Any]:
    """One HLS muxer: VOD playlist (EXT-X-ENDLIST), fMP4 segments in one file addressed by byte
    ranges (the init segment too), so the set of objects is known before the job runs."""
    return {
        "f": "hls",
        "hls_time": hls.segment_seconds,
        "hls_playlist_type": "vod",
        "hls_segment_type": "fmp4",
        "hls_flags": "single_file+independent_segments",
        "hls_segment_filename": str(media),
    }


# Characters the tee muxer's slave syntax gives a meaning to ([options]path|next).
_TEE_SPECIAL = frozenset("[]|:\\'")


def tee_slave(options: dict[str, Any], path: Path) -> str:
    """One `[key=value:...]path` slave of the tee muxer. Our paths are our own work directory;
    one with a character the syntax would misread is refused rather than escaped."""
    values = [str(v) for v in options.values()]
    for text in (str(path), *values):
        if _TEE_SPECIAL & set(text):
            raise ValueError(f"not usable in a tee muxer slave: {text!r}")
    return "[" + ":".join(f"{k}={v}" for k, v in options.items()) + "]" + str(path)


def _hls_audio_output(src: Any, plan: OutputPlan, hls: HlsPlan, out_dir: Path) -> Any:
    """The audio group on its own (HLS only: no MP4 encode to share): the source's audio once."""
    assert plan.audio is not None and hls.audio is not None
    options: dict[str, Any] = {
        "c:a": "aac",
        "b:a": f"{hls.audio.bitrate_kbps}k",
        "map_metadata": "-1",
        "map_chapters": "-1",
    }
    if plan.audio_channels is not None:
        options["ac"] = plan.audio_channels
    return ffmpeg.output(
        src[str(plan.audio.index)],
        str(out_dir / hls.audio.playlist_name),
        **options,
        **hls_options(hls, out_dir / hls.audio.media_name),
    )


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
