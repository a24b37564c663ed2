"""Playback tokens (sign, verify, every refusal) and the playlist rewriting, as pure functions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from vidpipe.errors import ErrorCode
from vidpipe_api import playback
from vidpipe_api.playback import Claims, Signer, TokenExpired, TokenInvalid, TokenType
from vidpipe_api.playback_hls import (
    PlaylistError,
    filter_master,
    media_names,
    rewrite_uris,
    rewrite_vtt,
)
from vidpipe_api.playback_service import token_type_for, valid_range
from vidpipe_api.playback_store import TtlCache
from vidpipe_api.settings import Settings

pytestmark = pytest.mark.unit

KEY = b"k" * 32
OTHER = b"o" * 32


def claims(**overrides: object) -> Claims:
    values: dict[str, object] = {
        "playback_id": "pb_1",
        "job_id": "vj-1",
        "type": TokenType.VIDEO,
        "expires": int(time.time()) + 600,
        "issued": int(time.time()),
        "max_resolution": None,
    }
    values.update(overrides)
    return Claims(**values)  # type: ignore[arg-type]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_signed_token_verifies_to_its_claims() -> None:
    # Fails if any claim is lost or renamed between sign and verify.
    signer = Signer(KEY)
    want = claims(type=TokenType.STORYBOARD, max_resolution="720p")
    assert signer.verify(signer.sign(want)) == want
    assert want.max_height == 720


def test_the_token_is_a_standard_hs256_jwt() -> None:
    # Fails if the format drifts from RFC 7519/7515 (another library could not check it).
    token = Signer(KEY).sign(claims())
    header, payload, signature = token.split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {
        "alg": "HS256",
        "kid": hashlib.sha256(KEY).hexdigest()[:16],
        "typ": "JWT",
    }
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    assert body["sub"] == "pb_1" and body["aud"] == "v" and body["job"] == "vj-1"
    expected = hmac.new(KEY, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert b64(expected) == signature


@pytest.mark.parametrize("part", [0, 1, 2])
def test_a_token_with_any_part_changed_is_invalid(part: int) -> None:
    # Fails if a part of the token is not covered by the signature (or not checked at all).
    signer = Signer(KEY)
    pieces = signer.sign(claims()).split(".")
    text = pieces[part]
    pieces[part] = text[:-2] + ("A" if text[-2] != "A" else "B") + text[-1]
    with pytest.raises(TokenInvalid) as raised:
        signer.verify(".".join(pieces))
    assert raised.value.code is ErrorCode.PLAYBACK_TOKEN_INVALID


def test_a_payload_re_signed_with_another_key_is_invalid() -> None:
    # Fails if a token is accepted on its own kid/alg claim rather than our key.
    forged = Signer(OTHER).sign(claims(max_resolution=None, expires=int(time.time()) + 10**6))
    with pytest.raises(TokenInvalid):
        Signer(KEY).verify(forged)


def test_alg_none_and_other_algorithms_are_refused() -> None:
    # Fails if the header's alg is trusted (the classic JWT `none` / confusion attack).
    token = Signer(KEY).sign(claims())
    _, payload, signature = token.split(".")
    for alg in ("none", "HS512", "RS256"):
        header = b64(json.dumps({"alg": alg, "kid": playback.key_id(KEY)}).encode())
        for sig in (signature, ""):
            with pytest.raises(TokenInvalid):
                Signer(KEY).verify(f"{header}.{payload}.{sig}")


NESTED = b64(b"[" * 1000 + b"]" * 1000)


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "a.b.c.d", "é.b.c", "x" * 5000, "eyJ.eyJ.sig", "...", f"{NESTED}.e30.AAAA"],
)
def test_malformed_tokens_are_invalid(token: str) -> None:
    # Fails if malformed input raises anything but the catalogue's refusal (a 500), a header of
    # JSON nested a thousand deep (RecursionError, from an anonymous /play request) included.
    with pytest.raises(TokenInvalid):
        Signer(KEY).verify(token)


def test_an_expired_token_is_refused_with_its_own_code() -> None:
    # Fails if expiry is not checked, or checked with the wrong comparison at the boundary.
    signer = Signer(KEY)
    token = signer.sign(claims(expires=1_000))
    with pytest.raises(TokenExpired) as raised:
        signer.verify(token, now=1_000)
    assert raised.value.code is ErrorCode.PLAYBACK_TOKEN_EXPIRED
    assert signer.verify(token, now=999).expires == 1_000


def test_the_previous_key_verifies_but_never_signs() -> None:
    # Fails if a rotation breaks tokens signed before it, or signs with the old key.
    old = Signer(OTHER)
    rotated = Signer(KEY, previous=OTHER)
    assert rotated.verify(old.sign(claims())).playback_id == "pb_1"
    with pytest.raises(TokenInvalid):
        old.verify(rotated.sign(claims()))


def test_the_signature_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fails if verification compares digests with == (timing leaks the signature byte by byte).
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    signer = Signer(KEY)
    token = signer.sign(claims())
    signer.verify(token)
    with pytest.raises(TokenInvalid):
        signer.verify(token[:-3] + "AAA")
    assert len(calls) == 2 and all(len(a) == 32 for a, _ in calls)


def test_short_keys_are_refused() -> None:
    # Fails if a guessable key is accepted by the signer or the settings.
    with pytest.raises(ValueError):
        Signer(b"short")
    with pytest.raises(ValueError):
        Settings(playback_signing_key="changeme")


def test_max_resolution_must_look_like_a_resolution() -> None:
    # Fails if a claim that cannot be compared is accepted.
    with pytest.raises(ValueError):
        playback.resolution_height("high")
    assert playback.resolution_height("1080p") == 1080


# -- playlists -------------------------------------------------------------------------------

MASTER = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="audio",DEFAULT=YES,URI="audio.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2",AUDIO="aud"
360p.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2800000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2",AUDIO="aud"
720p.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=5000000,RESOLUTION=1920x1080,CODECS="avc1.640028,mp4a.40.2",AUDIO="aud"
1080p.m3u8
"""

MEDIA = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:4
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="720p.cmfv",BYTERANGE="812@0"
#EXTINF:4.000000,
#EXT-X-BYTERANGE:10000@812
720p.cmfv
#EXTINF:4.000000,
#EXT-X-BYTERANGE:9000@10812
720p.cmfv
#EXT-X-ENDLIST
"""


def test_master_without_limit_keeps_every_variant() -> None:
    # Fails if filtering drops or reorders variants when no limit is set.
    kept = filter_master(MASTER, None)
    assert kept.variants == 3 and not kept.refused
    assert kept.allowed == {"audio.m3u8", "360p.m3u8", "720p.m3u8", "1080p.m3u8"}
    assert kept.text.splitlines() == MASTER.strip().splitlines()


def test_master_filtered_by_max_resolution_drops_higher_variants_and_refuses_them() -> None:
    # Fails if a variant above the limit stays in the master or its playlist is not refused.
    kept = filter_master(MASTER, 720)
    assert kept.variants == 2
    assert "1080p.m3u8" not in kept.text and "RESOLUTION=1920x1080" not in kept.text
    assert "720p.m3u8" in kept.text and 'URI="audio.m3u8"' in kept.text
    assert kept.refused == {"1080p.m3u8"}
    assert "audio.m3u8" in kept.allowed


def test_portrait_renditions_are_measured_on_their_shorter_side() -> None:
    # Fails if 720x1280 counts as a 1280p rendition.
    master = MASTER.replace("1280x720", "720x1280")
    assert "720p.m3u8" in filter_master(master, 720).allowed


def test_a_limit_below_every_rendition_leaves_none() -> None:
    # Fails if the lowest rendition is served anyway when the limit is below it.
    kept = filter_master(MASTER, 240)
    assert kept.variants == 0 and kept.refused == {"360p.m3u8", "720p.m3u8", "1080p.m3u8"}


def test_a_variant_without_resolution_is_dropped_under_a_limit() -> None:
    # Fails if a rendition whose size we cannot read slips past max_resolution.
    master = MASTER.replace(",RESOLUTION=1920x1080", "")
    assert "1080p.m3u8" in filter_master(master, 720).refused
    assert "1080p.m3u8" in filter_master(master, None).allowed


@pytest.mark.parametrize(
    "uri", ["https://evil.example/x.m3u8", "../other/master.m3u8", "sub/720p.m3u8", "a?b=c"]
)
def test_playlists_with_uris_that_are_not_plain_names_are_refused(uri: str) -> None:
    # Fails if a stored playlist could make us point a player at another prefix or host.
    with pytest.raises(PlaylistError):
        filter_master(MASTER.replace("720p.m3u8", uri), None)
    with pytest.raises(PlaylistError):
        rewrite_uris(MEDIA.replace('URI="720p.cmfv"', f'URI="{uri}"'), lambda n: n)


def test_media_playlist_uris_and_the_map_are_rewritten_once_per_file() -> None:
    # Fails if EXT-X-MAP is missed, a segment line is missed, or byte ranges are touched.
    resolved: list[str] = []

    def presign(name: str) -> str:
        resolved.append(name)
        return f"https://s3.example/b/outputs/vj-1/{name}?X-Amz-Signature=abc&X-Amz-Expires=60"

    out = rewrite_uris(MEDIA, presign)
    assert resolved == ["720p.cmfv"]
    url = presign("720p.cmfv")
    assert f'#EXT-X-MAP:URI="{url}",BYTERANGE="812@0"' in out
    assert out.count(f"\n{url}\n") == 2
    assert "#EXT-X-BYTERANGE:10000@812" in out and out.rstrip().endswith("#EXT-X-ENDLIST")
    assert media_names(MEDIA) == ["720p.cmfv"]


def test_storyboard_vtt_images_are_rewritten_keeping_the_fragment() -> None:
    # Fails if the #xywh fragment (the tile) is lost or a cue timing line is altered.
    vtt = "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nstoryboard.jpg#xywh=0,0,160,90\n"
    out = rewrite_vtt(vtt, lambda n: f"https://s3/{n}?sig=1")
    assert "https://s3/storyboard.jpg?sig=1#xywh=0,0,160,90" in out
    assert "00:00:00.000 --> 00:00:02.000" in out


def test_each_file_needs_its_token_type() -> None:
    # Fails if a thumbnail token could fetch video, or an unknown name maps to a type.
    assert token_type_for("master.m3u8") is TokenType.VIDEO
    assert token_type_for("720p.cmfv") is TokenType.VIDEO
    assert token_type_for("audio.cmfa") is TokenType.VIDEO
    assert token_type_for("poster.jpg") is TokenType.THUMBNAIL
    assert token_type_for("storyboard.vtt") is TokenType.STORYBOARD
    assert token_type_for("storyboard.jpg") is TokenType.STORYBOARD
    assert token_type_for("manifest.json") is None
    assert token_type_for("metadata.json") is None


def test_only_single_byte_ranges_are_passed_to_s3() -> None:
    # Fails if a multi-range or malformed header reaches S3 (its error would be a 503).
    assert valid_range("bytes=0-99") == "bytes=0-99"
    assert valid_range("bytes=100-") == "bytes=100-"
    assert valid_range("bytes=-5") == "bytes=-5"
    assert valid_range("bytes=0-1,5-9") is None
    assert valid_range("items=0-1") is None
    assert valid_range(None) is None


def test_the_state_cache_forgets_after_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fails if a cached revocation state outlives playback_state_cache_seconds.
    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    cache: TtlCache[str, int] = TtlCache(5.0, size=2)
    cache.put("a", 1)
    assert cache.get("a") == (True, 1)
    clock[0] += 5.0
    assert cache.get("a") == (False, None)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("c", 3)
    assert cache.get("a") == (False, None) and cache.get("c") == (True, 3)
    off: TtlCache[str, int] = TtlCache(0)
    off.put("a", 1)
    assert off.get("a") == (False, None)
