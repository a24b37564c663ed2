"""Run ffmpeg as a child process: progress from its stdout, errors from the tail of its stderr.

The child is always reaped: whatever stops us (an error, SIGTERM raised as `Terminated` while we
read its output), the `finally` block terminates it, then kills it if it does not exit in time.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from vidpipe_processor.errors import FfmpegFailed
from vidpipe_processor.progress import FfmpegProgressParser

log = logging.getLogger(__name__)

STDERR_TAIL_BYTES = 4096
STOP_TIMEOUT_SECONDS = 5.0


def run_ffmpeg(
    argv: Sequence[str],
    *,
    duration_seconds: float,
    stderr_path: Path,
    on_progress: Callable[[float], None] = lambda _: None,
) -> None:
    """Run `argv` (ffmpeg with `-progress pipe:1`), reporting the fraction done (0..1).

    Raises `FfmpegFailed` with the exit code and stderr tail when ffmpeg fails.
    """
    parser = FfmpegProgressParser(duration_seconds)
    # stderr goes to a file, not a pipe: nothing to drain concurrently, and only its tail matters.
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
        )
        try:
            assert process.stdout is not None
            for raw in process.stdout:
                percent = parser.feed(raw.decode("utf-8", "replace"))
                if percent is not None:
                    on_progress(percent / 100.0)
            returncode = process.wait()
        finally:
            stop(process)
    if returncode != 0:
        tail = read_tail(stderr_path)
        log.error("ffmpeg failed", extra={"returncode": returncode, "stderr_tail": tail})
        raise FfmpegFailed(returncode, tail)


def stop(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """Terminate (ffmpeg then closes its files and exits), kill if it lingers, always reap."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def read_tail(path: Path, size: int = STDERR_TAIL_BYTES) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - size))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
