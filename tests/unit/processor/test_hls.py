"""The HLS plan, the strict media-playlist reader and the master playlist written from it."""

from __future__ import annotations

import pytest

from tests.unit.processor.factories import info
from vidpipe.models import Outputs, Rendition
from vidpipe_processor.hls import (
    attributes,
    avc_codec,
    master_playlist,
    parse_media_playlist,
)
from vidpipe_processor.plan import keyframe_seconds, plan_outputs

pytestmark = pytest.mark.unit

# As ffmpeg 5.1's hls muxer writes it (fmp4, single_file, vod).
PLAYLIST = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="720p.cmfv",BYTERANGE="826@0"
#EXTINF:4.000000,
#EXT-X-BYTERANGE:1000@826
720p.cmfv
#EXTINF:2.000000,
#EXT-X-BYTERANGE:250@1826
720p.cmfv
#EXT-X-ENDLIST
"""


def test_plan_names_every_hls_object_and_one_audio_group() -> None:
    # Fails if the plan's names drifted from the ones the operator presigns (vidpipe.keys).
    ladder = [Rendition(name="720p", height=720), Rendition(name="360p", height=360)]
    plan = plan_outputs(info(channels=6), Outputs(renditions=ladder, poster=False))
    assert plan.hls is not None and plan.mp4
    assert plan.hls.file_names == [
        "master.m3u8", "720p.m3u8", "720p.cmfv", "360p.m3u8", "360p.cmfv",
        "audio.m3u8", "audio.cmfa",
    ]  # fmt: skip
    assert plan.hls.audio is not None and plan.hls.audio.channels == 2  # 5.1 is downmixed
    assert plan.hls.segment_seconds == 4 and plan.hls.keyframe_seconds == 2
    silent = plan_outputs(info(audio=0), Outputs(formats=["hls"]))
    assert silent.hls is not None and silent.hls.audio is None and not silent.mp4
    assert "720p.mp4" not in silent.file_names


@pytest.mark.parametrize(("segment", "keyframe"), [(1, 1.0), (2, 1.0), (4, 2.0), (5, 2.5)])
def test_keyframes_divide_the_segment(segment: int, keyframe: float) -> None:
    # Fails if a segment length were not a whole number of keyframe intervals.
    assert keyframe_seconds(segment) == keyframe
    assert (segment / keyframe_seconds(segment)).is_integer()


def test_media_playlist_is_read_with_its_byte_ranges_and_rates() -> None:
    # Fails if a segment's range or duration were misread (bandwidths would be wrong).
    playlist = parse_media_playlist(PLAYLIST)
    assert (playlist.uri, playlist.init_length, playlist.init_offset) == ("720p.cmfv", 826, 0)
    assert [(s.duration, s.length, s.offset) for s in playlist.segments] == [
        (4.0, 1000, 826),
        (2.0, 250, 1826),
    ]
    assert playlist.target_duration == 4 and playlist.duration == 6.0
    assert playlist.peak_bps() == 2000 and playlist.average_bps() == 1667


@pytest.mark.parametrize(
    "broken",
    [
        PLAYLIST.replace("#EXT-X-ENDLIST\n", ""),  # live, not VOD
        PLAYLIST.replace("#EXT-X-PLAYLIST-TYPE:VOD\n", ""),
        PLAYLIST.replace("#EXT-X-BYTERANGE:250@1826\n", ""),  # a whole-file segment
        PLAYLIST.replace("720p.cmfv\n#EXT-X-ENDLIST", "other.cmfv\n#EXT-X-ENDLIST"),
        PLAYLIST.replace("#EXT-X-BYTERANGE:1000@826", "#EXT-X-BYTERANGE:1000"),
        PLAYLIST.replace("#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-DISCONTINUITY"),
        PLAYLIST.replace("#EXTINF:4.000000,", "#EXTINF:4.600000,"),  # over TARGETDURATION
        PLAYLIST.replace("#EXTINF:2.000000,", "#EXTINF:0,"),  # no time: bit rates divide by it
        "not a playlist",
    ],
)
def test_media_playlists_other_than_ours_are_refused(broken: str) -> None:
    # Fails if the reader accepted a playlist the players and the playback API were not built for.
    with pytest.raises(ValueError):
        parse_media_playlist(broken)


def test_codec_string_comes_from_the_avcc_box() -> None:
    # Fails if profile, constraint flags or level were read from the wrong bytes.
    init = b"\x00\x00\x00\x30avcC\x01\x64\x00\x1f\xff"
    assert avc_codec(b"ftyp....moov" + init) == "avc1.64001f"
    with pytest.raises(ValueError):
        avc_codec(b"ftypmoov")


def test_master_playlist_lists_the_variants_and_the_audio_group() -> None:
    # Fails if a variant lost its attributes or its audio group, or URIs stopped being bare names.
    variant = {
        "playlist": "720p.m3u8", "bandwidth": 2_000_000, "averageBandwidth": 1_500_000,
        "width": 1280, "height": 720, "codecs": "avc1.64001f,mp4a.40.2",
    }  # fmt: skip
    text = master_playlist([variant], {"playlist": "audio.m3u8", "channels": 2})
    lines = text.splitlines()
    assert lines[:3] == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    media = attributes(lines[3].partition(":")[2])
    assert media == {
        "TYPE": "AUDIO", "GROUP-ID": "aud", "NAME": "audio", "DEFAULT": "YES",
        "AUTOSELECT": "YES", "CHANNELS": "2", "URI": "audio.m3u8",
    }  # fmt: skip
    stream = attributes(lines[4].partition(":")[2])
    assert stream == {
        "BANDWIDTH": "2000000", "AVERAGE-BANDWIDTH": "1500000", "RESOLUTION": "1280x720",
        "CODECS": "avc1.64001f,mp4a.40.2", "AUDIO": "aud",
    }  # fmt: skip
    assert lines[5] == "720p.m3u8" and len(lines) == 6
    silent = master_playlist([{**variant, "codecs": "avc1.64001f"}], None)
    assert "EXT-X-MEDIA" not in silent and "AUDIO=" not in silent
