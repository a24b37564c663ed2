"""What makes an HLS ladder valid, checked on a job's downloaded outputs with ffprobe (issue 15):
every playlist parses; each media playlist's byte ranges tile its one file; each segment, probed
on its own (init + segment bytes), starts with a keyframe at the PTS its playlist implies; segment
durations stay within the target; renditions' segments start at the same PTS; the manifest's
`hls` section matches the playlists; ffprobe reads master.m3u8 end to end.

Shared by the processor's integration tests and the real-processor test in the cluster.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from vidpipe_processor.hls import MediaPlaylist, attributes, parse_media_playlist

# An EXTINF may exceed the segment target by part of a frame (the segment ends at the keyframe
# at or after the target); more than this means keyframes are not where they were asked for.
SEGMENT_SLACK_SECONDS = 0.1
PTS_TOLERANCE_SECONDS = 0.002
# The first frame's PTS: x264's B-frame delay, a few frames at most.
MAX_START_SECONDS = 0.25


def run_json(*argv: str) -> dict[str, Any]:
    done = subprocess.run(argv, capture_output=True, check=True, timeout=120)
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def parse_master(text: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(EXT-X-MEDIA attribute lists, EXT-X-STREAM-INF attribute lists with their URI)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[0] == "#EXTM3U", lines[:1]
    media: list[dict[str, str]] = []
    streams: list[dict[str, str]] = []
    i = 1
    while i < len(lines):
        tag, _, value = lines[i].partition(":")
        if tag == "#EXT-X-MEDIA":
            media.append(attributes(value))
        elif tag == "#EXT-X-STREAM-INF":
            uri = lines[i + 1]
            assert not uri.startswith("#") and "/" not in uri, uri
            streams.append({**attributes(value), "URI": uri})
            i += 1
        else:
            assert tag in {"#EXT-X-VERSION", "#EXT-X-INDEPENDENT-SEGMENTS"}, lines[i]
        i += 1
    return media, streams


def first_frame(media: Path, playlist: MediaPlaylist, index: int, work: Path) -> dict[str, Any]:
    """The first video (or audio) frame of one segment, decoded from init + segment bytes."""
    segment = playlist.segments[index]
    with media.open("rb") as handle:
        handle.seek(playlist.init_offset)
        init = handle.read(playlist.init_length)
        handle.seek(segment.offset)
        body = handle.read(segment.length)
    path = work / f"{media.stem}-{index}.mp4"
    path.write_bytes(init + body)
    frames = run_json(
        "ffprobe", "-v", "error", "-read_intervals", "%+#1", "-show_frames",
        "-show_entries", "frame=key_frame,pict_type,pts_time", "-of", "json", str(path),
    )["frames"]  # fmt: skip
    path.unlink()
    assert frames, f"{media.name} segment {index} holds no frame"
    frame: dict[str, Any] = frames[0]
    return frame


def check_media_playlist(
    files: dict[str, Path], name: str, media_name: str, segment_seconds: int
) -> MediaPlaylist:
    text = files[name].read_text()
    playlist = parse_media_playlist(text)  # strict: VOD, ENDLIST, EXT-X-MAP, byte ranges
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and text.rstrip().endswith("#EXT-X-ENDLIST")
    assert playlist.uri == media_name
    # The init segment and the segments tile the file: nothing missing, nothing overlapping.
    offset = playlist.init_offset + playlist.init_length
    assert playlist.init_offset == 0
    for segment in playlist.segments:
        assert segment.offset == offset, (name, segment)
        offset += segment.length
    assert offset == files[media_name].stat().st_size, name
    for segment in playlist.segments:
        assert round(segment.duration) <= playlist.target_duration, (name, segment)
        assert segment.duration <= segment_seconds + SEGMENT_SLACK_SECONDS, (name, segment)
    return playlist


def check_hls(
    files: dict[str, Path], manifest: dict[str, Any], work: Path, *, duration: float
) -> dict[str, list[float]]:
    """Every check above; returns each rendition's segment start times (seconds)."""
    hls = manifest["hls"]
    assert hls is not None
    seconds = hls["segmentSeconds"]
    listed = {entry["name"]: entry for entry in manifest["outputs"]}
    content_types = {".m3u8": "application/vnd.apple.mpegurl", ".cmfv": "video/mp4"}
    content_types[".cmfa"] = "audio/mp4"
    for name, entry in listed.items():
        if Path(name).suffix in content_types:
            assert entry["contentType"] == content_types[Path(name).suffix], entry

    media, streams = parse_master(files[hls["master"]].read_text())
    audio = hls["audio"]
    if audio is None:
        assert media == []
    else:
        [group] = media
        assert (group["TYPE"], group["GROUP-ID"], group["URI"]) == ("AUDIO", "aud", "audio.m3u8")
        assert {audio["playlist"], audio["media"]} <= set(listed)
        track = check_media_playlist(files, audio["playlist"], audio["media"], seconds)
        assert abs(track.duration - duration) < 0.2, track.duration
        for index in range(len(track.segments)):
            assert first_frame(files[audio["media"]], track, index, work)["key_frame"] == 1

    assert [s["URI"] for s in streams] == [v["playlist"] for v in hls["variants"]]
    starts: dict[str, list[float]] = {}
    durations: dict[str, list[float]] = {}
    for stream, variant in zip(streams, hls["variants"], strict=True):
        assert {variant["playlist"], variant["media"]} <= set(listed)
        assert stream["RESOLUTION"] == f"{variant['width']}x{variant['height']}"
        assert int(stream["BANDWIDTH"]) == variant["bandwidth"] > 0
        assert stream["CODECS"].startswith("avc1.")
        assert (stream.get("AUDIO") == "aud") == (audio is not None)
        playlist = check_media_playlist(files, variant["playlist"], variant["media"], seconds)
        assert len(playlist.segments) == variant["segments"]
        assert abs(playlist.duration - duration) < 0.2, playlist.duration
        # Every segment but the last is one whole segment long (keyframes where asked).
        for segment in playlist.segments[:-1]:
            assert abs(segment.duration - seconds) <= SEGMENT_SLACK_SECONDS, segment
        starts[variant["rendition"]] = []
        # The first frame's PTS is the encoder's B-frame delay (a frame or two), not zero.
        elapsed: float | None = None
        for index, segment in enumerate(playlist.segments):
            frame = first_frame(files[variant["media"]], playlist, index, work)
            assert (frame["key_frame"], frame["pict_type"]) == (1, "I"), (variant, index)
            pts = float(frame["pts_time"])
            if elapsed is None:
                assert 0 <= pts < MAX_START_SECONDS, (variant["rendition"], pts)
                elapsed = pts
            assert abs(pts - elapsed) < 0.05, (variant["rendition"], index, pts, elapsed)
            starts[variant["rendition"]].append(pts)
            elapsed += segment.duration
        durations[variant["rendition"]] = [s.duration for s in playlist.segments]

    # Aligned: the same segment boundaries, at the same PTS, on every rendition.
    first = next(iter(starts.values()))
    for rendition, times in starts.items():
        assert len(times) == len(first), rendition
        assert all(abs(a - b) <= PTS_TOLERANCE_SECONDS for a, b in zip(times, first, strict=True))
    assert len({tuple(d) for d in durations.values()}) == 1, durations

    # ffprobe follows the master to every playlist and reads every packet of every file.
    probed = run_json(
        "ffprobe", "-v", "error", "-count_packets", "-show_entries",
        "stream=codec_type,width,height,nb_read_packets:format=duration", "-of", "json",
        str(files[hls["master"]]),
    )  # fmt: skip
    video = [s for s in probed["streams"] if s["codec_type"] == "video"]
    assert sorted((s["width"], s["height"]) for s in video) == sorted(
        (v["width"], v["height"]) for v in hls["variants"]
    )
    assert len({int(s["nb_read_packets"]) for s in video}) == 1  # same frames in every rendition
    assert int(video[0]["nb_read_packets"]) > 0
    assert abs(float(probed["format"]["duration"]) - duration) < 0.3
    return starts


def packet_sizes(path: Path, stream: str) -> list[int]:
    packets = run_json(
        "ffprobe", "-v", "error", "-select_streams", stream, "-show_entries", "packet=size",
        "-of", "json", str(path),
    )["packets"]  # fmt: skip
    return [int(p["size"]) for p in packets]
