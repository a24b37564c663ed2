"""Rewriting the job's stored playlists for one token: pure functions over text, no I/O.

The processor writes playlists whose URIs are bare relative names (docs/hls-contract: flat
names under outputs/<jobId>/). A player that fetched `/play/<token>/master.m3u8` resolves them
to `/play/<token>/<name>`, so the master needs only filtering (`filter_master`), and the media
playlists need their URIs rewritten only when the segments are served as presigned S3 URLs
(`rewrite_uris`). A URI that is not a bare name is refused, never passed through: a playlist
is data we serve under our name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')
_URI_ATTRIBUTE = re.compile(r'URI="([^"]*)"')
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# A storyboard cue's payload: `storyboard.jpg#xywh=x,y,w,h`.
_VTT_IMAGE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*\.(?:jpg|jpeg|png|webp))(#\S*)?$")

PLAYLIST_SUFFIX = ".m3u8"
MEDIA_SUFFIXES = (".cmfv", ".cmfa", ".mp4", ".m4s")


class PlaylistError(ValueError):
    """The stored playlist is not one we can serve (a URI that is not a plain file name)."""


def plain_name(name: str) -> str:
    """`name` if it is a bare file name under the job's prefix, else PlaylistError."""
    if not _PLAIN_NAME.match(name) or ".." in name:
        raise PlaylistError(f"not a plain file name: {name[:80]!r}")
    return name


def attributes(line: str) -> dict[str, str]:
    """The attribute list of a tag line (`#EXT-X-STREAM-INF:A=1,B="x,y"`), quotes removed."""
    _, _, rest = line.partition(":")
    return {k: v.strip('"') for k, v in _ATTRIBUTE.findall(rest)}


def shorter_side(resolution: str | None) -> int | None:
    """`1280x720` -> 720 (a portrait 720x1280 is a 720p rendition too); None if unreadable."""
    if not resolution:
        return None
    width, _, height = resolution.partition("x")
    if not (width.isdigit() and height.isdigit()):
        return None
    return min(int(width), int(height))


@dataclass(frozen=True)
class FilteredMaster:
    text: str
    # Media playlists a player of this token may fetch: kept variants and the audio group.
    allowed: frozenset[str]
    # Variant playlists left out for max_resolution: asking for one is refused, not 404.
    refused: frozenset[str]
    variants: int


def filter_master(text: str, max_height: int | None) -> FilteredMaster:
    """The master playlist without the variants above `max_height` (None: all kept).

    A variant whose RESOLUTION cannot be read is kept only when there is no limit: a limit we
    cannot check is not a limit we pass.
    """
    out: list[str] = []
    allowed: set[str] = set()
    refused: set[str] = set()
    kept = 0
    pending: str | None = None  # an EXT-X-STREAM-INF waiting for its URI line
    pending_keep = True
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-STREAM-INF:"):
            attrs = attributes(line)
            side = shorter_side(attrs.get("RESOLUTION"))
            pending = line
            pending_keep = max_height is None or (side is not None and side <= max_height)
            continue
        if pending is not None and line and not line.startswith("#"):
            uri = plain_name(line)
            if pending_keep:
                out.extend((pending, uri))
                allowed.add(uri)
                kept += 1
            else:
                refused.add(uri)
            pending = None
            continue
        if line.startswith("#EXT-X-I-FRAME-STREAM-INF:"):
            attrs = attributes(line)
            side = shorter_side(attrs.get("RESOLUTION"))
            uri = plain_name(attrs.get("URI", ""))
            if max_height is None or (side is not None and side <= max_height):
                out.append(line)
                allowed.add(uri)
            else:
                refused.add(uri)
            continue
        if line.startswith("#EXT-X-MEDIA:"):
            media_uri = attributes(line).get("URI")
            if media_uri is not None:
                allowed.add(plain_name(media_uri))
        elif line and not line.startswith("#"):
            raise PlaylistError("a URI line without EXT-X-STREAM-INF in a master playlist")
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return FilteredMaster(
        "\n".join(out) + "\n", frozenset(allowed), frozenset(refused - allowed), kept
    )


def media_names(text: str) -> list[str]:
    """Every file a media playlist points at (EXT-X-MAP and segments), in order, each once."""
    seen: dict[str, None] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            for uri in _URI_ATTRIBUTE.findall(line):
                seen.setdefault(plain_name(uri))
        elif line:
            seen.setdefault(plain_name(line))
    return list(seen)


def rewrite_uris(text: str, resolve: Callable[[str], str]) -> str:
    """The playlist with every URI (segment lines and `URI="..."` attributes such as
    EXT-X-MAP's) replaced by `resolve(name)`; each distinct name is resolved once, so a
    single-file rendition costs one presigned URL however many byte ranges it lists."""
    resolved: dict[str, str] = {}

    def one(name: str) -> str:
        if name not in resolved:
            resolved[name] = resolve(plain_name(name))
        return resolved[name]

    out: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            out.append(_URI_ATTRIBUTE.sub(lambda m: f'URI="{one(m.group(1))}"', line))
        elif line:
            out.append(one(line))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def rewrite_vtt(text: str, resolve: Callable[[str], str]) -> str:
    """A storyboard WebVTT with each cue's image (`storyboard.jpg#xywh=...`) resolved, the
    media fragment kept."""
    out: list[str] = []
    for line in text.splitlines():
        match = _VTT_IMAGE.match(line.strip())
        out.append(resolve(match.group(1)) + (match.group(2) or "") if match else line)
    return "\n".join(out) + "\n"
