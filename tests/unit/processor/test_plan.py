"""Output planning: which renditions, at what size, the poster time and the storyboard grid."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.unit.processor.factories import info
from vidpipe.models import Outputs, Rendition, Storyboard
from vidpipe_processor.plan import (
    frame_rate_cap,
    plan_outputs,
    plan_storyboard,
    poster_time,
)

pytestmark = pytest.mark.unit

LADDER = Outputs(
    renditions=[
        Rendition(name="1080p", height=1080),
        Rendition(name="720p", height=720, video_bitrate_kbps=2500),
        Rendition(name="480p", height=480),
    ]
)


def sizes(outputs: Outputs, **source: Any) -> list[tuple[str, int, int]]:
    plan = plan_outputs(info(**source), outputs)
    return [(r.name, r.width, r.height) for r in plan.renditions]


def test_full_ladder_from_1080p() -> None:
    assert sizes(LADDER) == [("1080p", 1920, 1080), ("720p", 1280, 720), ("480p", 854, 480)]


def test_never_upscales() -> None:
    assert sizes(LADDER, width=1280, height=720) == [("720p", 1280, 720), ("480p", 854, 480)]


def test_all_above_source_gives_one_rendition_at_source_height_under_the_smallest_name() -> None:
    assert sizes(LADDER, width=427, height=241) == [("480p", 426, 240)]


def test_portrait_keeps_aspect_with_even_sizes() -> None:
    assert sizes(LADDER, width=1080, height=1920) == [
        ("1080p", 608, 1080),
        ("720p", 406, 720),
        ("480p", 270, 480),
    ]


def test_odd_requested_height_is_made_even() -> None:
    outputs = Outputs(renditions=[Rendition(name="odd", height=241)])
    assert sizes(outputs, width=321, height=241) == [("odd", 320, 240)]


def test_bitrate_and_audio_settings_are_carried() -> None:
    plan = plan_outputs(info(), LADDER)
    by_name = {r.name: r for r in plan.renditions}
    assert by_name["720p"].video_bitrate_kbps == 2500
    assert by_name["1080p"].video_bitrate_kbps is None
    assert by_name["480p"].audio_bitrate_kbps == 128
    assert by_name["480p"].file_name == "480p.mp4"


def test_duplicate_rendition_names_never_reach_the_plan() -> None:
    # The model refuses them (the twin of the CRD's CEL rule), so no job can carry them.
    with pytest.raises(ValidationError, match="rendition names must be unique"):
        Outputs(renditions=[Rendition(name="a", height=480), Rendition(name="a", height=360)])


def test_audio_track_selection() -> None:
    assert plan_outputs(info(audio=0), Outputs()).audio is None
    assert plan_outputs(info(audio=3), Outputs(audio_track=2)).audio.index == 3  # type: ignore[union-attr]
    # A track that does not exist falls back to the first one rather than dropping the sound.
    assert plan_outputs(info(audio=2), Outputs(audio_track=5)).audio.index == 1  # type: ignore[union-attr]


def test_surround_is_downmixed_to_stereo() -> None:
    assert plan_outputs(info(channels=6), Outputs()).audio_channels == 2
    assert plan_outputs(info(channels=2), Outputs()).audio_channels is None
    assert plan_outputs(info(channels=1), Outputs()).audio_channels is None


@pytest.mark.parametrize(
    ("duration", "expected"), [(2.0, 0.2), (30.0, 3.0), (100.0, 10.0), (7200.0, 10.0)]
)
def test_poster_time_is_inside_short_clips_and_early_in_long_ones(
    duration: float, expected: float
) -> None:
    assert poster_time(duration) == expected


def test_poster_size_is_capped_at_1080p() -> None:
    poster = plan_outputs(info(width=3840, height=2160), Outputs()).poster
    assert poster is not None and (poster.width, poster.height) == (1920, 1080)


def test_optional_outputs_can_be_turned_off() -> None:
    plan = plan_outputs(
        info(), Outputs(poster=False, storyboard=Storyboard(enabled=False), formats=["mp4"])
    )
    assert plan.poster is None and plan.storyboard is None and plan.hls is None
    assert plan.file_names == ["720p.mp4"]


def test_storyboard_grid() -> None:
    board = plan_storyboard(info(duration=95.0), interval_seconds=10, tile_width=160, columns=4)
    assert (board.tiles, board.columns, board.rows) == (10, 4, 3)
    assert (board.tile_width, board.tile_height) == (160, 90)


def test_storyboard_of_a_short_clip_is_one_tile() -> None:
    board = plan_storyboard(info(duration=2.0), interval_seconds=10, tile_width=160, columns=10)
    assert (board.tiles, board.columns, board.rows) == (1, 1, 1)


def test_storyboard_interval_grows_for_long_videos() -> None:
    board = plan_storyboard(info(duration=4 * 3600), interval_seconds=1, tile_width=160, columns=20)
    assert board.interval_seconds == 36.0
    assert board.tiles == 400 and board.rows == 20


def test_frame_rate_cap() -> None:
    assert frame_rate_cap(29.97) is None
    assert frame_rate_cap(60.0) is None
    assert frame_rate_cap(120.0) == 60.0
    assert frame_rate_cap(240.0) == 60.0
    assert frame_rate_cap(100.0) == 50.0
