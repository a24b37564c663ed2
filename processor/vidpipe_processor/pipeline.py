"""One job from start to finish: download, probe, transcode, describe, upload, manifest last.

Invariants kept here:
- Outputs go under `outputs/{jobId}/` and nowhere else: the only URLs this process has are the
  operator's presigned PUTs for those keys (storage.py).
- The manifest is written after every other output, so a manifest lists only objects that exist.
  A rerun (a retried Pod) overwrites the same keys: file names depend only on the spec and the
  probed source, both the same on every attempt, so no stale key can be left beside them.
- Nothing is uploaded before the encode succeeded, so a bad input writes nothing. The processor
  cannot delete (no keys): the outputs of a job that finally fails or is cancelled are removed by
  the operator. The local working directory is always removed.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from vidpipe import keys
from vidpipe.models import VideoJobSpec
from vidpipe.probe import MediaInfo, ProbeLimits, probe
from vidpipe.settings import X264_PRESET, X264Preset
from vidpipe_processor import hls, outputs
from vidpipe_processor.errors import ProcessingFailed
from vidpipe_processor.ffmpeg_graph import (
    STORYBOARD_FRAMES_DIR,
    build_ffmpeg_argv,
    poster_fallback_argv,
    storyboard_tile_argv,
)
from vidpipe_processor.plan import HLS_SEGMENT_SECONDS, OutputPlan, plan_outputs
from vidpipe_processor.progress import (
    DOWNLOAD_SPAN,
    ENCODE_SPAN,
    UPLOAD_SPAN,
    ByteCounter,
    ProgressTracker,
)
from vidpipe_processor.runner import run_ffmpeg
from vidpipe_processor.storage import Storage, Upload

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobRequest:
    spec: VideoJobSpec
    output_bucket: str
    work_dir: Path
    limits: ProbeLimits
    ffmpeg_path: str = "ffmpeg"
    ffprobe_path: str = "ffprobe"
    x264_preset: X264Preset = X264_PRESET
    hls_segment_seconds: int = HLS_SEGMENT_SECONDS


@dataclass(frozen=True)
class JobResult:
    info: MediaInfo
    plan: OutputPlan
    files: list[outputs.OutputFile]
    manifest_key: str


def process(request: JobRequest, storage: Storage, progress: ProgressTracker) -> JobResult:
    spec = request.spec
    manifest_key = keys.output_key(spec.job_id, keys.MANIFEST_NAME)
    request.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{spec.job_id}-", dir=request.work_dir))
    try:
        result = _run(request, storage, progress, work, manifest_key)
        progress.update(100)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(
    request: JobRequest,
    storage: Storage,
    progress: ProgressTracker,
    work: Path,
    manifest_key: str,
) -> JobResult:
    spec = request.spec
    source = work / "source"
    started = time.monotonic()
    counter: list[ByteCounter] = []
    size = storage.download_source(
        source,
        on_size=lambda total: counter.append(ByteCounter(total, progress.span(*DOWNLOAD_SPAN))),
        on_bytes=lambda amount: counter[0](amount),
    )
    log.info("source downloaded", extra={"bytes": size, "seconds": _since(started)})

    info = probe(str(source), request.limits, ffprobe=request.ffprobe_path)
    plan = plan_outputs(info, spec.outputs, segment_seconds=request.hls_segment_seconds)
    log.info(
        "source probed",
        extra={
            "container": info.container,
            "video": f"{info.video_codec} {info.width}x{info.height} {info.pixel_format}",
            "durationSeconds": info.duration_seconds,
            "renditions": [f"{r.name}:{r.width}x{r.height}" for r in plan.renditions],
            "formats": spec.outputs.formats,
        },
    )
    if info.audio_streams and spec.outputs.audio_track >= len(info.audio_streams):
        log.warning(
            "requested audio track does not exist; using the first one",
            extra={"requested": spec.outputs.audio_track, "audioTracks": len(info.audio_streams)},
        )

    out_dir = work / "out"
    out_dir.mkdir()
    if plan.storyboard:
        (out_dir / STORYBOARD_FRAMES_DIR).mkdir()  # image2 does not create directories
    started = time.monotonic()
    argv = build_ffmpeg_argv(
        info,
        plan,
        source,
        out_dir,
        ffmpeg_path=request.ffmpeg_path,
        preset=request.x264_preset,
    )
    log.info("ffmpeg started", extra={"argv": argv[1:]})
    run_ffmpeg(
        argv,
        duration_seconds=info.duration_seconds,
        stderr_path=work / "ffmpeg.log",
        on_progress=progress.span(*ENCODE_SPAN),
    )
    log.info("ffmpeg finished", extra={"seconds": _since(started)})
    if plan.poster and not _non_empty(out_dir / plan.poster.file_name):
        # The video stream ended before the poster time (audio runs longer): take the first frame.
        log.info("poster time is past the last video frame; using the first frame")
        run_ffmpeg(
            poster_fallback_argv(
                info, plan.poster, source, out_dir, ffmpeg_path=request.ffmpeg_path
            ),
            duration_seconds=0,
            stderr_path=work / "poster.log",
        )
    if plan.storyboard:
        # Our own small JPEGs, tiled in a second ffmpeg run (see ffmpeg_graph.STORYBOARD_*).
        run_ffmpeg(
            storyboard_tile_argv(plan.storyboard, out_dir, ffmpeg_path=request.ffmpeg_path),
            duration_seconds=0,
            stderr_path=work / "storyboard.log",
        )
        shutil.rmtree(out_dir / STORYBOARD_FRAMES_DIR)
        (out_dir / plan.storyboard.vtt_name).write_text(
            outputs.storyboard_vtt(plan.storyboard, info.duration_seconds)
        )
    ladder = hls.finish_ladder(plan, plan.hls, out_dir) if plan.hls else None
    outputs.write_json(out_dir / keys.METADATA_NAME, outputs.metadata_document(info, plan))
    source.unlink()  # free the disk before uploading

    names = [*plan.file_names, keys.METADATA_NAME]
    missing = [n for n in names if not _non_empty(out_dir / n)]
    if missing:
        raise ProcessingFailed(f"ffmpeg finished without writing {', '.join(missing)}")
    files = [outputs.describe_file(out_dir / n, keys.output_key(spec.job_id, n)) for n in names]

    started = time.monotonic()
    bucket = request.output_bucket
    storage.upload_all(
        [Upload(out_dir / f.name, f.name, f.content_type) for f in files],
        on_bytes=ByteCounter(sum(f.size for f in files), progress.span(*UPLOAD_SPAN)),
    )
    manifest = outputs.manifest_document(spec.job_id, info, plan, files, ladder)
    storage.put_bytes(
        keys.MANIFEST_NAME,
        json.dumps(manifest, indent=2, sort_keys=True).encode(),
        "application/json",
    )
    log.info(
        "outputs uploaded",
        extra={
            "bucket": bucket,
            "keys": [f.key for f in files] + [manifest_key],
            "bytes": sum(f.size for f in files),
            "seconds": _since(started),
        },
    )
    return JobResult(info=info, plan=plan, files=files, manifest_key=manifest_key)


def _non_empty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
