"""The HLS ladder after ffmpeg: read the media playlists its muxers wrote, write the master
playlist, and describe the ladder for the manifest.

ffmpeg's HLS muxer writes a master playlist only for one muxer fed every stream (var_stream_map),
which cannot also share the encode with the MP4 files (ffmpeg_graph.py). So each rendition has its
own muxer and the master is written here, from facts read back from the outputs: each variant's
peak and average bit rate (segment sizes over durations, audio group included, as RFC 8216
section 4.3.4.2 asks), and its CODECS string from the avcC box of its init segment.

Playlists are parsed strictly: a line this module does not expect means ffmpeg wrote something
other than what the players and the playback API were built for, and the job fails instead.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidpipe_processor.errors import ProcessingFailed
from vidpipe_processor.plan import HlsPlan, OutputPlan

AUDIO_GROUP = "aud"
# AAC-LC, what ffmpeg's native `aac` encoder writes.
AAC_LC_CODEC = "mp4a.40.2"
# RFC 8216 version 7: EXT-X-MAP in a playlist without I-frames only (fMP4 segments).
HLS_VERSION = 7

_BYTERANGE = re.compile(r"^(\d+)@(\d+)$")
_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


@dataclass(frozen=True)
class Segment:
    duration: float
    length: int
    offset: int


@dataclass(frozen=True)
class MediaPlaylist:
    target_duration: int
    uri: str
    init_length: int
    init_offset: int
    segments: tuple[Segment, ...]

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.segments)

    def peak_bps(self) -> int:
        return max((math.ceil(s.length * 8 / s.duration) for s in self.segments), default=0)

    def average_bps(self) -> int:
        total = sum(s.length for s in self.segments)
        return math.ceil(total * 8 / self.duration) if self.duration > 0 else 0


def attributes(text: str) -> dict[str, str]:
    """An attribute list (`KEY=value,KEY="quoted"`) with quotes removed."""
    return {k: v.strip('"') for k, v in _ATTRIBUTE.findall(text)}


def _byterange(text: str) -> tuple[int, int]:
    match = _BYTERANGE.match(text)
    if not match:
        raise ValueError(f"byte range without an offset: {text!r}")
    return int(match.group(1)), int(match.group(2))


def parse_media_playlist(text: str) -> MediaPlaylist:
    """A VOD media playlist of one single-file fMP4 track, as ffmpeg writes it; ValueError for
    anything else (live playlists, several files, segments without byte ranges)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise ValueError("not an M3U8 playlist")
    if lines[-1] != "#EXT-X-ENDLIST":
        raise ValueError("no #EXT-X-ENDLIST: not a complete VOD playlist")
    target: int | None = None
    vod = False
    init: tuple[int, int] | None = None
    uri: str | None = None
    segments: list[Segment] = []
    duration: float | None = None
    byterange: tuple[int, int] | None = None
    for line in lines[1:-1]:
        tag, _, value = line.partition(":")
        if tag == "#EXT-X-TARGETDURATION":
            target = int(value)
        elif tag == "#EXT-X-PLAYLIST-TYPE":
            vod = value == "VOD"
        elif tag in {"#EXT-X-VERSION", "#EXT-X-MEDIA-SEQUENCE", "#EXT-X-INDEPENDENT-SEGMENTS"}:
            continue
        elif tag == "#EXT-X-MAP":
            attrs = attributes(value)
            uri = attrs["URI"]
            init = _byterange(attrs["BYTERANGE"])
        elif tag == "#EXTINF":
            duration = float(value.split(",")[0])
            if not duration > 0:  # also NaN: bit rates divide by it
                raise ValueError(f"segment duration {duration}")
        elif tag == "#EXT-X-BYTERANGE":
            byterange = _byterange(value)
        elif not line.startswith("#"):
            if duration is None or byterange is None or line != uri:
                raise ValueError(f"segment without EXTINF and byte range in the one file: {line}")
            segments.append(Segment(duration, *byterange))
            duration = byterange = None
        else:
            raise ValueError(f"unexpected line: {line[:80]}")
    if target is None or not vod or init is None or uri is None or not segments:
        raise ValueError("missing TARGETDURATION, PLAYLIST-TYPE:VOD, EXT-X-MAP or segments")
    # RFC 8216 4.3.3.1: players size their buffers by it; a longer segment stalls some of them.
    if longest := max(
        (s for s in segments if round(s.duration) > target), default=None, key=lambda s: s.duration
    ):
        raise ValueError(f"a {longest.duration} s segment is over TARGETDURATION {target}")
    return MediaPlaylist(target, uri, init[0], init[1], tuple(segments))


def avc_codec(init_segment: bytes) -> str:
    """`avc1.PPCCLL` from the avcC box (profile, constraint flags, level), as RFC 6381 says."""
    at = init_segment.find(b"avcC")
    if at < 0 or len(init_segment) < at + 8:
        raise ValueError("no avcC box in the init segment")
    profile, constraints, level = init_segment[at + 5 : at + 8]
    return f"avc1.{profile:02x}{constraints:02x}{level:02x}"


def _read_playlist(out_dir: Path, name: str, media: str) -> MediaPlaylist:
    try:
        playlist = parse_media_playlist((out_dir / name).read_text())
    except (OSError, ValueError, KeyError) as exc:
        raise ProcessingFailed(f"ffmpeg wrote an unusable HLS playlist {name}: {exc}") from exc
    if playlist.uri != media:
        raise ProcessingFailed(f"{name} names {playlist.uri}, not {media}")
    return playlist


def _init_segment(media: Path, playlist: MediaPlaylist) -> bytes:
    with media.open("rb") as handle:
        handle.seek(playlist.init_offset)
        return handle.read(playlist.init_length)


def master_playlist(variants: list[dict[str, Any]], audio: dict[str, Any] | None) -> str:
    """The master playlist: the audio group (if any), then one EXT-X-STREAM-INF per variant in
    the plan's order; URIs are bare names, resolved next to the master wherever it is served."""
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{HLS_VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audio is not None:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",NAME="audio",DEFAULT=YES,'
            f'AUTOSELECT=YES,CHANNELS="{audio["channels"]}",URI="{audio["playlist"]}"'
        )
    for v in variants:
        attrs = [
            f"BANDWIDTH={v['bandwidth']}",
            f"AVERAGE-BANDWIDTH={v['averageBandwidth']}",
            f"RESOLUTION={v['width']}x{v['height']}",
            f'CODECS="{v["codecs"]}"',
        ]
        if audio is not None:
            attrs.append(f'AUDIO="{AUDIO_GROUP}"')
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), v["playlist"]]
    return "\n".join(lines) + "\n"


def finish_ladder(plan: OutputPlan, hls: HlsPlan, out_dir: Path) -> dict[str, Any]:
    """Write the master playlist next to the media playlists; return the manifest's `hls`."""
    audio: dict[str, Any] | None = None
    audio_peak = audio_average = 0
    if hls.audio is not None:
        track = _read_playlist(out_dir, hls.audio.playlist_name, hls.audio.media_name)
        audio_peak, audio_average = track.peak_bps(), track.average_bps()
        audio = {
            "playlist": hls.audio.playlist_name,
            "media": hls.audio.media_name,
            "channels": hls.audio.channels,
            "segments": len(track.segments),
        }
    sizes = {r.name: r for r in plan.renditions}
    variants: list[dict[str, Any]] = []
    for variant in hls.variants:
        track = _read_playlist(out_dir, variant.playlist_name, variant.media_name)
        init = _init_segment(out_dir / variant.media_name, track)
        try:
            codecs = avc_codec(init)
        except ValueError as exc:
            raise ProcessingFailed(f"{variant.media_name}: {exc}") from exc
        rendition = sizes[variant.rendition]
        variants.append(
            {
                "rendition": variant.rendition,
                "playlist": variant.playlist_name,
                "media": variant.media_name,
                "width": rendition.width,
                "height": rendition.height,
                "bandwidth": track.peak_bps() + audio_peak,
                "averageBandwidth": track.average_bps() + audio_average,
                "codecs": codecs + (f",{AAC_LC_CODEC}" if audio else ""),
                "segments": len(track.segments),
            }
        )
    (out_dir / hls.master_name).write_text(master_playlist(variants, audio))
    return {
        "master": hls.master_name,
        "segmentSeconds": hls.segment_seconds,
        "variants": variants,
        "audio": audio,
    }
