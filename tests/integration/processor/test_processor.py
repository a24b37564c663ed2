"""The processor as a real process: real ffmpeg, the real S3 server, the Pod's environment
(presigned URLs in an access file, no S3 keys).

Each good input must produce H.264/AAC yuv420p faststart MP4s that never upscale, a poster, a
storyboard, metadata and a manifest written last; each bad input must exit with BAD_INPUT, say why
in the termination message, and write nothing under the job's prefix.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.integration.processor.conftest import Media
from tests.integration.processor.helpers import (
    Run,
    download_outputs,
    environment,
    ffprobe,
    finish,
    output_keys,
    run_processor,
    spec,
    start,
    top_level_atoms,
    write_access,
)
from tests.utils.servers import S3Server
from tests.utils.tcpproxy import Relay, TcpProxy
from vidpipe import exitcodes, keys

pytestmark = pytest.mark.integration

JOB = "job-1"
NO_EXTRAS = {"poster": False, "storyboard": {"enabled": False}}


def succeeded(run: Run) -> None:
    assert run.returncode == exitcodes.SUCCESS, run.logs[-3000:]
    assert run.termination["code"] == "ok"


def video_stream(probe: dict[str, Any]) -> dict[str, Any]:
    streams: list[dict[str, Any]] = [s for s in probe["streams"] if s["codec_type"] == "video"]
    assert len(streams) == 1
    return streams[0]


def audio_streams(probe: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in probe["streams"] if s["codec_type"] == "audio"]


def check_outputs(
    s3: S3Server, bucket: str, run: Run, dest: Path, renditions: dict[str, tuple[int, int]]
) -> dict[str, Path]:
    """What every successful job must leave: checks shared by the good-input tests."""
    client = s3.client()
    files = download_outputs(client, bucket, dest)
    expected = {f"{name}.mp4" for name in renditions} | {keys.METADATA_NAME, keys.MANIFEST_NAME}
    assert expected <= set(files)

    for name, (width, height) in renditions.items():
        probe = ffprobe(files[f"{name}.mp4"])
        video = video_stream(probe)
        assert (video["codec_name"], video["pix_fmt"]) == ("h264", "yuv420p"), name
        assert (video["width"], video["height"]) == (width, height), name
        assert "side_data_list" not in video, "outputs must not carry a rotation"
        assert all(a["codec_name"] == "aac" for a in audio_streams(probe))
        atoms = top_level_atoms(files[f"{name}.mp4"])
        assert atoms.index("moov") < atoms.index("mdat"), f"{name} is not faststart: {atoms}"

    manifest = json.loads(files[keys.MANIFEST_NAME].read_text())
    listed = {entry["name"]: entry for entry in manifest["outputs"]}
    assert set(listed) == set(files) - {keys.MANIFEST_NAME}
    for name, entry in listed.items():
        data = files[name].read_bytes()
        assert entry["size"] == len(data), name
        assert entry["sha256"] == hashlib.sha256(data).hexdigest(), name
        assert entry["key"] == keys.output_key(JOB, name)
    for name, (width, height) in renditions.items():
        assert (listed[f"{name}.mp4"]["width"], listed[f"{name}.mp4"]["height"]) == (width, height)

    # Written last: no other output is newer than the manifest.
    modified = {
        key: client.head_object(Bucket=bucket, Key=key)["LastModified"]
        for key in output_keys(client, bucket)
    }
    manifest_time = modified.pop(keys.output_key(JOB, keys.MANIFEST_NAME))
    assert all(t <= manifest_time for t in modified.values())
    # The manifest is the one list of outputs: fails if the termination message lists them too.
    assert set(run.termination) == {"code", "message"}

    progress = [line["progress"] for line in run.log_lines() if "progress" in line]
    assert progress == sorted(progress) and progress[-1] == 100
    assert "X-Amz-" not in run.logs, "a presigned URL (a credential) reached the logs"
    return files


def test_1080p_ladder_with_audio(s3: S3Server, bucket: str, media: Media, tmp_path: Path) -> None:
    ladder = [
        {"name": "2160p", "height": 2160},
        {"name": "1080p", "height": 1080},
        {"name": "720p", "height": 720, "videoBitrateKbps": 1500},
        {"name": "480p", "height": 480},
    ]
    run = run_processor(s3, bucket, media.hd_with_audio, tmp_path, outputs={"renditions": ladder})
    succeeded(run)
    files = check_outputs(
        s3,
        bucket,
        run,
        tmp_path / "out",
        {"1080p": (1920, 1080), "720p": (1280, 720), "480p": (854, 480)},
    )
    assert "2160p.mp4" not in files, "never upscale"
    for name in ("1080p", "720p", "480p"):
        [audio] = audio_streams(ffprobe(files[f"{name}.mp4"]))
        assert audio["codec_name"] == "aac"
        duration = float(ffprobe(files[f"{name}.mp4"])["format"]["duration"])
        assert duration == pytest.approx(2.0, abs=0.15)

    poster = files[keys.POSTER_NAME]
    assert poster.read_bytes()[:3] == b"\xff\xd8\xff"
    poster_video = video_stream(ffprobe(poster))
    assert (poster_video["width"], poster_video["height"]) == (1920, 1080)
    vtt = files[keys.STORYBOARD_VTT_NAME].read_text()
    assert vtt.startswith("WEBVTT")
    assert f"{keys.STORYBOARD_IMAGE_NAME}#xywh=0,0,160,90" in vtt
    sprite = video_stream(ffprobe(files[keys.STORYBOARD_IMAGE_NAME]))
    assert (sprite["codec_name"], sprite["width"], sprite["height"]) == ("mjpeg", 160, 90)

    metadata = json.loads(files[keys.METADATA_NAME].read_text())["source"]
    assert metadata["container"] == "mp4"
    video = metadata["video"]
    assert (video["codec"], video["width"], video["height"]) == ("h264", 1920, 1080)
    assert video["frameRate"] == 25.0
    assert metadata["durationSeconds"] == pytest.approx(2.0, abs=0.1)
    assert metadata["audio"][0]["codec"] == "aac"
    assert metadata["bitrate"] > 0 and metadata["sizeBytes"] == media.hd_with_audio.stat().st_size


@pytest.fixture
def videojob_api() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in for the API server's VideoJob status endpoint, recording what it receives."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PATCH(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({"path": self.path, "body": body})
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_no_audio_rerun_and_progress_to_the_videojob(
    s3: S3Server,
    bucket: str,
    media: Media,
    tmp_path: Path,
    videojob_api: tuple[str, list[dict[str, Any]]],
) -> None:
    client = s3.client()
    # Leftovers of an earlier attempt of the same job: a retry overwrites the same keys (the
    # processor cannot delete, and needs not: file names depend only on spec and source).
    for name in (keys.MANIFEST_NAME, "240p.mp4", keys.METADATA_NAME):
        client.put_object(Bucket=bucket, Key=keys.output_key(JOB, name), Body=b"old")
    token = tmp_path / "token"
    token.write_text("test-token")
    url, received = videojob_api
    run = run_processor(
        s3,
        bucket,
        media.no_audio,
        tmp_path,
        outputs={"renditions": [{"name": "240p", "height": 240}]},
        env={
            "VIDPIPE_VIDEOJOB_NAME": JOB,
            "VIDPIPE_VIDEOJOB_NAMESPACE": "jobs",
            "VIDPIPE_KUBERNETES_API_URL": url,
            "VIDPIPE_KUBERNETES_TOKEN_PATH": str(token),
        },
    )
    succeeded(run)
    files = check_outputs(s3, bucket, run, tmp_path / "out", {"240p": (320, 240)})
    assert files["240p.mp4"].read_bytes() != b"old"
    assert audio_streams(ffprobe(files["240p.mp4"])) == []

    values = [r["body"]["status"]["progress"] for r in received]
    assert values and values == sorted(set(values)) and values[-1] == 100
    assert received[0]["path"].startswith(
        "/apis/media.vidpipe.io/v1alpha1/namespaces/jobs/videojobs/job-1/status?"
    )


def test_two_second_clip_with_default_outputs(
    s3: S3Server, bucket: str, media: Media, tmp_path: Path
) -> None:
    run = run_processor(s3, bucket, media.two_seconds, tmp_path)
    succeeded(run)
    # 720p was asked for, the source is 360 high: one rendition at the source size.
    files = check_outputs(s3, bucket, run, tmp_path / "out", {"720p": (640, 360)})
    assert files[keys.POSTER_NAME].stat().st_size > 0
    vtt = files[keys.STORYBOARD_VTT_NAME].read_text()
    assert vtt.count("-->") == 1
    assert "00:00:00.000 --> 00:00:02.000" in vtt


def test_rotated_phone_video_comes_out_portrait(
    s3: S3Server, bucket: str, media: Media, tmp_path: Path
) -> None:
    outputs = {"renditions": [{"name": "240p", "height": 240}], "storyboard": {"enabled": False}}
    run = run_processor(s3, bucket, media.rotated, tmp_path, outputs=outputs)
    succeeded(run)
    files = check_outputs(s3, bucket, run, tmp_path / "out", {"240p": (180, 240)})
    poster = video_stream(ffprobe(files[keys.POSTER_NAME]))
    assert (poster["width"], poster["height"]) == (240, 320)
    metadata = json.loads(files[keys.METADATA_NAME].read_text())["source"]["video"]
    assert (metadata["rotation"], metadata["width"], metadata["height"]) == (90, 240, 320)


def test_odd_dimensions_and_444(s3: S3Server, bucket: str, media: Media, tmp_path: Path) -> None:
    outputs = {"renditions": [{"name": "240p", "height": 240}], **NO_EXTRAS}
    run = run_processor(s3, bucket, media.odd_444, tmp_path, outputs=outputs)
    succeeded(run)
    check_outputs(s3, bucket, run, tmp_path / "out", {"240p": (320, 240)})


def test_ten_bit_becomes_8bit_420(s3: S3Server, bucket: str, media: Media, tmp_path: Path) -> None:
    outputs = {"renditions": [{"name": "240p", "height": 240}], **NO_EXTRAS}
    run = run_processor(s3, bucket, media.ten_bit, tmp_path, outputs=outputs)
    succeeded(run)
    files = check_outputs(s3, bucket, run, tmp_path / "out", {"240p": (320, 240)})
    assert video_stream(ffprobe(files["240p.mp4"]))["profile"] == "High"


def test_second_audio_track_when_asked(
    s3: S3Server, bucket: str, media: Media, tmp_path: Path
) -> None:
    outputs = {"renditions": [{"name": "240p", "height": 240}], "audioTrack": 1, **NO_EXTRAS}
    run = run_processor(s3, bucket, media.two_audio_tracks, tmp_path, outputs=outputs)
    succeeded(run)
    files = check_outputs(s3, bucket, run, tmp_path / "out", {"240p": (320, 240)})
    [audio] = audio_streams(ffprobe(files["240p.mp4"]))
    assert audio["channels"] == 2, "track 1 (stereo) must be used, not track 0 (mono)"
    metadata = json.loads(files[keys.METADATA_NAME].read_text())
    assert metadata["audioTrack"] == {"requested": 1, "usedStreamIndex": 2}


def test_variable_frame_rate(s3: S3Server, bucket: str, media: Media, tmp_path: Path) -> None:
    outputs = {"renditions": [{"name": "240p", "height": 240}], **NO_EXTRAS}
    run = run_processor(s3, bucket, media.variable_frame_rate, tmp_path, outputs=outputs)
    succeeded(run)
    files = check_outputs(s3, bucket, run, tmp_path / "out", {"240p": (320, 240)})
    assert float(ffprobe(files["240p.mp4"])["format"]["duration"]) == pytest.approx(3.0, abs=0.2)


def test_poster_falls_back_to_the_first_frame_when_the_video_ends_early(
    s3: S3Server, bucket: str, media: Media, tmp_path: Path
) -> None:
    outputs = {"renditions": [{"name": "240p", "height": 240}], "storyboard": {"enabled": False}}
    run = run_processor(s3, bucket, media.video_shorter_than_audio, tmp_path, outputs=outputs)
    succeeded(run)
    files = check_outputs(s3, bucket, run, tmp_path / "out", {"240p": (320, 240)})
    assert files[keys.POSTER_NAME].read_bytes()[:3] == b"\xff\xd8\xff"
    assert any("first frame" in line["message"] for line in run.log_lines())


BAD_INPUTS = [
    ("empty", "empty_upload", "empty", {}),
    ("text", "not_a_video", "not a readable video", {}),
    ("truncated", "not_a_video", "moov atom not found", {}),
    ("hls_playlist", "unsupported_format", "HLS playlist", {}),
    ("concat_list", "unsupported_format", "concat list", {}),
    ("png_image", "unsupported_format", "an image", {}),
    ("no_audio", "resolution_limit_exceeded", "320x240", {"VIDPIPE_MAX_PIXELS": "64000"}),
]


@pytest.mark.parametrize(
    ("fixture", "code", "message", "env"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS]
)
def test_bad_input_is_refused_and_leaves_nothing(
    s3: S3Server,
    bucket: str,
    media: Media,
    tmp_path: Path,
    fixture: str,
    code: str,
    message: str,
    env: dict[str, str],
) -> None:
    client = s3.client()
    run = run_processor(s3, bucket, getattr(media, fixture), tmp_path, env=env)
    assert run.returncode == exitcodes.BAD_INPUT, run.logs[-3000:]
    assert run.termination["code"] == code
    assert message in run.termination["message"]
    assert output_keys(client, bucket) == []
    assert not any((tmp_path / "work").iterdir()), "the work dir must be cleaned up"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_sigterm_stops_ffmpeg_and_writes_nothing(
    s3: S3Server, bucket: str, media: Media, tmp_path: Path
) -> None:
    client = s3.client()
    client.upload_file(str(media.long_for_sigterm), bucket, keys.source_key(JOB))
    job_spec = spec(JOB, bucket, renditions=[{"name": "240p", "height": 240}])
    # A slow preset keeps ffmpeg busy long enough to be interrupted mid-encode.
    env = environment(s3, job_spec, tmp_path, VIDPIPE_X264_PRESET="slow")
    process = start(env, tmp_path)
    assert process.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    for line in process.stderr:
        seen.append(line)
        if '"progress": ' in line and json.loads(line)["progress"] >= 10:
            break
        assert time.monotonic() < deadline, "".join(seen)
    children = _children(process.pid)
    assert children, "ffmpeg should be running"
    os.kill(process.pid, signal.SIGTERM)
    run = finish(process, tmp_path, timeout=30)
    assert run.returncode == exitcodes.TERMINATED, "".join(seen) + run.logs
    assert run.termination["code"] == "processing_failed"
    assert "signal 15" in run.termination["message"]
    assert output_keys(client, bucket) == []
    assert not any((tmp_path / "work").iterdir())
    for pid in children:
        assert not Path(f"/proc/{pid}").exists(), "ffmpeg must be reaped"


KiB = 1024


def _terminated_mid_transfer(
    s3: S3Server, bucket: str, source: Path, tmp_path: Path, proxy: TcpProxy,
    ready: Callable[[Relay], bool],
) -> str:  # fmt: skip
    """Run a job whose every transfer crosses `proxy`, SIGTERM it once a connection is `ready`
    (half-way), check it stopped as documented, and return its logs."""
    s3.client().upload_file(str(source), bucket, keys.source_key(JOB))
    job_spec = spec(JOB, bucket, renditions=[{"name": "240p", "height": 240}], **NO_EXTRAS)
    seen: list[str] = []
    with proxy.running():
        env = environment(s3, job_spec, tmp_path)
        # Presigned for the proxy's address: the processor only knows the URLs it is given.
        write_access(
            replace(s3, endpoint_url=proxy.url), job_spec, tmp_path / "secret" / "access.json"
        )
        process = start(env, tmp_path)
        try:
            assert process.stderr is not None
            os.set_blocking(process.stderr.fileno(), False)
            deadline = time.monotonic() + 180
            while not any(ready(r) for r in list(proxy.relays)):
                assert process.poll() is None and time.monotonic() < deadline, "".join(seen)
                seen.extend(process.stderr.readlines())
                time.sleep(0.1)
            children = _children(process.pid)
            os.kill(process.pid, signal.SIGTERM)
            os.set_blocking(process.stderr.fileno(), True)
            run = finish(process, tmp_path, timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    logs = "".join(seen) + run.logs
    assert run.returncode == exitcodes.TERMINATED, logs
    assert run.termination["code"] == "processing_failed"
    assert "signal 15" in run.termination["message"]
    assert not any((tmp_path / "work").iterdir()), "the work dir must be cleaned up"
    # No ffmpeg runs while transferring (the mid-encode test covers reaping a running one).
    assert children == []
    return logs


def test_sigterm_during_download_stops_it_and_writes_nothing(
    s3: S3Server, bucket: str, media: Media, tmp_path: Path
) -> None:
    # The source crawls to the processor (32 KiB/s) so the signal lands mid-download.
    proxy = TcpProxy(_address(s3), down_rate=32 * KiB)
    source = media.long_for_sigterm
    logs = _terminated_mid_transfer(
        s3, bucket, source, tmp_path, proxy, lambda r: r.method == "GET" and r.down >= 64 * KiB
    )
    # Fails if the signal is not handled mid-download (the download goes on, ffmpeg starts, a
    # traceback or another exit code), or if the processor writes anything or leaves its files.
    (get,) = [r for r in proxy.relays if r.method == "GET"]
    assert get.down < source.stat().st_size, "the download should have been cut short"
    assert "source downloaded" not in logs and "ffmpeg started" not in logs
    assert output_keys(s3.client(), bucket) == []


def test_sigterm_during_upload_abandons_it_and_writes_no_manifest(
    s3: S3Server, bucket: str, media: Media, tmp_path: Path
) -> None:
    # Every upload crawls (8 KiB/s; the rendition is over a MiB), so the signal lands
    # while it is in flight; waiting for it would take minutes, past any grace period.
    proxy = TcpProxy(_address(s3), up_rate=8 * KiB)
    _terminated_mid_transfer(
        s3, bucket, media.long_for_sigterm, tmp_path, proxy,
        lambda r: r.method == "PUT" and r.body_sent >= 32 * KiB,
    )  # fmt: skip
    # Fails if the processor waits for its uploads (they complete, or the exit takes minutes),
    # if a cut-short PUT leaves an object, or if the manifest is written.
    client = s3.client()
    puts = {_key(r, bucket): r for r in proxy.relays if r.method == "PUT"}
    cut = {key for key, r in puts.items() if r.body_sent < (r.content_length or 0)}
    assert keys.output_key(JOB, "240p.mp4") in cut, {k: r.body_sent for k, r in puts.items()}
    stored = {
        key: client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        for key in output_keys(client, bucket)
    }
    assert keys.output_key(JOB, keys.MANIFEST_NAME) not in stored
    assert not cut & set(stored), f"an upload cut short left an object: {stored}"
    for key, size in stored.items():  # whatever finished before the signal is whole
        assert size == puts[key].content_length, key


def _address(s3: S3Server) -> tuple[str, int]:
    parts = urlsplit(s3.endpoint_url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _key(relay: Relay, bucket: str) -> str:
    """The object key of a PUT seen by the proxy (its path is /bucket/key?signature)."""
    path = urlsplit(relay.request_line.split(" ")[1]).path
    return path.removeprefix(f"/{bucket}/")


def test_invalid_job_spec_is_never_retried(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    job_spec = spec("Not_A_Valid_Id", bucket)
    process = start(environment(s3, job_spec, tmp_path), tmp_path)
    run = finish(process, tmp_path)
    assert run.returncode == exitcodes.BAD_INPUT
    assert run.termination["code"] == "validation_failed"
    assert "job_spec.jobId" in run.termination["message"]
    assert s3.secret_key not in run.logs
