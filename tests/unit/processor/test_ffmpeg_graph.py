"""The ffmpeg argv for several probe results: one decode, split to every output, the right
scaling, pixel format, codecs, audio mapping and container flags. MP4 only here (the MP4 files
are encoded as before HLS existed); the HLS ladder's argv is in test_ffmpeg_graph_hls.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.processor.factories import info
from vidpipe.models import Outputs, Rendition, Storyboard
from vidpipe.probe import FORMAT_WHITELIST, MediaInfo
from vidpipe_processor.ffmpeg_graph import (
    build_ffmpeg_argv,
    poster_fallback_argv,
    storyboard_tile_argv,
)
from vidpipe_processor.plan import plan_outputs

pytestmark = pytest.mark.unit

SOURCE = Path("/work/job/source")
OUT = Path("/work/job/out")
# Options ffmpeg-python writes without a value.
FLAGS = {"-hide_banner", "-nostdin", "-nostats", "-y"}
LADDER = Outputs(
    formats=["mp4"],
    renditions=[
        Rendition(name="1080p", height=1080),
        Rendition(name="720p", height=720, video_bitrate_kbps=2500, audio_bitrate_kbps=96),
        Rendition(name="480p", height=480),
    ],
)

MP4_ONLY = Outputs(formats=["mp4"])


def argv_for(media: MediaInfo, outputs: Outputs = LADDER) -> list[str]:
    return build_ffmpeg_argv(media, plan_outputs(media, outputs), SOURCE, OUT)


def graph(argv: list[str]) -> list[str]:
    """The filter chains of -filter_complex, one entry per filter."""
    return argv[argv.index("-filter_complex") + 1].split(";")


def outputs(argv: list[str]) -> dict[str, list[str]]:
    """Each output file name with the options that precede it."""
    result: dict[str, list[str]] = {}
    rest = argv[argv.index("-filter_complex") + 2 :]
    current: list[str] = []
    i = 0
    while i < len(rest):
        token = rest[i]
        if token in FLAGS:
            i += 1
        elif token.startswith("-"):
            current += [token, rest[i + 1]]
            i += 2
        else:
            result[Path(token).name] = current
            current = []
            i += 1
    return result


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def maps(args: list[str]) -> list[str]:
    return [args[i + 1] for i, token in enumerate(args) if token == "-map"]


def test_one_decode_split_into_every_output() -> None:
    argv = argv_for(info())
    assert argv[0] == "ffmpeg"
    assert argv.count("-i") == 1
    assert argv[argv.index("-i") + 1] == str(SOURCE)
    assert graph(argv)[0] == "[0:0]split=5[s0][s1][s2][s3][s4]"
    assert list(outputs(argv)) == [
        "1080p.mp4",
        "720p.mp4",
        "480p.mp4",
        "poster.jpg",
        "%05d.jpg",  # the storyboard's frames, tiled afterwards
    ]


def test_input_is_restricted_to_whitelisted_demuxers_and_local_files() -> None:
    argv = argv_for(info())
    before_input = argv[: argv.index("-i")]
    assert option(before_input, "-format_whitelist") == FORMAT_WHITELIST
    assert option(before_input, "-protocol_whitelist") == "file"


def test_progress_goes_to_stdout_and_stats_are_off() -> None:
    argv = argv_for(info())
    assert option(argv, "-progress") == "pipe:1"
    assert "-nostats" in argv and "-nostdin" in argv and "-y" in argv


def test_renditions_scale_to_even_sizes_and_8bit_420() -> None:
    chains = graph(argv_for(info()))
    assert "[s0]scale=h=1080:w=1920[s5]" in chains
    assert "[s1]scale=h=720:w=1280[s8]" in chains
    assert "[s2]scale=h=480:w=854[s11]" in chains
    assert sum(1 for c in chains if "format=yuv420p" in c) == 3


def test_h264_aac_faststart_and_explicit_maps() -> None:
    outs = outputs(argv_for(info()))
    crf = outs["1080p.mp4"]
    assert maps(crf) == ["[s7]", "0:1"]
    assert option(crf, "-c:v") == "libx264"
    assert option(crf, "-preset") == "veryfast"
    assert option(crf, "-crf") == "23"
    assert "-b:v" not in crf and "-maxrate" not in crf
    assert option(crf, "-c:a") == "aac" and option(crf, "-b:a") == "128k"
    assert option(crf, "-movflags") == "+faststart"
    assert option(crf, "-map_metadata") == "-1"
    assert "-ac" not in crf


def test_bitrate_mode_caps_rate_with_a_buffer() -> None:
    capped = outputs(argv_for(info()))["720p.mp4"]
    assert option(capped, "-b:v") == "2500k"
    assert option(capped, "-maxrate") == "2500k"
    assert option(capped, "-bufsize") == "5000k"
    assert option(capped, "-b:a") == "96k"
    assert "-crf" not in capped


def test_no_audio_maps_only_video() -> None:
    argv = argv_for(info(audio=0))
    for name in ("1080p.mp4", "720p.mp4", "480p.mp4"):
        args = outputs(argv)[name]
        assert len(maps(args)) == 1 and maps(args)[0].startswith("[s")
        assert "-c:a" not in args


def test_rotated_source_uses_display_dimensions() -> None:
    # ffmpeg autorotates before the graph, so the plan's portrait sizes are what scale sees.
    chains = graph(argv_for(info(width=1080, height=1920, rotation=90)))
    assert "[s0]scale=h=1080:w=608[s5]" in chains
    assert not any("transpose" in c or "rotate" in c for c in chains)


def test_odd_dimensions_become_even() -> None:
    media = info(width=321, height=241, pixel_format="yuv444p")
    argv = argv_for(
        media, Outputs(renditions=[Rendition(name="240p", height=240)], formats=["mp4"])
    )
    chains = graph(argv)
    assert "[s0]scale=h=240:w=320[s3]" in chains
    assert "[s4]format=yuv420p[s5]" in chains


def test_ten_bit_source_is_converted_to_8bit_420() -> None:
    media = info(pixel_format="yuv420p10le")
    chains = graph(argv_for(media, MP4_ONLY))
    assert any(c.endswith("format=yuv420p[s5]") for c in chains)
    assert option(outputs(argv_for(media, MP4_ONLY))["720p.mp4"], "-profile:v") == "high"


def test_multi_audio_maps_the_requested_track_everywhere() -> None:
    media = info(audio=3)
    outs = outputs(argv_for(media, LADDER.model_copy(update={"audio_track": 2})))
    for name in ("1080p.mp4", "720p.mp4", "480p.mp4"):
        assert maps(outs[name])[1] == "0:3"
    default = outputs(argv_for(media))
    assert maps(default["480p.mp4"])[1] == "0:1"


def test_surround_audio_is_downmixed() -> None:
    outs = outputs(argv_for(info(channels=6)))
    assert option(outs["480p.mp4"], "-ac") == "2"


def test_high_frame_rate_is_capped_before_the_split() -> None:
    chains = graph(argv_for(info(frame_rate=120.0)))
    assert chains[0] == "[0:0]fps=fps=60.0[s0]"
    assert chains[1].startswith("[s0]split=5")


def test_poster_is_one_frame_at_the_safe_time() -> None:
    argv = argv_for(info(duration=2.0))
    chains = graph(argv)
    assert "[s3]select=gte(t\\,0.2)[s14]" in chains
    assert "[s14]trim=end_frame=1[s15]" in chains
    poster = outputs(argv)["poster.jpg"]
    assert option(poster, "-frames:v") == "1" and option(poster, "-f") == "image2"


def test_storyboard_selects_one_frame_per_interval_into_one_grid() -> None:
    media = info(duration=95.0)
    outs = LADDER.model_copy(update={"storyboard": Storyboard(interval_seconds=10, columns=4)})
    argv = argv_for(media, outs)
    chains = graph(argv)
    assert "[s4]select=gte(t\\,selected_n*10)[s18]" in chains
    assert "[s18]scale=h=90:w=160[s19]" in chains
    # No tile filter in the main graph: it would hold back progress until its grid is full.
    assert not [c for c in chains if "tile=" in c]
    frames = outputs(argv)["%05d.jpg"]
    assert option(frames, "-frames:v") == "10"  # 95 s at one per 10 s, in a 4x3 grid
    tile = storyboard_tile_argv(plan_outputs(media, outs).storyboard, OUT)  # type: ignore[arg-type]
    assert tile[tile.index("-i") + 1] == str(OUT / "storyboard-frames" / "%05d.jpg")
    assert option(tile, "-filter_complex") == "[0]tile=4x3[s0]"
    assert str(OUT / "storyboard.jpg") in tile and option(tile, "-frames:v") == "1"


def test_single_output_needs_no_split() -> None:
    plain = Outputs(poster=False, storyboard=Storyboard(enabled=False), formats=["mp4"])
    argv = argv_for(info(), plain)
    assert graph(argv)[0] == "[0:0]scale=h=720:w=1280[s0]"
    assert list(outputs(argv)) == ["720p.mp4"]


def test_poster_fallback_takes_the_first_frame() -> None:
    media = info()
    poster = plan_outputs(media, Outputs()).poster
    assert poster is not None
    argv = poster_fallback_argv(media, poster, SOURCE, OUT, ffmpeg_path="/usr/bin/ffmpeg")
    assert argv[0] == "/usr/bin/ffmpeg"
    assert option(argv, "-frames:v") == "1"
    assert "-ss" not in argv and "-filter_complex" in argv
    assert str(OUT / "poster.jpg") in argv
