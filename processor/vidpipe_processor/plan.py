"""What to produce for one job: a pure function of the probed source and the requested outputs.

Decisions that depend on the source (which renditions fit without upscaling, output sizes, when
to take the poster, how the storyboard grid is laid out) are made here once, so the ffmpeg command,
the WebVTT index and the manifest all agree, and each decision is unit-tested without ffmpeg.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vidpipe import keys
from vidpipe.keys import POSTER_NAME, STORYBOARD_IMAGE_NAME, STORYBOARD_VTT_NAME
from vidpipe.models import Outputs
from vidpipe.probe import AudioStream, MediaInfo

# The seed took the poster at a fixed 10 s and broke on shorter videos. 10% of the duration is
# always inside the video and past the black or fading first frames of short clips; the 10 s cap
# keeps the poster of long videos near their start, where the title usually is.
POSTER_FRACTION = 0.10
POSTER_MAX_SECONDS = 10.0
POSTER_MAX_HEIGHT = 1080
# Wider than 4:1 (or taller than 1:4) is no camera's picture; see width_for_height.
MAX_DISPLAY_ASPECT = 4.0
# A sprite sheet stays a reasonable download and well inside JPEG's 65535 px limit: beyond this
# many tiles, the interval grows instead.
STORYBOARD_MAX_TILES = 400
# Every player handles up to 60 fps; high-speed captures are halved until they fit.
MAX_FRAME_RATE = 60.0
# Stereo is what every web player decodes; surround sources are downmixed.
MAX_AUDIO_CHANNELS = 2
# Apple's HLS authoring guide: 6 s segments or less; 4 s starts playback sooner at a few per
# cent of size. Keyframes come twice per segment (every 2 s), so a seek lands near its target.
HLS_SEGMENT_SECONDS = 4


@dataclass(frozen=True)
class RenditionPlan:
    name: str
    file_name: str
    width: int
    height: int
    video_bitrate_kbps: int | None
    audio_bitrate_kbps: int


@dataclass(frozen=True)
class PosterPlan:
    file_name: str
    time_seconds: float
    width: int
    height: int


@dataclass(frozen=True)
class StoryboardPlan:
    image_name: str
    vtt_name: str
    interval_seconds: float
    tile_width: int
    tile_height: int
    columns: int
    rows: int
    tiles: int


@dataclass(frozen=True)
class HlsVariantPlan:
    rendition: str
    playlist_name: str
    media_name: str


@dataclass(frozen=True)
class HlsAudioPlan:
    """The one audio group: the source's audio encoded once, at the ladder's highest bitrate."""

    playlist_name: str
    media_name: str
    bitrate_kbps: int
    channels: int


@dataclass(frozen=True)
class HlsPlan:
    master_name: str
    segment_seconds: int
    # Every rendition gets keyframes at the same timestamps (multiples of this) and no others,
    # so their segments start at the same PTS and a player switches between them cleanly.
    keyframe_seconds: float
    variants: tuple[HlsVariantPlan, ...]
    audio: HlsAudioPlan | None

    @property
    def file_names(self) -> list[str]:
        names = [self.master_name]
        for variant in self.variants:
            names += [variant.playlist_name, variant.media_name]
        if self.audio:
            names += [self.audio.playlist_name, self.audio.media_name]
        return names


@dataclass(frozen=True)
class OutputPlan:
    renditions: tuple[RenditionPlan, ...]
    audio: AudioStream | None
    audio_channels: int | None
    # None keeps the source frame rate (variable frame rate passes through unchanged).
    frame_rate_cap: float | None
    poster: PosterPlan | None
    storyboard: StoryboardPlan | None
    requested_audio_track: int
    # One MP4 file per rendition; False when only HLS was asked for.
    mp4: bool = True
    hls: HlsPlan | None = None

    @property
    def file_names(self) -> list[str]:
        names = [r.file_name for r in self.renditions] if self.mp4 else []
        if self.hls:
            names += self.hls.file_names
        if self.poster:
            names.append(self.poster.file_name)
        if self.storyboard:
            names += [self.storyboard.image_name, self.storyboard.vtt_name]
        return names


def even_floor(value: float) -> int:
    """The largest even integer <= value, at least 2: H.264 in 4:2:0 needs even dimensions."""
    return max(2, int(value) // 2 * 2)


def even_round(value: float) -> int:
    """The nearest even integer, halves rounded up as ffmpeg's `scale=-2:H` does, at least 2."""
    return max(2, math.floor(value / 2 + 0.5) * 2)


def width_for_height(info: MediaInfo, height: int) -> int:
    """The even width that keeps the source's display aspect ratio at `height`.

    Capped at MAX_DISPLAY_ASPECT times the height whatever the source claims: the probe refuses
    implausible pixel aspect ratios, and this keeps an encoder from being asked for a 10240x720
    "720p" should such a source slip through under other limits.
    """
    width = even_round(height * info.width / info.height)
    return min(width, even_floor(height * MAX_DISPLAY_ASPECT))


def plan_outputs(
    info: MediaInfo, outputs: Outputs, *, segment_seconds: int = HLS_SEGMENT_SECONDS
) -> OutputPlan:
    # Rendition names are unique by construction: the Outputs model refuses duplicates.
    renditions = plan_renditions(info, outputs)
    audio = pick_audio(info, outputs.audio_track)
    channels = _audio_channels(info, outputs.audio_track)
    return OutputPlan(
        renditions=renditions,
        audio=audio,
        audio_channels=channels,
        frame_rate_cap=frame_rate_cap(info.frame_rate),
        poster=plan_poster(info) if outputs.poster else None,
        storyboard=(
            plan_storyboard(
                info,
                outputs.storyboard.interval_seconds,
                outputs.storyboard.tile_width,
                outputs.storyboard.columns,
            )
            if outputs.storyboard.enabled
            else None
        ),
        requested_audio_track=outputs.audio_track,
        mp4="mp4" in outputs.formats,
        hls=(
            plan_hls(renditions, audio, channels, segment_seconds)
            if "hls" in outputs.formats
            else None
        ),
    )


def keyframe_seconds(segment_seconds: int) -> float:
    """Two keyframes per segment (one for a 1 s segment): segments cut at a keyframe, so each
    one starts at a multiple of the segment length on every rendition."""
    return segment_seconds / 2 if segment_seconds >= 2 else float(segment_seconds)


def plan_hls(
    renditions: tuple[RenditionPlan, ...],
    audio: AudioStream | None,
    audio_channels: int | None,
    segment_seconds: int,
) -> HlsPlan:
    return HlsPlan(
        master_name=keys.MASTER_PLAYLIST_NAME,
        segment_seconds=segment_seconds,
        keyframe_seconds=keyframe_seconds(segment_seconds),
        variants=tuple(
            HlsVariantPlan(
                rendition=r.name,
                playlist_name=keys.rendition_playlist_name(r.name),
                media_name=keys.rendition_media_name(r.name),
            )
            for r in renditions
        ),
        audio=(
            HlsAudioPlan(
                playlist_name=keys.AUDIO_PLAYLIST_NAME,
                media_name=keys.AUDIO_MEDIA_NAME,
                bitrate_kbps=max(r.audio_bitrate_kbps for r in renditions),
                # Unknown (0) is treated as stereo, what the AAC encoder is then asked for.
                channels=audio_channels or audio.channels or MAX_AUDIO_CHANNELS,
            )
            if audio is not None
            else None
        ),
    )


def plan_renditions(info: MediaInfo, outputs: Outputs) -> tuple[RenditionPlan, ...]:
    """Requested renditions that do not upscale; the source size when all of them would."""
    kept = [r for r in outputs.renditions if r.height <= info.height]
    if kept:
        chosen = [(r, even_floor(r.height)) for r in kept]
    else:
        # Nothing fits: one rendition at the source size, under the smallest requested name so the
        # client still finds a key it asked for (the manifest says the real height).
        smallest = min(outputs.renditions, key=lambda r: r.height)
        chosen = [(smallest, even_floor(info.height))]
    return tuple(
        RenditionPlan(
            name=r.name,
            file_name=keys.rendition_file_name(r.name),
            width=width_for_height(info, height),
            height=height,
            video_bitrate_kbps=r.video_bitrate_kbps,
            audio_bitrate_kbps=r.audio_bitrate_kbps,
        )
        for r, height in chosen
    )


def pick_audio(info: MediaInfo, track: int) -> AudioStream | None:
    """The requested audio track (counted among audio streams), else the first, else none."""
    if not info.audio_streams:
        return None
    if track < len(info.audio_streams):
        return info.audio_streams[track]
    return info.audio_streams[0]


def _audio_channels(info: MediaInfo, track: int) -> int | None:
    audio = pick_audio(info, track)
    if audio is None or 0 < audio.channels <= MAX_AUDIO_CHANNELS:
        return None
    return MAX_AUDIO_CHANNELS


def frame_rate_cap(frame_rate: float) -> float | None:
    if frame_rate <= MAX_FRAME_RATE:
        return None
    rate = frame_rate
    while rate > MAX_FRAME_RATE:
        rate /= 2
    return round(rate, 3)


def poster_time(duration_seconds: float) -> float:
    return round(min(duration_seconds * POSTER_FRACTION, POSTER_MAX_SECONDS), 3)


def plan_poster(info: MediaInfo) -> PosterPlan:
    height = even_floor(min(info.height, POSTER_MAX_HEIGHT))
    return PosterPlan(
        file_name=POSTER_NAME,
        time_seconds=poster_time(info.duration_seconds),
        width=width_for_height(info, height),
        height=height,
    )


def plan_storyboard(
    info: MediaInfo, interval_seconds: float, tile_width: int, columns: int
) -> StoryboardPlan:
    # Long videos get a longer interval rather than an unbounded sprite.
    interval = max(interval_seconds, info.duration_seconds / STORYBOARD_MAX_TILES)
    interval = round(interval, 3)
    tiles = max(1, math.ceil(info.duration_seconds / interval - 1e-6))
    width = even_floor(tile_width)
    height = even_round(width * info.height / info.width)
    cols = min(columns, tiles)
    return StoryboardPlan(
        image_name=STORYBOARD_IMAGE_NAME,
        vtt_name=STORYBOARD_VTT_NAME,
        interval_seconds=interval,
        tile_width=width,
        tile_height=height,
        columns=cols,
        rows=math.ceil(tiles / cols),
        tiles=tiles,
    )
