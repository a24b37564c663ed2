"""The program: read settings, run one job, exit with a code the Job's podFailurePolicy reads.

This is the only place the process exits (through `__main__`). SIGTERM and SIGINT become a
`Terminated` exception in the main thread, so the same unwinding that handles errors stops
ffmpeg, removes partial outputs and writes the termination message.
"""

from __future__ import annotations

import logging
import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import FrameType

from vidpipe import exitcodes
from vidpipe_processor.errors import Terminated
from vidpipe_processor.exits import SUCCESS, ExitStatus, exit_status, write_termination_message
from vidpipe_processor.logs import configure_logging, set_job_id
from vidpipe_processor.pipeline import JobRequest, process
from vidpipe_processor.progress import ProgressTracker
from vidpipe_processor.reporter import (
    FanoutReporter,
    KubernetesReporter,
    LoggingReporter,
    ProgressReporter,
)
from vidpipe_processor.settings import ProcessorSettings
from vidpipe_processor.storage import Storage

log = logging.getLogger("vidpipe_processor")

DEFAULT_TERMINATION_LOG = "/dev/termination-log"


@contextmanager
def termination_signals() -> Iterator[None]:
    """Raise `Terminated` on the first SIGTERM/SIGINT; ignore repeats so cleanup can finish."""
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if received:
            return
        received.append(signum)
        raise Terminated(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def build_reporter(settings: ProcessorSettings) -> ProgressReporter:
    url = settings.kubernetes_url()
    if url is None or not settings.videojob_name or not settings.videojob_namespace:
        return LoggingReporter()
    kubernetes = KubernetesReporter(
        url,
        settings.videojob_namespace,
        settings.videojob_name,
        token_path=settings.kubernetes_token_path,
        ca_path=settings.kubernetes_ca_path,
        min_interval=settings.progress_interval_seconds,
    )
    return FanoutReporter(LoggingReporter(), kubernetes)


def main() -> int:
    configure_logging()
    termination_log = DEFAULT_TERMINATION_LOG
    status: ExitStatus
    with termination_signals():
        try:
            settings = ProcessorSettings()  # fields come from the environment
            termination_log = str(settings.termination_log)
            configure_logging(settings.log_level, settings.job_spec.job_id)
            set_job_id(settings.job_spec.job_id)
            status = _run(settings)
        except BaseException as exc:  # every outcome must end in an exit code and a message
            status = exit_status(exc)
            log.error(
                "job failed",
                extra={"exitCode": status.exit_code, "code": str(status.code)},
                exc_info=status.exit_code == exitcodes.RETRYABLE,
            )
        write_termination_message(Path(termination_log), status)
    return status.exit_code


def _run(settings: ProcessorSettings) -> ExitStatus:
    reporter = build_reporter(settings)
    spec = settings.job_spec
    log.info(
        "job started",
        extra={
            "source": f"s3://{spec.source.bucket}/{spec.source.key}",
            "outputBucket": settings.target_bucket,
            "renditions": [r.name for r in spec.outputs.renditions],
            "progressToVideoJob": isinstance(reporter, FanoutReporter),
        },
    )
    try:
        result = process(
            JobRequest(
                spec=spec,
                output_bucket=settings.target_bucket,
                work_dir=settings.work_dir,
                limits=settings.probe_limits,
                ffmpeg_path=settings.ffmpeg_path,
                ffprobe_path=settings.ffprobe_path,
                x264_preset=settings.x264_preset,
            ),
            Storage.from_config(settings.storage),
            ProgressTracker(reporter),
        )
    finally:
        reporter.close()
    log.info(
        "job succeeded",
        extra={
            "manifest": result.manifest_key,
            "outputs": len(result.files),
            # This process only (ffmpeg is a child): the memory the Pod needs beyond ffmpeg.
            "peakRssKiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        },
    )
    return replace(SUCCESS, outputs=(*(f.key for f in result.files), result.manifest_key))
