"""The program: read settings, run one job, exit with a code the Job's podFailurePolicy reads.

This is the only place the process exits (through `__main__`). SIGTERM and SIGINT become a
`Terminated` exception in the main thread, so the same unwinding that handles errors stops
ffmpeg, removes partial outputs and writes the termination message.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
from vidpipe_processor.storage import JobAccess, Storage

log = logging.getLogger("vidpipe_processor")

DEFAULT_TERMINATION_LOG = "/dev/termination-log"


@contextmanager
def termination_signals() -> Iterator[Callable[[], None]]:
    """Raise `Terminated` on the first SIGTERM/SIGINT; ignore repeats so cleanup can finish.

    Yields `disarm`: once the outcome is decided, a late signal must not turn it into a traceback.
    """
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if received:
            return
        received.append(signum)
        raise Terminated(signum)

    def disarm() -> None:
        received.append(0)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield disarm
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
    # Read directly too: when the settings themselves are invalid, the message must still go
    # where the Pod expects it.
    termination_log = os.environ.get("VIDPIPE_TERMINATION_LOG") or DEFAULT_TERMINATION_LOG
    with termination_signals() as disarm:
        try:
            status = _outcome()
        except Terminated as exc:  # the signal came while a failure was being recorded
            status = exit_status(exc)
        disarm()
        write_termination_message(Path(termination_log), status)
    return status.exit_code


def _outcome() -> ExitStatus:
    """Run the job and turn whatever happens into an exit status: nothing escapes but a signal."""
    try:
        settings = ProcessorSettings()  # fields come from the environment
        configure_logging(settings.log_level, settings.job_spec.job_id)
        set_job_id(settings.job_spec.job_id)
        return _run(settings)
    except BaseException as exc:
        status = exit_status(exc)
        log.error(
            "job failed",
            extra={"exitCode": status.exit_code, "code": str(status.code), "error": status.message},
            exc_info=status.exit_code == exitcodes.RETRYABLE,
        )
        return status


def _run(settings: ProcessorSettings) -> ExitStatus:
    spec = settings.job_spec
    access = JobAccess.load(settings.access_file, spec)
    reporter = build_reporter(settings)
    log.info(
        "job started",
        extra={
            "source": f"s3://{spec.source.bucket}/{spec.source.key}",
            "outputBucket": access.bucket,
            "renditions": [r.name for r in spec.outputs.renditions],
            "progressToVideoJob": isinstance(reporter, FanoutReporter),
        },
    )
    try:
        result = process(
            JobRequest(
                spec=spec,
                output_bucket=access.bucket,
                work_dir=settings.work_dir,
                limits=settings.probe_limits,
                ffmpeg_path=settings.ffmpeg_path,
                ffprobe_path=settings.ffprobe_path,
                x264_preset=settings.x264_preset,
                hls_segment_seconds=settings.hls_segment_seconds,
            ),
            Storage(access, settings.transfer),
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
    return SUCCESS
