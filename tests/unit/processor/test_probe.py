"""The shared media policy (vidpipe.probe) on canned ffprobe output: what is accepted, what is
refused and with which code, and what MediaInfo reports."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from tests.unit.processor.factories import LIMITS, canned
from vidpipe.errors import BAD_INPUT_CODES, BadInput, ErrorCode
from vidpipe.probe import (
    CODEC_WHITELIST,
    FORMAT_WHITELIST,
    ProbeFailed,
    ProbeLimits,
    classify_ffprobe_failure,
    ffprobe_argv,
    parse_probe,
)

pytestmark = pytest.mark.unit


def refused(data: dict[str, Any], limits: ProbeLimits = LIMITS) -> BadInput:
    with pytest.raises(BadInput) as caught:
        parse_probe(data, limits)
    assert caught.value.code in BAD_INPUT_CODES
    return caught.value


def test_basic_mp4_is_summarised() -> None:
    info = parse_probe(canned("basic_mp4"), LIMITS)
    assert (info.container, info.video_codec, info.width, info.height) == ("mp4", "h264", 320, 240)
    assert info.duration_seconds == pytest.approx(2.0)
    assert info.frame_rate == pytest.approx(25.0)
    assert (info.pixel_format, info.bit_depth, info.rotation) == ("yuv420p", 8, 0)
    assert info.size_bytes > 0 and info.bitrate
    assert [(a.index, a.codec, a.channels) for a in info.audio_streams] == [(1, "aac", 1)]
    assert [(s.index, s.type) for s in info.streams] == [(0, "video"), (1, "audio")]
    document = info.to_json_dict()
    assert document["video"]["width"] == 320 and document["audio"][0]["sampleRate"] == 44100


def test_rotated_video_reports_display_dimensions() -> None:
    info = parse_probe(canned("rotated_mp4"), LIMITS)
    assert info.rotation == 90
    assert (info.coded_width, info.coded_height) == (320, 240)
    assert (info.width, info.height) == (240, 320)


def test_rotate_tag_without_display_matrix_counts_clockwise() -> None:
    data = canned("basic_mp4")
    data["streams"][0]["tags"]["rotate"] = "90"
    info = parse_probe(data, LIMITS)
    assert info.rotation == 270
    assert (info.width, info.height) == (240, 320)


def test_odd_dimensions_and_444_are_accepted() -> None:
    info = parse_probe(canned("odd_444_mkv"), LIMITS)
    assert (info.width, info.height, info.pixel_format) == (321, 241, "yuv444p")
    assert info.container == "matroska"
    assert info.audio_streams == ()


def test_ten_bit_depth() -> None:
    info = parse_probe(canned("10bit_mkv"), LIMITS)
    assert (info.pixel_format, info.bit_depth) == ("yuv420p10le", 10)


def test_two_audio_tracks_are_listed_in_order() -> None:
    info = parse_probe(canned("two_audio_mp4"), LIMITS)
    assert [(a.index, a.language) for a in info.audio_streams] == [(1, "eng"), (2, "fra")]


def test_anamorphic_pixels_widen_the_display_size() -> None:
    data = canned("basic_mp4")
    data["streams"][0] |= {"width": 720, "height": 480, "sample_aspect_ratio": "32:27"}
    info = parse_probe(data, LIMITS)
    assert (info.width, info.height) == (853, 480)


def test_image_file_is_not_an_accepted_format() -> None:
    error = refused(canned("image_png"))
    assert error.code is ErrorCode.UNSUPPORTED_FORMAT


@pytest.mark.parametrize("demuxer", ["hls", "concat", "image2", "png_pipe", "mp3", "ogg"])
def test_formats_outside_the_allow_list_are_refused(demuxer: str) -> None:
    data = canned("basic_mp4")
    data["format"]["format_name"] = demuxer
    assert refused(data).code is ErrorCode.UNSUPPORTED_FORMAT


def test_single_frame_is_a_still_image_not_a_video() -> None:
    error = refused(canned("single_frame_mp4"))
    assert error.code is ErrorCode.NO_VIDEO_STREAM
    assert "still image" in error.message


def test_cover_art_alone_is_not_a_video() -> None:
    error = refused(canned("cover_art_only_mp4"))
    assert error.code is ErrorCode.NO_VIDEO_STREAM


def test_audio_only_has_no_video_stream() -> None:
    data = canned("basic_mp4")
    data["streams"] = [s for s in data["streams"] if s["codec_type"] == "audio"]
    error = refused(data)
    assert error.code is ErrorCode.NO_VIDEO_STREAM
    assert error.message == "the file has no video stream"


def test_cover_art_is_skipped_when_a_real_video_follows() -> None:
    data = canned("basic_mp4")
    cover = canned("cover_art_only_mp4")["streams"][1] | {"index": 2}
    data["streams"].insert(0, cover)
    assert parse_probe(data, LIMITS).video_index == 0


def test_resolution_limit() -> None:
    limits = ProbeLimits(max_pixels=320 * 239)
    error = refused(canned("basic_mp4"), limits)
    assert error.code is ErrorCode.RESOLUTION_LIMIT_EXCEEDED
    assert "320x240" in error.message and str(320 * 239) in error.message


def test_duration_limit() -> None:
    error = refused(canned("basic_mp4"), ProbeLimits(max_duration_seconds=1.5))
    assert error.code is ErrorCode.DURATION_LIMIT_EXCEEDED


def test_stream_limit() -> None:
    error = refused(canned("two_audio_mp4"), ProbeLimits(max_streams=2))
    assert error.code is ErrorCode.TOO_MANY_STREAMS
    assert "3 streams" in error.message


def test_duration_falls_back_to_streams_and_must_exist() -> None:
    data = canned("basic_mp4")
    del data["format"]["duration"]
    assert parse_probe(data, LIMITS).duration_seconds == pytest.approx(2.0)
    for stream in data["streams"]:
        stream.pop("duration", None)
    assert refused(data).code is ErrorCode.NOT_A_VIDEO


def test_undecodable_video_stream() -> None:
    data = canned("basic_mp4")
    data["streams"][0].pop("width")
    assert refused(data).code is ErrorCode.NOT_A_VIDEO


def test_argv_whitelists_demuxers_and_local_files_only() -> None:
    argv = ffprobe_argv("/work/source")
    assert argv[argv.index("-protocol_whitelist") + 1] == "file"
    assert argv[argv.index("-format_whitelist") + 1] == FORMAT_WHITELIST
    assert "hls" not in FORMAT_WHITELIST and "concat" not in FORMAT_WHITELIST
    assert argv[-1] == "file:/work/source"


def test_argv_for_a_url_needs_the_caller_to_allow_the_network() -> None:
    with pytest.raises(ValueError, match="network=True"):
        ffprobe_argv("https://s3.example/b/k?X-Amz-Signature=secret")
    argv = ffprobe_argv("https://s3.example/b/k", network=True)
    assert argv[argv.index("-protocol_whitelist") + 1] == "file,http,https,tcp,tls"
    assert argv[-1] == "https://s3.example/b/k"


@pytest.mark.parametrize(
    ("demuxer", "expected"),
    [
        ("hls", "an HLS playlist"),
        ("concat", "a concat list"),
        ("png_pipe", "an image"),
        ("image2", "an image sequence"),
    ],
)
def test_refused_demuxer_gets_a_clear_message(demuxer: str, expected: str) -> None:
    stderr = f"[{demuxer} @ 0x55d1c0a0b280] Format not on whitelist '{FORMAT_WHITELIST}'\n"
    error = classify_ffprobe_failure(1, stderr + "<input>: Invalid argument\n")
    assert isinstance(error, BadInput)
    assert error.code is ErrorCode.UNSUPPORTED_FORMAT
    assert expected in error.message


def test_unreadable_file_message_drops_ffmpeg_noise() -> None:
    stderr = (
        "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5579ee8531c0] moov atom not found\n"
        "<input>: Invalid data found when processing input\n"
    )
    error = classify_ffprobe_failure(1, stderr)
    assert isinstance(error, BadInput)
    assert error.code is ErrorCode.NOT_A_VIDEO
    assert error.message == (
        "the file is not a readable video "
        "(moov atom not found; Invalid data found when processing input)"
    )


def test_killed_ffprobe_and_network_errors_are_retryable() -> None:
    assert isinstance(classify_ffprobe_failure(-9, ""), ProbeFailed)
    for stderr in (
        "<input>: Connection refused",
        "[https @ 0x5] HTTP error 403 Forbidden\n<input>: Server returned 403 Forbidden",
        "<input>: Server returned 503 Service Unavailable",
    ):
        error = classify_ffprobe_failure(1, stderr, network=True)
        assert isinstance(error, ProbeFailed) and not isinstance(error, BadInput), stderr
        assert error.code is ErrorCode.STORAGE_UNAVAILABLE
    # The same words from a local file are about the file.
    assert isinstance(classify_ffprobe_failure(1, "<input>: Input/output error"), BadInput)


# -- hostile media (issue 11): implausible claims, display size, sandbox verdicts ------------


def test_a_video_stream_without_a_decodable_picture_is_corrupt() -> None:
    # What ffprobe reports for sample tables claiming millions of 1-byte frames: no pix_fmt.
    # Fails if parse_probe accepts a stream whose first picture never decoded.
    data = canned("basic_mp4")
    del data["streams"][0]["pix_fmt"]
    assert refused(data).code is ErrorCode.CORRUPT_MEDIA


def test_more_frames_than_the_duration_allows_is_corrupt() -> None:
    data = canned("basic_mp4")
    data["streams"][0]["nb_frames"] = "5000000"  # in a 2 s file
    error = refused(data)
    assert error.code is ErrorCode.CORRUPT_MEDIA and "5000000 frames" in error.message
    data["streams"][0]["nb_frames"] = "1999"  # just under 1000 fps: plausible (slow motion)
    assert parse_probe(data, LIMITS).duration_seconds == pytest.approx(2.0)


def test_anamorphic_display_size_is_held_to_the_pixel_limit() -> None:
    # 320x240 coded, SAR 3:1 -> 960x240 displayed = 230400 pixels; the coded size would pass.
    data = canned("basic_mp4")
    data["streams"][0]["sample_aspect_ratio"] = "3:1"
    limits = ProbeLimits(max_pixels=200_000)
    assert limits.max_pixels >= 320 * 240
    error = refused(data, limits)
    assert error.code is ErrorCode.RESOLUTION_LIMIT_EXCEEDED and "960x240" in error.message
    assert parse_probe(data, ProbeLimits(max_pixels=230_400)).width == 960


def test_an_impossible_pixel_aspect_ratio_is_corrupt() -> None:
    data = canned("basic_mp4")
    data["streams"][0]["sample_aspect_ratio"] = "8:1"
    assert refused(data, ProbeLimits(max_pixels=10**9)).code is ErrorCode.CORRUPT_MEDIA
    data["streams"][0]["sample_aspect_ratio"] = "1:8"
    assert refused(data, ProbeLimits(max_pixels=10**9)).code is ErrorCode.CORRUPT_MEDIA


def test_codec_refused_by_the_whitelist_names_the_codec() -> None:
    stderr = "[cinepak @ 0x55813d81b4c0] Codec (cinepak) not on whitelist 'h264,aac'\n"
    error = classify_ffprobe_failure(1, stderr)
    assert isinstance(error, BadInput) and error.code is ErrorCode.UNSUPPORTED_CODEC
    assert error.details == {"codec": "cinepak"}


def test_sandbox_limits_are_verdicts_on_the_file_but_other_kills_are_not() -> None:
    cpu = classify_ffprobe_failure(-signal.SIGXCPU, "")
    assert isinstance(cpu, BadInput) and cpu.code is ErrorCode.MEDIA_TOO_COMPLEX
    memory = classify_ffprobe_failure(1, "[mov @ 0x1] Cannot allocate memory\n")
    assert isinstance(memory, BadInput) and memory.code is ErrorCode.MEDIA_TOO_COMPLEX
    killed = classify_ffprobe_failure(-signal.SIGKILL, "")
    assert isinstance(killed, ProbeFailed) and not isinstance(killed, BadInput)
    # Fails if a kill from outside is judged by the allocation failure it left in stderr.
    oom_killed = classify_ffprobe_failure(-signal.SIGKILL, "Cannot allocate memory\n")
    assert isinstance(oom_killed, ProbeFailed) and not isinstance(oom_killed, BadInput)


def test_argv_allows_only_listed_decoders_and_one_thread() -> None:
    argv = ffprobe_argv("/tmp/x.mp4")
    assert argv[argv.index("-codec_whitelist") + 1] == CODEC_WHITELIST
    assert "cinepak" not in CODEC_WHITELIST.split(",") and "h264" in CODEC_WHITELIST.split(",")
    assert argv[argv.index("-threads") + 1] == "1"
