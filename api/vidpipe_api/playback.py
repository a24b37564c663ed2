"""Signed playback tokens: compact JWTs (HS256) that are the only credential of `/play/...`.

Why a JWT with HMAC-SHA256: any JWT library can read and check one (it is what Mux's signed
playback uses, with RS256), yet verifying one here is a single HMAC over a few hundred bytes and
no dependency; the bench (bench/playback.py) holds it to p99 < 1 ms. We accept exactly one form,
the one we issue: header `{"alg": "HS256", "kid", "typ": "JWT"}`; any other `alg` (`none`
included) is refused before any key is used, so algorithm confusion has nothing to confuse.

Claims (Mux's names where it has one):
- `sub`  the playback id (revocable: the `playbacks` collection, vidpipe_api.playback_store);
- `aud`  the token type: `v` video (playlists and media), `t` thumbnail (poster), `s` storyboard;
- `exp`  expiry, Unix seconds; `iat` issue time;
- `job`  the job whose outputs it plays;
- `max_resolution` (optional) e.g. `720p`: renditions whose shorter side is above it are left out.

Keys: `kid` is the first 16 hex digits of the SHA-256 of the key, so a rotated-in key signs new
tokens while the previous key (`VIDPIPE_API_PLAYBACK_PREVIOUS_SIGNING_KEY`) still verifies old
ones until they expire. The signature is compared with `hmac.compare_digest` (constant time in
the length of the expected digest), after the key is chosen and before any claim is read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from vidpipe.errors import ErrorCode, VidpipeError

# A token longer than this is refused before any decoding: ours are about 350 characters.
MAX_TOKEN_LENGTH = 2048
# Keys shorter than this are refused at start-up (RFC 7518 3.2: at least the hash's size).
MIN_KEY_BYTES = 32
MAX_RESOLUTION = re.compile(r"^[1-9][0-9]{1,3}p$")

_HEADER_ALG = "HS256"


class TokenType(StrEnum):
    VIDEO = "video"
    THUMBNAIL = "thumbnail"
    STORYBOARD = "storyboard"

    @property
    def aud(self) -> str:
        return _AUD[self]


_AUD = {TokenType.VIDEO: "v", TokenType.THUMBNAIL: "t", TokenType.STORYBOARD: "s"}
_TYPE_OF_AUD = {aud: kind for kind, aud in _AUD.items()}


class TokenInvalid(VidpipeError):
    """Malformed, tampered with, or signed by a key we do not hold: the message says no more."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.PLAYBACK_TOKEN_INVALID, "the playback token is not valid")


class TokenExpired(VidpipeError):
    def __init__(self, expired_at: int) -> None:
        super().__init__(
            ErrorCode.PLAYBACK_TOKEN_EXPIRED,
            "the playback token has expired; ask for a new one",
            {"expiredAt": expired_at},
        )


class PlaybackRevoked(VidpipeError):
    def __init__(self) -> None:
        super().__init__(ErrorCode.PLAYBACK_REVOKED, "this playback id was revoked")


class WrongTokenType(VidpipeError):
    def __init__(self, has: TokenType, needs: TokenType) -> None:
        super().__init__(
            ErrorCode.PLAYBACK_WRONG_TOKEN_TYPE,
            f"a {has.value} token does not cover this file; it needs a {needs.value} token",
            {"tokenType": has.value, "required": needs.value},
        )


class ResolutionRefused(VidpipeError):
    def __init__(self, max_resolution: str) -> None:
        super().__init__(
            ErrorCode.PLAYBACK_RESOLUTION_REFUSED,
            f"this rendition is above the token's max_resolution {max_resolution}",
            {"maxResolution": max_resolution},
        )


class PlaybackNotReady(VidpipeError):
    def __init__(self, job_id: str, reason: str) -> None:
        super().__init__(ErrorCode.PLAYBACK_NOT_READY, f"job {job_id!r} cannot be played: {reason}")


class PlaybackNotFound(VidpipeError):
    def __init__(self, playback_id: str) -> None:
        super().__init__(
            ErrorCode.PLAYBACK_NOT_FOUND, f"no playback {playback_id!r} for this caller"
        )


@dataclass(frozen=True)
class Claims:
    playback_id: str
    job_id: str
    type: TokenType
    expires: int
    issued: int
    max_resolution: str | None = None

    @property
    def max_height(self) -> int | None:
        """`720p` -> 720: the largest shorter side a rendition may have."""
        return resolution_height(self.max_resolution) if self.max_resolution else None


def resolution_height(value: str) -> int:
    if not MAX_RESOLUTION.match(value):
        raise ValueError(f"max_resolution must look like 720p: {value!r}")
    return int(value[:-1])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or len(text) % 4 == 1:
        raise ValueError("bad base64url length")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def _header(kid: str) -> str:
    return _b64(
        json.dumps({"alg": _HEADER_ALG, "kid": kid, "typ": "JWT"}, separators=(",", ":")).encode()
    )


class Signer:
    """Signs with `key`; verifies with `key` or `previous` (a rotation's old key)."""

    def __init__(self, key: bytes, previous: bytes | None = None) -> None:
        for k in (key, previous):
            if k is not None and len(k) < MIN_KEY_BYTES:
                raise ValueError(f"a playback signing key needs at least {MIN_KEY_BYTES} bytes")
        self.kid = key_id(key)
        self._key = key
        # Header bytes are fixed per key: encoded once, looked up as text when verifying.
        self._header = _header(self.kid)
        self._keys = {self.kid: key}
        self._headers = {self._header: key}
        if previous is not None:
            self._keys[key_id(previous)] = previous
            self._headers[_header(key_id(previous))] = previous

    def sign(self, claims: Claims) -> str:
        payload: dict[str, Any] = {
            "sub": claims.playback_id,
            "aud": claims.type.aud,
            "exp": claims.expires,
            "iat": claims.issued,
            "job": claims.job_id,
        }
        if claims.max_resolution:
            payload["max_resolution"] = claims.max_resolution
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        signing_input = f"{self._header}.{body}".encode("ascii")
        signature = hmac.new(self._key, signing_input, hashlib.sha256).digest()
        return f"{signing_input.decode('ascii')}.{_b64(signature)}"

    def _key_for(self, header: str) -> bytes:
        key = self._headers.get(header)
        if key is not None:
            return key
        # Not byte-for-byte ours: still a JWT we may hold the key of (another encoder's key
        # order), but only HS256 and only a known kid.
        try:
            fields = json.loads(_unb64(header))
        except (ValueError, binascii.Error, RecursionError):  # nested a few thousand deep
            raise TokenInvalid() from None
        if not isinstance(fields, dict) or fields.get("alg") != _HEADER_ALG:
            raise TokenInvalid()
        found = self._keys.get(str(fields.get("kid")))
        if found is None:
            raise TokenInvalid()
        return found

    def verify(self, token: str, now: float | None = None) -> Claims:
        """The claims of a token we signed that has not expired; TokenInvalid or TokenExpired.

        Revocation and the token type are the caller's to check (they need the request)."""
        if len(token) > MAX_TOKEN_LENGTH or not token.isascii() or token.count(".") != 2:
            raise TokenInvalid()
        header, body, signature = token.split(".")
        key = self._key_for(header)
        try:
            given = _unb64(signature)
        except (ValueError, binascii.Error):
            raise TokenInvalid() from None
        expected = hmac.new(key, f"{header}.{body}".encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, given):
            raise TokenInvalid()
        # Signed by us from here on: the payload is ours, but read it defensively all the same.
        try:
            payload = json.loads(_unb64(body))
            claims = Claims(
                playback_id=_text(payload["sub"]),
                job_id=_text(payload["job"]),
                type=_TYPE_OF_AUD[payload["aud"]],
                expires=_int(payload["exp"]),
                issued=_int(payload.get("iat", 0)),
                max_resolution=payload.get("max_resolution"),
            )
            if claims.max_resolution is not None:
                resolution_height(claims.max_resolution)
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise TokenInvalid() from None
        if claims.expires <= (time.time() if now is None else now):
            raise TokenExpired(claims.expires)
        return claims


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("expected a non-empty string")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("expected an integer")
    return value
