"""The storyboard's WebVTT index, metadata.json and the manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.unit.processor.factories import info
from vidpipe.models import Outputs
from vidpipe_processor.outputs import (
    describe_file,
    manifest_document,
    metadata_document,
    storyboard_vtt,
    vtt_timestamp,
)
from vidpipe_processor.plan import plan_outputs, plan_storyboard

pytestmark = pytest.mark.unit


def test_vtt_timestamps() -> None:
    assert vtt_timestamp(0) == "00:00:00.000"
    assert vtt_timestamp(3723.4567) == "01:02:03.457"


def test_storyboard_vtt_cues_point_into_the_sprite() -> None:
    board = plan_storyboard(info(duration=25.0), interval_seconds=10, tile_width=160, columns=2)
    text = storyboard_vtt(board, 25.0)
    assert text.splitlines() == [
        "WEBVTT",
        "",
        "00:00:00.000 --> 00:00:10.000",
        "storyboard.jpg#xywh=0,0,160,90",
        "",
        "00:00:10.000 --> 00:00:20.000",
        "storyboard.jpg#xywh=160,0,160,90",
        "",
        "00:00:20.000 --> 00:00:25.000",
        "storyboard.jpg#xywh=0,90,160,90",
    ]


def test_manifest_lists_files_with_size_checksum_and_rendition(tmp_path: Path) -> None:
    media = info()
    plan = plan_outputs(media, Outputs())
    mp4 = tmp_path / "720p.mp4"
    mp4.write_bytes(b"video")
    poster = tmp_path / "poster.jpg"
    poster.write_bytes(b"jpeg!")
    files = [
        describe_file(mp4, "outputs/j/720p.mp4"),
        describe_file(poster, "outputs/j/poster.jpg"),
    ]
    manifest = manifest_document("j", media, plan, files)
    assert manifest["jobId"] == "j"
    first, second = manifest["outputs"]
    assert first == {
        "name": "720p.mp4",
        "key": "outputs/j/720p.mp4",
        "size": 5,
        "sha256": hashlib.sha256(b"video").hexdigest(),
        "contentType": "video/mp4",
        "rendition": "720p",
        "width": 1280,
        "height": 720,
    }
    assert second["contentType"] == "image/jpeg" and "rendition" not in second


def test_metadata_describes_the_source_and_the_audio_used() -> None:
    media = info(audio=2)
    document = metadata_document(media, plan_outputs(media, Outputs(audio_track=1)))
    assert document["source"]["video"]["height"] == 1080
    assert document["audioTrack"] == {"requested": 1, "usedStreamIndex": 2}
