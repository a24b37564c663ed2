"""The HLS/CMAF ladder as the real processor writes it (issue 15): real ffmpeg, the real S3 server,
presigned URLs only. Validity is checked by hls_checks.check_hls with ffprobe on the uploaded files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.processor.conftest import FAST_H264, ffmpeg, tone, video
from tests.integration.processor.helpers import download_outputs, run_processor
from tests.integration.processor.hls_checks import check_hls, packet_sizes, run_json
from tests.utils.servers import S3Server
from vidpipe import exitcodes, keys

pytestmark = pytest.mark.integration

LADDER = [
    {"name": "360p", "height": 360, "audioBitrateKbps": 96},
    {"name": "240p", "height": 240},
    {"name": "144p", "height": 144, "audioBitrateKbps": 64},
]
NO_IMAGES = {"poster": False, "storyboard": {"enabled": False}}
SECONDS = 11.0  # three segments: 4 + 4 + 3


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hls-media") / "clip.mp4"
    ffmpeg(*video("640x360", SECONDS, rate=30), *tone(SECONDS), *FAST_H264, "-c:a", "aac",
           str(path))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def vfr_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Irregular timestamps and no audio: keyframes must still land on the same PTS everywhere.
    path = tmp_path_factory.mktemp("hls-media") / "vfr.mkv"
    ffmpeg(*video("320x240", 9), "-vf", "select='gt(random(0),0.33)'", "-fps_mode", "vfr",
           *FAST_H264, str(path))  # fmt: skip
    return path


def _run(s3: S3Server, bucket: str, source: Path, tmp: Path, **outputs: object) -> dict[str, Path]:
    run = run_processor(s3, bucket, source, tmp, outputs={**NO_IMAGES, **outputs})
    assert run.returncode == exitcodes.SUCCESS, run.logs[-3000:]
    return download_outputs(s3.client(), bucket, tmp / "out")


def test_both_formats_share_one_encode_and_make_a_valid_aligned_ladder(
    s3: S3Server, bucket: str, clip: Path, tmp_path: Path
) -> None:
    # Fails if a playlist does not parse, a segment starts without a keyframe or off the shared
    # boundaries, the manifest misses an HLS object, or MP4 and HLS came from separate encodes.
    files = _run(s3, bucket, clip, tmp_path, renditions=LADDER)
    manifest = json.loads(files[keys.MANIFEST_NAME].read_text())
    names = {"360p", "240p", "144p"}
    expected = {f"{n}.mp4" for n in names} | set(keys.hls_file_names(sorted(names), audio=True))
    assert set(files) == expected | {keys.METADATA_NAME, keys.MANIFEST_NAME}
    assert {e["name"] for e in manifest["outputs"]} == set(files) - {keys.MANIFEST_NAME}

    starts = check_hls(files, manifest, tmp_path, duration=SECONDS)
    offset = starts["360p"][0]
    assert starts["360p"] == pytest.approx([offset, offset + 4, offset + 8], abs=0.002)
    assert manifest["hls"]["segmentSeconds"] == 4
    assert [v["rendition"] for v in manifest["hls"]["variants"]] == ["360p", "240p", "144p"]
    assert manifest["hls"]["audio"]["playlist"] == keys.AUDIO_PLAYLIST_NAME

    for name in names:
        # The same encoded frames in both files: the encode was teed, not repeated.
        assert packet_sizes(files[f"{name}.mp4"], "v") == packet_sizes(files[f"{name}.cmfv"], "v")
    # The audio group is the ladder's highest-bitrate audio encode (240p's 128 kb/s), shared.
    assert packet_sizes(files["240p.mp4"], "a") == packet_sizes(files["audio.cmfa"], "a")
    assert packet_sizes(files["360p.mp4"], "a") != packet_sizes(files["audio.cmfa"], "a")


def test_hls_only_writes_no_mp4_and_one_audio_encode(
    s3: S3Server, bucket: str, clip: Path, tmp_path: Path
) -> None:
    # Fails if HLS alone still wrote MP4 files or left the audio group out of the ladder.
    files = _run(s3, bucket, clip, tmp_path, renditions=LADDER, formats=["hls"])
    manifest = json.loads(files[keys.MANIFEST_NAME].read_text())
    assert not [n for n in files if n.endswith(".mp4")]
    check_hls(files, manifest, tmp_path, duration=SECONDS)
    assert manifest["hls"]["audio"]["channels"] == 1  # the source's mono tone


def test_mp4_only_has_no_hls(s3: S3Server, bucket: str, clip: Path, tmp_path: Path) -> None:
    # Fails if an MP4-only job still wrote (or listed) HLS objects.
    files = _run(s3, bucket, clip, tmp_path, renditions=LADDER[:1], formats=["mp4"])
    manifest = json.loads(files[keys.MANIFEST_NAME].read_text())
    assert set(files) == {"360p.mp4", keys.METADATA_NAME, keys.MANIFEST_NAME}
    assert manifest["hls"] is None


def test_variable_frame_rate_without_audio_stays_aligned(
    s3: S3Server, bucket: str, vfr_clip: Path, tmp_path: Path
) -> None:
    # Fails if irregular timestamps put keyframes (so segment starts) at different PTS per
    # rendition, or a silent source got an audio group.
    ladder = [{"name": "240p", "height": 240}, {"name": "144p", "height": 144}]
    files = _run(s3, bucket, vfr_clip, tmp_path, renditions=ladder, formats=["hls", "mp4"])
    manifest = json.loads(files[keys.MANIFEST_NAME].read_text())
    assert manifest["hls"]["audio"] is None
    assert keys.AUDIO_PLAYLIST_NAME not in files
    mp4 = run_json("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json",
                   str(files["240p.mp4"]))  # fmt: skip
    probed_duration = float(mp4["format"]["duration"])
    starts = check_hls(files, manifest, tmp_path, duration=probed_duration)
    assert len(starts["240p"]) >= 2
