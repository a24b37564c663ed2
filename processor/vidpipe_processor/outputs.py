"""The files that describe a job's results: the storyboard's WebVTT index, metadata.json and the
manifest (every output with its size and SHA-256), all built from the plan and the probe result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidpipe.probe import MediaInfo
from vidpipe_processor.plan import OutputPlan, StoryboardPlan

MANIFEST_VERSION = 1
CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".vtt": "text/vtt",
    ".json": "application/json",
    # RFC 8216 section 4; CMAF tracks are MP4 (ISO BMFF) files, video or audio only.
    ".m3u8": "application/vnd.apple.mpegurl",
    ".cmfv": "video/mp4",
    ".cmfa": "audio/mp4",
}


@dataclass(frozen=True)
class OutputFile:
    name: str
    key: str
    size: int
    sha256: str
    content_type: str


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def describe_file(path: Path, key: str) -> OutputFile:
    return OutputFile(
        name=path.name,
        key=key,
        size=path.stat().st_size,
        sha256=sha256_file(path),
        content_type=content_type(path.name),
    )


def vtt_timestamp(seconds: float) -> str:
    millis = round(max(seconds, 0.0) * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def storyboard_vtt(board: StoryboardPlan, duration_seconds: float) -> str:
    """WebVTT thumbnails track: one cue per tile, `sprite.jpg#xywh=x,y,w,h` as players expect.

    The sprite is referenced by its bare name: it sits next to the VTT file, so the reference
    resolves relative to wherever both are served from.
    """
    lines = ["WEBVTT", ""]
    for i in range(board.tiles):
        start = i * board.interval_seconds
        end = min((i + 1) * board.interval_seconds, duration_seconds)
        if end <= start:
            end = start + board.interval_seconds
        x = (i % board.columns) * board.tile_width
        y = (i // board.columns) * board.tile_height
        lines += [
            f"{vtt_timestamp(start)} --> {vtt_timestamp(end)}",
            f"{board.image_name}#xywh={x},{y},{board.tile_width},{board.tile_height}",
            "",
        ]
    return "\n".join(lines)


def metadata_document(info: MediaInfo, plan: OutputPlan) -> dict[str, Any]:
    document: dict[str, Any] = {"source": info.to_json_dict()}
    document["audioTrack"] = {
        "requested": plan.requested_audio_track,
        "usedStreamIndex": plan.audio.index if plan.audio else None,
    }
    return document


def manifest_document(
    job_id: str,
    info: MediaInfo,
    plan: OutputPlan,
    files: list[OutputFile],
    hls: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every output with its size and digest; `hls` (vidpipe_processor.hls.finish_ladder) is the
    ladder's description, null when HLS was not asked for."""
    by_name = {r.file_name: r for r in plan.renditions} if plan.mp4 else {}
    entries: list[dict[str, Any]] = []
    for f in files:
        entry: dict[str, Any] = {
            "name": f.name,
            "key": f.key,
            "size": f.size,
            "sha256": f.sha256,
            "contentType": f.content_type,
        }
        rendition = by_name.get(f.name)
        if rendition is not None:
            entry |= {
                "rendition": rendition.name,
                "width": rendition.width,
                "height": rendition.height,
            }
        entries.append(entry)
    return {
        "version": MANIFEST_VERSION,
        "jobId": job_id,
        "durationSeconds": round(info.duration_seconds, 3),
        "outputs": entries,
        "hls": hls,
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
