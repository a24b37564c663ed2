"""S3 object keys, always derived from the server-chosen job id, never from a client filename."""

from __future__ import annotations

from collections.abc import Iterable


def source_key(job_id: str) -> str:
    return f"sources/{job_id}/source"


def output_prefix(job_id: str) -> str:
    return f"outputs/{job_id}/"


def output_key(job_id: str, name: str) -> str:
    if "/" in name or name in {"", ".", ".."}:
        raise ValueError(f"output name must be a plain file name: {name!r}")
    return output_prefix(job_id) + name


def rendition_file_name(rendition: str) -> str:
    """The file of one rendition (`720p` -> `720p.mp4`): the plan writes it, the operator
    presigns its upload URL."""
    return f"{rendition}.mp4"


# HLS/CMAF (docs/processor.md, "HLS"): one single-file fragmented MP4 per track, addressed by
# byte ranges, so the set of objects is known before the job runs (one presigned PUT each).
MASTER_PLAYLIST_NAME = "master.m3u8"
AUDIO_PLAYLIST_NAME = "audio.m3u8"
AUDIO_MEDIA_NAME = "audio.cmfa"
# Rendition names that would collide with the names above (the Outputs model refuses them).
HLS_RESERVED_NAMES = ("audio", "master")


def rendition_playlist_name(rendition: str) -> str:
    """The media playlist of one rendition (`720p` -> `720p.m3u8`)."""
    return f"{rendition}.m3u8"


def rendition_media_name(rendition: str) -> str:
    """The CMAF video file of one rendition (`720p` -> `720p.cmfv`)."""
    return f"{rendition}.cmfv"


def hls_file_names(renditions: Iterable[str], *, audio: bool) -> list[str]:
    """Every HLS object of a ladder: master, each rendition's playlist and media, the audio's."""
    names = [MASTER_PLAYLIST_NAME]
    for rendition in renditions:
        names += [rendition_playlist_name(rendition), rendition_media_name(rendition)]
    if audio:
        names += [AUDIO_PLAYLIST_NAME, AUDIO_MEDIA_NAME]
    return names


# Version of the access document (the presigned URLs) the operator writes and the processor reads.
ACCESS_DOCUMENT_VERSION = 1

MANIFEST_NAME = "manifest.json"
METADATA_NAME = "metadata.json"
POSTER_NAME = "poster.jpg"
STORYBOARD_IMAGE_NAME = "storyboard.jpg"
STORYBOARD_VTT_NAME = "storyboard.vtt"
