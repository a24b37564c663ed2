"""The HLS ladder's argv (issue 15): each rendition encoded once, its encode teed to the MP4 file
and an HLS muxer; aligned, closed GOPs; one audio group; video-only renditions for HLS alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.processor.factories import info
from vidpipe.models import Outputs, Rendition, Storyboard
from vidpipe.probe import MediaInfo
from vidpipe_processor.ffmpeg_graph import build_ffmpeg_argv, tee_slave
from vidpipe_processor.plan import plan_outputs

pytestmark = pytest.mark.unit

SOURCE = Path("/work/job/source")
OUT = Path("/work/job/out")
LADDER = [
    Rendition(name="1080p", height=1080, audio_bitrate_kbps=96),
    Rendition(name="720p", height=720, audio_bitrate_kbps=160),
    Rendition(name="480p", height=480, audio_bitrate_kbps=160),
]
NO_IMAGES = {"poster": False, "storyboard": Storyboard(enabled=False)}


def argv_for(media: MediaInfo, formats: list[str]) -> list[str]:
    outputs = Outputs(renditions=LADDER, formats=formats, **NO_IMAGES)
    return build_ffmpeg_argv(media, plan_outputs(media, outputs), SOURCE, OUT)


def output_args(argv: list[str]) -> list[tuple[str, list[str]]]:
    """(output target, the options before it) for each output, in order."""
    rest = argv[argv.index("-filter_complex") + 2 :]
    result: list[tuple[str, list[str]]] = []
    current: list[str] = []
    i = 0
    while i < len(rest):
        token = rest[i]
        if token in {"-hide_banner", "-nostdin", "-nostats", "-y"}:
            i += 1
        elif token.startswith("-"):
            current += [token, rest[i + 1]]
            i += 2
        else:
            result.append((token, current))
            current = []
            i += 1
    return result


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def slaves(target: str) -> dict[str, dict[str, str]]:
    """A tee target's slaves: file name -> its options."""
    out: dict[str, dict[str, str]] = {}
    for slave in target.split("|"):
        options, _, path = slave[1:].partition("]")
        out[Path(path).name] = dict(item.split("=", 1) for item in options.split(":"))
    return out


def test_both_formats_encode_each_rendition_once_and_tee_it() -> None:
    # Fails if a rendition were encoded twice (once per format) or a file went missing.
    outs = output_args(argv_for(info(), ["hls", "mp4"]))
    assert len(outs) == 3  # one encode per rendition, the audio group rides on one of them
    assert [option(args, "-f") for _, args in outs] == ["tee"] * 3
    teed = [slaves(target) for target, _ in outs]
    assert list(teed[0]) == ["1080p.mp4", "1080p.m3u8"]
    # The audio group comes from the first rendition at the ladder's highest audio bitrate.
    assert list(teed[1]) == ["720p.mp4", "720p.m3u8", "audio.m3u8"]
    assert list(teed[2]) == ["480p.mp4", "480p.m3u8"]
    assert option(outs[1][1], "-b:a") == "160k"
    assert teed[0]["1080p.mp4"] == {"f": "mp4", "movflags": "+faststart"}
    video = teed[1]["720p.m3u8"]
    assert video["select"] == "v" and teed[1]["audio.m3u8"]["select"] == "a"
    assert video["hls_segment_filename"] == str(OUT / "720p.cmfv")
    assert teed[1]["audio.m3u8"]["hls_segment_filename"] == str(OUT / "audio.cmfa")
    assert (video["hls_segment_type"], video["hls_playlist_type"]) == ("fmp4", "vod")
    assert video["hls_flags"] == "single_file+independent_segments"
    assert video["hls_time"] == "4"


def test_gops_are_aligned_closed_and_free_of_scene_cuts() -> None:
    # Fails if any rendition could place a keyframe somewhere the others do not.
    outs = output_args(argv_for(info(), ["hls", "mp4"]))
    for _, args in outs:
        assert option(args, "-force_key_frames") == "expr:gte(t,n_forced*2)"
        assert option(args, "-sc_threshold") == "0"
        assert option(args, "-flags") == "+cgop"
        assert option(args, "-forced-idr") == "1"
        # 2 s at 60 fps (the highest rate we output) is 120 frames: no keyint keyframe first.
        assert int(option(args, "-g")) > 120


def test_mp4_only_keeps_the_encoder_free_to_place_keyframes() -> None:
    # Fails if MP4-only jobs paid for HLS's GOP constraints or lost faststart.
    for target, args in output_args(argv_for(info(), ["mp4"])):
        assert target.endswith(".mp4") and option(args, "-movflags") == "+faststart"
        assert "-force_key_frames" not in args and "-sc_threshold" not in args


def test_hls_only_renditions_are_video_only_and_audio_is_encoded_once() -> None:
    # Fails if HLS alone muxed audio into every rendition or encoded it per rendition.
    outs = output_args(argv_for(info(), ["hls"]))
    targets = [Path(t).name for t, _ in outs]
    assert targets == ["1080p.m3u8", "720p.m3u8", "480p.m3u8", "audio.m3u8"]
    for _, args in outs[:3]:
        assert option(args, "-f") == "hls" and "-c:a" not in args
        maps = [args[i + 1] for i, t in enumerate(args) if t == "-map"]
        assert len(maps) == 1 and maps[0].startswith("[s")  # the scaled video, nothing else
    audio = outs[3][1]
    assert option(audio, "-map") == "0:1"
    assert (option(audio, "-c:a"), option(audio, "-b:a")) == ("aac", "160k")
    assert option(audio, "-hls_segment_filename") == str(OUT / "audio.cmfa")


def test_silent_source_has_no_audio_group() -> None:
    # Fails if a source without audio still asked ffmpeg for an audio playlist.
    for formats in (["hls"], ["hls", "mp4"]):
        argv = argv_for(info(audio=0), formats)
        assert "audio.m3u8" not in " ".join(argv) and "-c:a" not in argv


def test_tee_slave_refuses_paths_its_syntax_would_misread() -> None:
    # Fails if a path with tee syntax characters were passed on (ffmpeg would write elsewhere).
    assert tee_slave({"f": "mp4"}, Path("/w/a.mp4")) == "[f=mp4]/w/a.mp4"
    for bad in ("/w/a|b.mp4", "/w/a:b.mp4", "/w/[a].mp4"):
        with pytest.raises(ValueError, match="tee"):
            tee_slave({"f": "mp4"}, Path(bad))
