"""Signed playback against the real API, versitygw and FerretDB, with a real HLS set.

The HLS set is made by ffmpeg in the processor's layout (docs: HLS output contract: one
single-file fMP4 per track, byte-range playlists, flat names) and stored under a job's output
prefix with a Succeeded record listing it, as the operator records a finished job. Players are
real: `ffprobe` reads the master playlist through the playback URL.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest

from tests.integration.api.conftest import Api, ApiFactory
from tests.utils.records import job_record
from tests.utils.servers import S3Server
from vidpipe.keys import output_key
from vidpipe.logs import JsonFormatter
from vidpipe_api.db import now
from vidpipe_api.playback import Claims, Signer, TokenType

pytestmark = pytest.mark.integration

KEY = "integration-playback-key-" + "x" * 16
MASTER = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="audio",DEFAULT=YES,AUTOSELECT=YES,URI="audio.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2",AUDIO="aud"
360p.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=450000,RESOLUTION=320x180,CODECS="avc1.4d400c,mp4a.40.2",AUDIO="aud"
180p.m3u8
"""


def _hls_track(mapping: str, codec: list[str], name: str, ext: str) -> list[str]:
    return [
        "-map", mapping, *codec, "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod",
        "-hls_segment_type", "fmp4", "-hls_flags", "single_file",
        "-hls_segment_filename", f"{name}.{ext}", f"{name}.m3u8",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def hls_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s, two renditions (360p, 180p) with aligned 2 s GOPs and one audio track, plus a poster
    and a storyboard, named as the contract names them."""
    d = tmp_path_factory.mktemp("hls")
    video = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-keyint_min", "50"]
    video += ["-sc_threshold", "0", "-an"]
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc=duration=6:size=640x360:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:duration=6",
            "-filter_complex", "[0:v]split=2[a][b];[a]scale=640:360[v1];[b]scale=320:180[v2]",
            *_hls_track("[v1]", video, "360p", "cmfv"),
            *_hls_track("[v2]", video, "180p", "cmfv"),
            *_hls_track("1:a", ["-c:a", "aac", "-b:a", "64k", "-vn"], "audio", "cmfa"),
        ],
        cwd=d,
        check=True,
        timeout=120,
    )  # fmt: skip
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         "testsrc=size=160x90", "-frames:v", "1", "poster.jpg"],
        cwd=d, check=True, timeout=60,
    )  # fmt: skip
    (d / "storyboard.jpg").write_bytes((d / "poster.jpg").read_bytes())
    (d / "storyboard.vtt").write_text(
        "WEBVTT\n\n00:00:00.000 --> 00:00:06.000\nstoryboard.jpg#xywh=0,0,160,90\n"
    )
    (d / "master.m3u8").write_text(MASTER)
    return d


@dataclass
class Played:
    api: Api
    job_id: str
    files: Path


def store_job(api: Api, s3: S3Server, files: Path, *, phase: str = "Succeeded") -> str:
    """Upload `files` under a new job's output prefix and record the job as the operator
    records a finished one: outputs = the manifest's list."""
    job_id = f"vj-{uuid.uuid4().hex}"
    client = s3.client()
    outputs = []
    for path in sorted(files.iterdir()):
        key = output_key(job_id, path.name)
        client.put_object(Bucket=api.settings.s3_bucket, Key=key, Body=path.read_bytes())
        outputs.append(key)
    doc = job_record(
        job_id, phase=phase, progress=100, outputs=outputs, updated_at=now(), cr_created=True
    ).document()
    with api.mongo() as mc:
        mc[api.settings.mongo_database]["jobs"].insert_one(doc)
    return job_id


@pytest.fixture(scope="module")
def proxied(offline_api_factory: ApiFactory, s3: S3Server, hls_set: Path) -> Iterator[Played]:
    with offline_api_factory(playback_signing_key=KEY) as api:
        yield Played(api, store_job(api, s3, hls_set), hls_set)


def issue(api: Api, job_id: str, owner: str = "alice", **body: Any) -> httpx.Response:
    return httpx.post(
        f"{api.url}/v1/jobs/{job_id}/playback", json=body, headers=api.headers(owner), timeout=30
    )


def get(api: Api, path: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{api.url}{path}", headers=headers, timeout=30)


def refused(response: httpx.Response, code: str, status: int = 403) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    # No refusal carries an S3 address or a presigned URL.
    assert "X-Amz" not in response.text and "127.0.0.1" not in response.text


def ffprobe(url: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,width,height",
         "-of", "json", url],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    streams: list[dict[str, Any]] = json.loads(out.stdout)["streams"]
    return streams


def test_ffprobe_reads_the_master_through_the_playback_url(proxied: Played) -> None:
    # Fails if a playlist, the EXT-X-MAP or a byte-range segment does not reach the player.
    created = issue(proxied.api, proxied.job_id)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["playbackId"].startswith("pb_") and set(body["tokens"]) == {
        "video",
        "thumbnail",
        "storyboard",
    }
    streams = ffprobe(proxied.api.url + body["urls"]["master"])
    videos = sorted((s["width"], s["height"]) for s in streams if s["codec_type"] == "video")
    assert videos == [(320, 180), (640, 360)]
    assert any(s["codec_type"] == "audio" for s in streams)


def test_segments_are_served_with_range_support(proxied: Played) -> None:
    # Fails if Range is ignored (players of byte-range playlists would get the whole file).
    token = issue(proxied.api, proxied.job_id).json()["tokens"]["video"]
    data = (proxied.files / "360p.cmfv").read_bytes()
    part = get(proxied.api, f"/play/{token}/360p.cmfv", Range="bytes=814-2000")
    assert part.status_code == 206
    assert part.content == data[814:2001]
    assert part.headers["content-range"] == f"bytes 814-2000/{len(data)}"
    whole = get(proxied.api, f"/play/{token}/360p.cmfv")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["access-control-allow-origin"] == "*"


def test_a_range_beyond_the_file_answers_416_with_its_size(proxied: Played) -> None:
    # Fails if a range past the end answers anything but 416 with `Content-Range: bytes */size`
    # (RFC 9110), which a player needs to ask again within the file.
    token = issue(proxied.api, proxied.job_id).json()["tokens"]["video"]
    size = (proxied.files / "360p.cmfv").stat().st_size
    beyond = get(proxied.api, f"/play/{token}/360p.cmfv", Range=f"bytes={size}-")
    refused(beyond, "range_not_satisfiable", 416)
    assert beyond.headers["content-range"] == f"bytes */{size}"
    assert beyond.json()["details"] == {"sizeBytes": size}


def test_max_resolution_filters_the_master_and_refuses_higher_renditions(proxied: Played) -> None:
    # Fails if a rendition above max_resolution is listed or served, by playlist or by file.
    body = issue(proxied.api, proxied.job_id, maxResolution="240p").json()
    token = body["tokens"]["video"]
    master = get(proxied.api, body["urls"]["master"])
    assert master.status_code == 200 and "360p.m3u8" not in master.text
    assert "180p.m3u8" in master.text
    refused(get(proxied.api, f"/play/{token}/360p.m3u8"), "playback_resolution_refused")
    refused(get(proxied.api, f"/play/{token}/360p.cmfv"), "playback_resolution_refused")
    assert get(proxied.api, f"/play/{token}/180p.m3u8").status_code == 200
    streams = ffprobe(proxied.api.url + body["urls"]["master"])
    assert [(s["width"], s["height"]) for s in streams if s["codec_type"] == "video"] == [
        (320, 180)
    ]
    below = issue(proxied.api, proxied.job_id, maxResolution="144p").json()
    refused(get(proxied.api, below["urls"]["master"]), "playback_resolution_refused")


def test_expired_and_tampered_tokens_are_refused(proxied: Played) -> None:
    # Fails if expiry or the signature is not checked on /play.
    body = issue(proxied.api, proxied.job_id).json()
    past = int(time.time()) - 1
    expired = Signer(KEY.encode()).sign(
        Claims(body["playbackId"], proxied.job_id, TokenType.VIDEO, past, past - 60)
    )
    refused(get(proxied.api, f"/play/{expired}/master.m3u8"), "playback_token_expired")
    token = body["tokens"]["video"]
    header, payload, signature = token.split(".")
    # Another job's id in an otherwise valid token: the signature no longer matches.
    claims = json.loads(_unb64(payload))
    claims["job"] = "vj-someone-else"
    forged = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    refused(get(proxied.api, f"/play/{forged}/master.m3u8"), "playback_token_invalid")
    refused(get(proxied.api, "/play/not-a-token/master.m3u8"), "playback_token_invalid")
    other_key = Signer(b"z" * 32).sign(
        Claims(body["playbackId"], proxied.job_id, TokenType.VIDEO, past + 3600, past)
    )
    refused(get(proxied.api, f"/play/{other_key}/master.m3u8"), "playback_token_invalid")


def test_each_token_type_covers_only_its_files(proxied: Played) -> None:
    # Fails if a thumbnail token plays video, a video token fetches the poster, and so on.
    body = issue(proxied.api, proxied.job_id).json()
    tokens, urls = body["tokens"], body["urls"]
    refused(
        get(proxied.api, f"/play/{tokens['thumbnail']}/master.m3u8"), "playback_wrong_token_type"
    )
    refused(get(proxied.api, f"/play/{tokens['video']}/poster.jpg"), "playback_wrong_token_type")
    refused(
        get(proxied.api, f"/play/{tokens['storyboard']}/poster.jpg"), "playback_wrong_token_type"
    )
    poster = get(proxied.api, urls["poster"])
    assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"
    assert poster.content == (proxied.files / "poster.jpg").read_bytes()
    vtt = get(proxied.api, urls["storyboard"])
    assert vtt.status_code == 200 and "storyboard.jpg#xywh=0,0,160,90" in vtt.text
    assert get(proxied.api, urls["storyboardImage"]).status_code == 200
    # Files no token type covers are never served, with any token; nor names that are not
    # plain file names (a 404, never a 500).
    refused(get(proxied.api, f"/play/{tokens['video']}/manifest.json"), "not_found", 404)
    for odd in ("a%20b.m3u8", "..m3u8", ".m3u8", "%2E%2E"):
        refused(get(proxied.api, f"/play/{tokens['video']}/{odd}"), "not_found", 404)


def test_a_revoked_playback_id_is_refused_and_only_its_owner_revokes(proxied: Played) -> None:
    # Fails if revocation is not stored, not checked on /play, or open to another owner.
    body = issue(proxied.api, proxied.job_id).json()
    pid, master = body["playbackId"], body["urls"]["master"]
    assert get(proxied.api, master).status_code == 200
    url = f"{proxied.api.url}/v1/playbacks/{pid}"
    refused(httpx.delete(url, headers=proxied.api.headers("bob")), "playback_not_found", 404)
    assert get(proxied.api, master).status_code == 200
    assert httpx.delete(url, headers=proxied.api.headers("alice")).status_code == 204
    refused(get(proxied.api, master), "playback_revoked")
    refused(get(proxied.api, body["urls"]["poster"]), "playback_revoked")
    assert httpx.delete(url, headers=proxied.api.headers("alice")).status_code == 204
    with proxied.api.mongo() as mc:
        doc = mc[proxied.api.settings.mongo_database]["playbacks"].find_one({"_id": pid})
    assert doc is not None and doc["revoked_at"] is not None


def test_a_revocation_reaches_another_replica_within_the_cache_bound(
    offline_api_factory: ApiFactory, s3: S3Server, hls_set: Path, proxied: Played
) -> None:
    # Fails if a replica keeps serving a revoked id past playback_state_cache_seconds.
    settings = proxied.api.settings
    with offline_api_factory(
        playback_signing_key=KEY,
        playback_state_cache_seconds=1.0,
        mongo_database=settings.mongo_database,
    ) as other:
        body = issue(proxied.api, proxied.job_id).json()
        master = body["urls"]["master"]
        assert get(other, master).status_code == 200  # now cached on the other replica
        revoked = httpx.delete(
            f"{proxied.api.url}/v1/playbacks/{body['playbackId']}",
            headers=proxied.api.headers("alice"),
        )
        assert revoked.status_code == 204
        time.sleep(1.2)
        refused(get(other, master), "playback_revoked")


def test_playback_is_issued_only_for_the_owners_succeeded_hls_jobs(
    proxied: Played, s3: S3Server, hls_set: Path, tmp_path: Path
) -> None:
    # Fails if a token can be issued for a running job, an MP4-only job or another's job.
    api = proxied.api
    refused(issue(api, proxied.job_id, owner="bob"), "job_not_found", 404)
    running = store_job(api, s3, hls_set, phase="Running")
    refused(issue(api, running), "playback_not_ready", 409)
    (tmp_path / "720p.mp4").write_bytes(b"not played")
    mp4_only = store_job(api, s3, tmp_path)
    refused(issue(api, mp4_only), "playback_not_ready", 409)
    too_long = issue(
        api, proxied.job_id, ttlSeconds=api.settings.playback_max_token_ttl_seconds + 1
    )
    refused(too_long, "validation_failed", 422)
    refused(issue(api, proxied.job_id, maxResolution="huge"), "validation_failed", 422)
    anonymous = httpx.post(f"{api.url}/v1/jobs/{proxied.job_id}/playback", json={}, timeout=30)
    refused(anonymous, "unauthenticated", 401)


def test_presigned_mode_serves_playlists_of_presigned_urls_that_ffprobe_plays(
    offline_api_factory: ApiFactory, s3: S3Server, hls_set: Path
) -> None:
    # Fails if a media playlist keeps relative URIs or EXT-X-MAP is left unsigned, or if the
    # presigned URLs do not play.
    with offline_api_factory(playback_signing_key=KEY, playback_media="presign") as api:
        job_id = store_job(api, s3, hls_set)
        body = issue(api, job_id).json()
        token = body["tokens"]["video"]
        media = get(api, f"/play/{token}/360p.m3u8").text
        assert media.count("X-Amz-Signature=") == 4  # the map and three segments
        assert '#EXT-X-MAP:URI="http' in media
        streams = ffprobe(api.url + body["urls"]["master"])
        assert {
            (s.get("width"), s.get("height")) for s in streams if s["codec_type"] == "video"
        } == {
            (640, 360),
            (320, 180),
        }
        poster = httpx.get(f"{api.url}{body['urls']['poster']}", timeout=30)
        assert poster.status_code == 302 and "X-Amz-Signature=" in poster.headers["location"]
        vtt = get(api, body["urls"]["storyboard"]).text
        assert "X-Amz-Signature=" in vtt and "#xywh=0,0,160,90" in vtt
        # A presigned URL never outlives the token that asked for it (fails if they carried the
        # presign setting's hour while the token had two minutes left).
        short = issue(api, job_id, ttlSeconds=120).json()["tokens"]["video"]
        lifetimes = re.findall(r"X-Amz-Expires=(\d+)", get(api, f"/play/{short}/360p.m3u8").text)
        assert lifetimes and all(0 < int(seconds) <= 120 for seconds in lifetimes), lifetimes
        # No S3 URL without a valid token.
        refused(get(api, f"/play/{token[:-4]}AAAA/360p.m3u8"), "playback_token_invalid")
        refused(
            get(api, f"/play/{body['tokens']['thumbnail']}/360p.m3u8"), "playback_wrong_token_type"
        )


def test_logs_never_carry_tokens_or_presigned_urls(
    proxied: Played, caplog: pytest.LogCaptureFixture
) -> None:
    # Fails if a playback request logs its token (the credential) in a formatted line.
    caplog.set_level(logging.DEBUG)
    body = issue(proxied.api, proxied.job_id).json()
    token = body["tokens"]["video"]
    get(proxied.api, f"/play/{token}/master.m3u8")
    get(proxied.api, f"/play/{token[:-2]}xx/master.m3u8")
    get(proxied.api, f"/play/{token}/missing.m3u8")
    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in caplog.records]
    # A line that quoted the token would be redacted by the formatter, so none may hold it.
    logging.getLogger("test").info("probe %s", token)
    lines.append(formatter.format(caplog.records[-1]))
    assert not any(token in line or token.split(".")[2] in line for line in lines)
    assert "<redacted-token>" in lines[-1]
    # Metrics label the route template, never the path with its token.
    scraped = generate_latest(proxied.api.ctx.metrics.registry).decode()
    assert 'route="/play/{token}/{name}"' in scraped and token.split(".")[2] not in scraped


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
