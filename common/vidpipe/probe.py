"""Media probing and the validation policy shared by the upload API and the processor.

Both sides must agree on what a usable video is, so the policy lives here once: the API rejects a
bad upload before a job exists, and the processor refuses it again (exit code BAD_INPUT) in case the
API was bypassed or the limits differ. Running ffprobe (`probe`) is kept apart from reading its JSON
(`parse_probe`) and its errors (`classify_ffprobe_failure`), so the policy is unit-tested on canned
ffprobe output without spawning processes.

Safety: ffprobe is told which demuxers it may use (`-format_whitelist`), which decoders
(`-codec_whitelist`) and which protocols it may open (`-protocol_whitelist`). A playlist (HLS), a
concat/ffconcat list or an image sequence would otherwise make ffprobe and ffmpeg open other local
files or URLs named inside an uploaded file; every decoder is attack surface, so only those of the
codecs people actually upload are enabled. ffprobe runs in the sandbox of `vidpipe.sandbox` (empty
environment, address-space and CPU-time limits); hitting a limit is a verdict on the file.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from vidpipe.errors import BadInput, ErrorCode, VidpipeError
from vidpipe.sandbox import (
    SANDBOX_ENV,
    MiB,
    SandboxLimits,
    hit_cpu_limit,
    hit_memory_limit,
    sandboxed_argv,
)

# Demuxer names as ffmpeg spells them (`ffprobe -demuxers`). ffmpeg matches a demuxer whose name
# is a list ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm") when any element of it is listed here.
ALLOWED_DEMUXERS: Final = ("mov", "mp4", "3gp", "matroska", "webm", "avi", "flv", "mpegts", "asf")
FORMAT_WHITELIST: Final = ",".join(ALLOWED_DEMUXERS)
# Decoder names as ffmpeg spells them (`ffmpeg -decoders`): the codecs of cameras, phones, screen
# recorders and the web, in the accepted containers. Subtitle and data streams need no decoder.
ALLOWED_VIDEO_DECODERS: Final = (
    "h264", "hevc", "vp8", "vp9", "av1", "libdav1d", "mpeg4", "mpeg2video", "mpeg1video",
    "mjpeg", "prores", "dvvideo", "vc1", "wmv3", "wmv2", "wmv1", "flv", "h263",
)  # fmt: skip
ALLOWED_AUDIO_DECODERS: Final = (
    "aac", "aac_fixed", "mp3float", "mp3", "mp2float", "mp2", "ac3", "eac3", "opus", "libopus",
    "vorbis", "flac", "alac", "amrnb", "amrwb", "wmav2", "pcm_s16le", "pcm_s16be", "pcm_s24le",
    "pcm_f32le", "pcm_u8",
)  # fmt: skip
CODEC_WHITELIST: Final = ",".join(ALLOWED_VIDEO_DECODERS + ALLOWED_AUDIO_DECODERS)
LOCAL_PROTOCOLS: Final = "file"
# https needs tls and tcp underneath; nothing else (no crypto:, data:, subfile:, concat:...).
NETWORK_PROTOCOLS: Final = "file,http,https,tcp,tls"

# Human names for demuxers people upload by mistake (or on purpose), for a clear refusal message.
_REFUSED_DEMUXER_NAMES: Final = {
    "hls": "an HLS playlist",
    "concat": "a concat list",
    "ffconcat": "a concat list",
    "image2": "an image sequence",
    "gif": "a GIF image",
    "webp_pipe": "an image",
    "dash": "a DASH manifest",
    "mpjpeg": "a multipart JPEG stream",
    "tty": "a text file",
    "srt": "a subtitle file",
    "ass": "a subtitle file",
    "webvtt": "a subtitle file",
    "mp3": "an audio file",
    "wav": "an audio file",
    "flac": "an audio file",
    "ogg": "an Ogg file",
    "aac": "an audio file",
}
_DEMUXER_ERROR = re.compile(r"\[([A-Za-z0-9_,]+) @ 0x[0-9a-f]+\] Format not on whitelist")
_CODEC_REFUSED = re.compile(r"Codec \(([A-Za-z0-9_]+)\) not on whitelist")
# A stream that claims more frames per second of duration than this describes itself implausibly.
MAX_PLAUSIBLE_FRAME_RATE: Final = 1000.0
# Pixel aspect ratios beyond this (either way) are not real cameras; 2:1 anamorphic lenses are.
MAX_SAMPLE_ASPECT_RATIO: Final = 4.0
# With network=True, these mean the URL could not be read (expired or refused presigned URL,
# storage down): a fault on our side, not a verdict on the file.
_NETWORK_ERROR = re.compile(
    r"Server returned|HTTP error|Connection refused|Connection timed out|Connection reset|"
    r"Network is unreachable|Temporary failure in name resolution|Failed to resolve|"
    r"Input/output error",
    re.IGNORECASE,
)
_PIX_FMT_DEPTH = re.compile(r"(\d+)(le|be)$")
_STILL_IMAGE_HINT = "a single still image, not a video"


@dataclass(frozen=True)
class ProbeLimits:
    """What the platform accepts; both the API and the processor read these from their settings."""

    max_duration_seconds: float = 4 * 3600
    max_pixels: int = 3840 * 2160
    max_streams: int = 16
    timeout_seconds: float = 60.0
    # ffprobe's sandbox: Debian's ffprobe maps ~300 MiB of libraries before reading a byte, so this
    # leaves ~200 MiB of heap, several times what a 4-hour 60 fps MP4's index needs (measured:
    # a 5 M-sample table takes 225 MiB, 20 M samples ~930 MiB without a limit).
    memory_bytes: int = 512 * MiB
    cpu_seconds: int = 30

    @property
    def sandbox(self) -> SandboxLimits:
        return SandboxLimits(memory_bytes=self.memory_bytes, cpu_seconds=self.cpu_seconds)


@dataclass(frozen=True)
class StreamInfo:
    """One line of the stream summary: enough to explain a file without the raw ffprobe dump."""

    index: int
    type: str
    codec: str


@dataclass(frozen=True)
class AudioStream:
    index: int
    codec: str
    channels: int
    sample_rate: int
    language: str | None = None


@dataclass(frozen=True)
class MediaInfo:
    """The facts about a source video that the policy checked and the transcoder needs."""

    duration_seconds: float
    container: str
    format_name: str
    size_bytes: int
    bitrate: int | None
    video_index: int
    video_codec: str
    coded_width: int
    coded_height: int
    # Dimensions as the viewer sees them: rotation and non-square pixels applied.
    width: int
    height: int
    rotation: int
    frame_rate: float
    pixel_format: str
    bit_depth: int
    audio_streams: tuple[AudioStream, ...] = ()
    streams: tuple[StreamInfo, ...] = field(default_factory=tuple)

    def to_json_dict(self) -> dict[str, Any]:
        """camelCase, like the VideoJob resource: this is what metadata.json contains."""
        return {
            "durationSeconds": round(self.duration_seconds, 3),
            "container": self.container,
            "formatName": self.format_name,
            "sizeBytes": self.size_bytes,
            "bitrate": self.bitrate,
            "video": {
                "index": self.video_index,
                "codec": self.video_codec,
                "width": self.width,
                "height": self.height,
                "codedWidth": self.coded_width,
                "codedHeight": self.coded_height,
                "rotation": self.rotation,
                "frameRate": round(self.frame_rate, 3),
                "pixelFormat": self.pixel_format,
                "bitDepth": self.bit_depth,
            },
            "audio": [
                {
                    "index": a.index,
                    "codec": a.codec,
                    "channels": a.channels,
                    "sampleRate": a.sample_rate,
                    "language": a.language,
                }
                for a in self.audio_streams
            ],
            "streams": [asdict(s) for s in self.streams],
        }


class ProbeFailed(VidpipeError):
    """ffprobe could not finish for a reason unrelated to the file (timeout, crash, network)."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.PROCESSING_FAILED) -> None:
        super().__init__(code, message)


def is_url(path: str) -> bool:
    return path.startswith(("http://", "https://"))


def ffprobe_argv(path: str, *, network: bool = False, ffprobe: str = "ffprobe") -> list[str]:
    """The ffprobe command line: whitelisted demuxers and protocols, JSON output.

    `network=True` is the caller's explicit choice to let ffprobe read an http(s) URL (the API
    probes the stored object through a presigned URL); a local path never needs it.
    """
    if is_url(path) and not network:
        raise ValueError("probing a URL needs network=True")
    return [
        ffprobe,
        "-v",
        "error",
        "-protocol_whitelist",
        NETWORK_PROTOCOLS if network else LOCAL_PROTOCOLS,
        "-format_whitelist",
        FORMAT_WHITELIST,
        "-codec_whitelist",
        CODEC_WHITELIST,
        # One decoding thread: probing decodes a few frames, and every thread costs address space.
        "-threads",
        "1",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        # "file:" stops a local name with a colon (e.g. "http:x.mp4") being read as a protocol.
        path if is_url(path) else "file:" + path,
    ]


def probe(
    path: str,
    limits: ProbeLimits,
    *,
    network: bool = False,
    ffprobe: str = "ffprobe",
) -> MediaInfo:
    """Probe `path` (a local file, or an http(s) URL with `network=True`) and apply the policy.

    Raises `BadInput` when the file can never be processed, `ProbeFailed` (retryable) when ffprobe
    timed out, crashed or could not reach the URL.
    """
    if not is_url(path) and Path(path).stat().st_size == 0:
        raise BadInput(ErrorCode.EMPTY_UPLOAD, "the file is empty")
    argv = ffprobe_argv(path, network=network, ffprobe=ffprobe)
    try:
        done = subprocess.run(
            sandboxed_argv(argv, limits.sandbox),
            capture_output=True,
            timeout=limits.timeout_seconds,
            check=False,
            env=SANDBOX_ENV,
        )
    except subprocess.TimeoutExpired as exc:
        raise ProbeFailed(f"ffprobe did not finish within {limits.timeout_seconds:g}s") from exc
    # Never echo the path or URL back: a presigned URL in an error message would leak a credential.
    stderr = (
        done.stderr.decode("utf-8", "replace").replace(argv[-1], "<input>").replace(path, "<input>")
    )
    if done.returncode != 0:
        raise classify_ffprobe_failure(done.returncode, stderr, network=network)
    if hit_memory_limit(stderr):
        # libavformat can carry on with a truncated index after a failed allocation.
        raise too_complex("memory")
    try:
        data = json.loads(done.stdout)
    except ValueError as exc:
        raise ProbeFailed("ffprobe printed output that is not JSON") from exc
    return parse_probe(data, limits)


def too_complex(resource: str) -> BadInput:
    return BadInput(
        ErrorCode.MEDIA_TOO_COMPLEX,
        f"reading the file needed more {resource} than allowed; it is damaged or crafted "
        "(for example sample tables claiming millions of frames)",
    )


def limit_verdict(returncode: int, stderr: str) -> BadInput | None:
    """The file's fault when a sandboxed ffprobe or ffmpeg hit its CPU-time or memory limit.

    None otherwise, and for a child killed by any other signal whatever its stderr says: that is
    not the file's doing, and each caller reports it as its own retryable fault.
    """
    if hit_cpu_limit(returncode):
        return too_complex("CPU time")
    if returncode >= 0 and hit_memory_limit(stderr):
        return too_complex("memory")
    return None


def refused_codec(stderr: str) -> BadInput | None:
    """`unsupported_codec` when ffprobe or ffmpeg refused a decoder not in `CODEC_WHITELIST`."""
    refused = _CODEC_REFUSED.search(stderr)
    return None if refused is None else unsupported_codec(refused.group(1))


def classify_ffprobe_failure(
    returncode: int, stderr: str, *, network: bool = False
) -> VidpipeError:
    """Turn a failed ffprobe run into a bad-input verdict or a retryable fault.

    A killed ffprobe (negative return code) or an unreachable URL says nothing about the file, so
    only those are retryable; anything else ffprobe refuses is a bad input.
    """
    if (verdict := limit_verdict(returncode, stderr)) is not None:
        return verdict
    if returncode < 0:
        return ProbeFailed(f"ffprobe was killed by signal {-returncode}")
    if network and _NETWORK_ERROR.search(stderr):
        return ProbeFailed(
            "ffprobe could not read the source over the network", ErrorCode.STORAGE_UNAVAILABLE
        )
    refused = _DEMUXER_ERROR.search(stderr)
    if refused:
        demuxer = refused.group(1)
        first = demuxer.split(",")[0]
        what = _REFUSED_DEMUXER_NAMES.get(first)
        if what is None and first.endswith("_pipe"):
            what = "an image"
        what = what or f"the {first} format"
        return BadInput(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"the file is {what}, which is not accepted; upload a video file "
            "(MP4, MOV, MKV, WebM, AVI, FLV, MPEG-TS, WMV or 3GP)",
        )
    if (codec := refused_codec(stderr)) is not None:
        return codec
    detail = _stderr_summary(stderr)
    return BadInput(
        ErrorCode.NOT_A_VIDEO,
        "the file is not a readable video" + (f" ({detail})" if detail else ""),
    )


def unsupported_codec(decoder: str) -> BadInput:
    return BadInput(
        ErrorCode.UNSUPPORTED_CODEC,
        f"the codec {decoder} is not accepted; upload H.264, HEVC, VP8/VP9, AV1, MPEG-2/4, "
        "ProRes, DV, MJPEG or WMV video with AAC, MP3, AC-3, Opus, Vorbis, FLAC or PCM audio",
        {"codec": decoder},
    )


def parse_probe(data: Mapping[str, Any], limits: ProbeLimits) -> MediaInfo:
    """Apply the policy to ffprobe's JSON (`-show_format -show_streams`) and summarise it."""
    fmt: Mapping[str, Any] = data.get("format") or {}
    streams: Sequence[Mapping[str, Any]] = data.get("streams") or []
    format_name = str(fmt.get("format_name", ""))
    if not format_name or not set(format_name.split(",")) & set(ALLOWED_DEMUXERS):
        raise BadInput(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"the container format {format_name or 'unknown'!r} is not accepted",
        )
    if len(streams) > limits.max_streams:
        raise BadInput(
            ErrorCode.TOO_MANY_STREAMS,
            f"the file has {len(streams)} streams; at most {limits.max_streams} are accepted",
        )
    video = _pick_video_stream(streams)
    codec = str(video.get("codec_name") or "")
    coded_w, coded_h = _int(video.get("width")), _int(video.get("height"))
    if not codec or codec == "none" or coded_w <= 0 or coded_h <= 0:
        raise BadInput(
            ErrorCode.NOT_A_VIDEO,
            "the video stream cannot be decoded (unknown codec or no picture size)",
        )
    if coded_w * coded_h > limits.max_pixels:
        raise BadInput(
            ErrorCode.RESOLUTION_LIMIT_EXCEEDED,
            f"the video is {coded_w}x{coded_h} ({coded_w * coded_h} pixels); "
            f"at most {limits.max_pixels} pixels are accepted",
        )
    if not video.get("pix_fmt"):
        # ffprobe decoded no picture (it reads the pixel format from the first decoded frame):
        # e.g. sample tables claiming millions of 1-byte frames.
        raise BadInput(ErrorCode.CORRUPT_MEDIA, "no picture of the video stream can be decoded")
    duration = _duration(fmt, streams)
    if duration is None or duration <= 0:
        raise BadInput(ErrorCode.NOT_A_VIDEO, "the duration of the video cannot be determined")
    _check_plausible(video, duration)
    if duration > limits.max_duration_seconds:
        raise BadInput(
            ErrorCode.DURATION_LIMIT_EXCEEDED,
            f"the video lasts {duration:.0f}s; at most {limits.max_duration_seconds:.0f}s "
            "are accepted",
        )
    rotation = _rotation(video)
    width, height = _display_size(coded_w, coded_h, rotation, str(video.get("sample_aspect_ratio")))
    if width * height > limits.max_pixels:
        # Non-square pixels are stretched for display, and every rendition is sized from there.
        raise BadInput(
            ErrorCode.RESOLUTION_LIMIT_EXCEEDED,
            f"the video displays at {width}x{height} ({width * height} pixels, coded "
            f"{coded_w}x{coded_h}); at most {limits.max_pixels} pixels are accepted",
        )
    pix_fmt = str(video.get("pix_fmt") or "unknown")
    return MediaInfo(
        duration_seconds=duration,
        container=_container(format_name, fmt, streams),
        format_name=format_name,
        size_bytes=_int(fmt.get("size")),
        bitrate=_int(fmt.get("bit_rate")) or None,
        video_index=_int(video.get("index")),
        video_codec=codec,
        coded_width=coded_w,
        coded_height=coded_h,
        width=width,
        height=height,
        rotation=rotation,
        frame_rate=_frame_rate(video),
        pixel_format=pix_fmt,
        bit_depth=_bit_depth(video, pix_fmt),
        audio_streams=tuple(
            AudioStream(
                index=_int(s.get("index")),
                codec=str(s.get("codec_name") or "unknown"),
                channels=_int(s.get("channels")),
                sample_rate=_int(s.get("sample_rate")),
                language=(s.get("tags") or {}).get("language"),
            )
            for s in streams
            if s.get("codec_type") == "audio" and s.get("codec_name")
        ),
        streams=tuple(
            StreamInfo(
                index=_int(s.get("index")),
                type=str(s.get("codec_type") or "unknown"),
                codec=str(s.get("codec_name") or "unknown"),
            )
            for s in streams
        ),
    )


def _check_plausible(video: Mapping[str, Any], duration: float) -> None:
    frames = _int(video.get("nb_frames"))
    if frames > duration * MAX_PLAUSIBLE_FRAME_RATE:
        raise BadInput(
            ErrorCode.CORRUPT_MEDIA,
            f"the video stream claims {frames} frames in {duration:.3g}s",
        )
    num, den = _ratio(str(video.get("sample_aspect_ratio")))
    if num > 0 and den > 0 and max(num / den, den / num) > MAX_SAMPLE_ASPECT_RATIO:
        raise BadInput(
            ErrorCode.CORRUPT_MEDIA,
            f"the video claims a pixel aspect ratio of {num}:{den}; "
            f"at most {MAX_SAMPLE_ASPECT_RATIO:g}:1 either way is accepted",
        )


def _pick_video_stream(streams: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    videos = [s for s in streams if s.get("codec_type") == "video"]
    if not videos:
        raise BadInput(ErrorCode.NO_VIDEO_STREAM, "the file has no video stream")
    for stream in videos:
        disposition = stream.get("disposition") or {}
        # Cover art in music files and still-image tracks are pictures, not the video.
        if disposition.get("attached_pic") or disposition.get("still_image"):
            continue
        nb_frames = stream.get("nb_frames")
        if nb_frames is not None and _int(nb_frames) == 1:
            continue
        return stream
    raise BadInput(ErrorCode.NO_VIDEO_STREAM, f"the file has {_STILL_IMAGE_HINT}")


def _duration(fmt: Mapping[str, Any], streams: Sequence[Mapping[str, Any]]) -> float | None:
    value = _float(fmt.get("duration"))
    if value is not None:
        return value
    durations = [d for d in (_float(s.get("duration")) for s in streams) if d is not None]
    return max(durations) if durations else None


def _rotation(video: Mapping[str, Any]) -> int:
    """Counter-clockwise degrees (0, 90, 180 or 270), as ffprobe reports the display matrix."""
    for side in video.get("side_data_list") or []:
        if "rotation" in side:
            return _normalise_angle(_float(side.get("rotation")) or 0.0)
    # Old muxers only wrote a `rotate` tag, which counts clockwise.
    rotate = _float((video.get("tags") or {}).get("rotate"))
    return _normalise_angle(-rotate) if rotate else 0


def _normalise_angle(degrees: float) -> int:
    return round(degrees / 90.0) * 90 % 360


def _display_size(width: int, height: int, rotation: int, sar: str) -> tuple[int, int]:
    num, den = _ratio(sar)
    if num > 0 and den > 0 and num != den:
        # Anamorphic video (DV, some broadcast): stretch the width to square pixels.
        width = max(2, round(width * num / den))
    return (height, width) if rotation in (90, 270) else (width, height)


def _frame_rate(video: Mapping[str, Any]) -> float:
    for key in ("avg_frame_rate", "r_frame_rate"):
        num, den = _ratio(str(video.get(key)), sep="/")
        if num > 0 and den > 0:
            return num / den
    return 0.0


def _bit_depth(video: Mapping[str, Any], pix_fmt: str) -> int:
    raw = _int(video.get("bits_per_raw_sample"))
    if raw > 0:
        return raw
    match = _PIX_FMT_DEPTH.search(pix_fmt)
    return int(match.group(1)) if match else 8


def _container(
    format_name: str, fmt: Mapping[str, Any], streams: Sequence[Mapping[str, Any]]
) -> str:
    """A short container name for people, derived from the demuxer and the brand."""
    first = format_name.split(",")[0]
    if first == "mov":
        brand = str((fmt.get("tags") or {}).get("major_brand", "")).strip().lower()
        if brand == "qt":
            return "mov"
        return "3gp" if brand.startswith("3g") else "mp4"
    if first == "matroska":
        webm_codecs = {"vp8", "vp9", "av1", "opus", "vorbis"}
        codecs = {
            str(s.get("codec_name")) for s in streams if s.get("codec_type") in {"video", "audio"}
        }
        return "webm" if codecs and codecs <= webm_codecs else "matroska"
    return {"asf": "wmv"}.get(first, first)


def _ratio(text: str, sep: str = ":") -> tuple[int, int]:
    parts = text.split(sep)
    if len(parts) != 2:
        return 0, 0
    return _int(parts[0]), _int(parts[1])


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float | None:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


_LOG_PREFIX = re.compile(r"^(\[[^]]* @ 0x[0-9a-f]+\] |<input>: )")


def _stderr_summary(stderr: str) -> str:
    """ffprobe's error lines without the `[demuxer @ 0x...]` noise, deduplicated, kept short."""
    lines: list[str] = []
    for raw in stderr.splitlines():
        line = _LOG_PREFIX.sub("", raw.strip()).strip()
        if line and line not in lines:
            lines.append(line)
    return "; ".join(lines[-3:])[:300]
