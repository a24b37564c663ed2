"""Run ffmpeg as a child process: progress from its stdout, errors from the tail of its stderr.

The child is always reaped: whatever stops us (an error, SIGTERM raised as `Terminated` while we
read its output), the `finally` block terminates it, then kills it if it does not exit in time.

ffmpeg decodes hostile media, so it runs in the sandbox of `vidpipe.sandbox` (no inherited
environment, an address-space limit, optionally a CPU-time limit), and its failure is classified:
a file that cannot be decoded or that exhausts the sandbox is bad input (never retried); anything
else (disk full, a crash, a kill from outside) is a retryable fault.
"""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from vidpipe.errors import BadInput, ErrorCode, VidpipeError
from vidpipe.probe import limit_verdict, refused_codec
from vidpipe.sandbox import SANDBOX_ENV, MiB, SandboxLimits, sandboxed_argv
from vidpipe_processor.errors import FfmpegFailed
from vidpipe_processor.progress import FfmpegProgressParser

log = logging.getLogger(__name__)

STDERR_TAIL_BYTES = 4096
STOP_TIMEOUT_SECONDS = 5.0
# Measured peak address space of our 1080p and 4K ladders on 2 cores: 1.2 and 1.5 GiB; encoder
# threads grow it on bigger nodes. The Pod's memory limit stays the real bound on RSS.
DEFAULT_SANDBOX = SandboxLimits(memory_bytes=8192 * MiB, cpu_seconds=None)
# What ffmpeg says when the input, not the machine, is the problem.
_DECODE_ERRORS = re.compile(
    r"Invalid data found when processing input|Error while decoding|error while decoding|"
    r"Invalid NAL unit|corrupt|missing picture|decode_slice_header error|no frame!|"
    r"Error submitting packet to decoder|moov atom not found|"
    r"Output file is empty, nothing was encoded",
)
# ...unless the machine also failed: then retrying may help.
_ENVIRONMENT_ERRORS = re.compile(
    r"No space left on device|Input/output error|Resource temporarily unavailable|"
    r"Too many open files|Permission denied"
)


def run_ffmpeg(
    argv: Sequence[str],
    *,
    duration_seconds: float,
    stderr_path: Path,
    on_progress: Callable[[float], None] = lambda _: None,
    sandbox: SandboxLimits = DEFAULT_SANDBOX,
) -> None:
    """Run `argv` (ffmpeg with `-progress pipe:1`), reporting the fraction done (0..1).

    Raises `BadInput` when the input is to blame (see `classify_ffmpeg_failure`), else
    `FfmpegFailed` with the exit code and stderr tail.
    """
    parser = FfmpegProgressParser(duration_seconds)
    # stderr goes to a file, not a pipe: nothing to drain concurrently, and only its tail matters.
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            sandboxed_argv(argv, sandbox),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=SANDBOX_ENV,
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
        raise classify_ffmpeg_failure(returncode, tail)


def classify_ffmpeg_failure(returncode: int, stderr_tail: str) -> VidpipeError:
    """A verdict on the file (BadInput) or a retryable fault (FfmpegFailed), from how it ended."""
    if (verdict := limit_verdict(returncode, stderr_tail)) is not None:
        return verdict
    if returncode < 0:
        return FfmpegFailed(returncode, stderr_tail)  # killed from outside: not the file's fault
    if (codec := refused_codec(stderr_tail)) is not None:
        return codec
    if _DECODE_ERRORS.search(stderr_tail) and not _ENVIRONMENT_ERRORS.search(stderr_tail):
        last = stderr_tail.strip().splitlines()[-1:] or [""]
        return BadInput(
            ErrorCode.CORRUPT_MEDIA,
            f"the video could not be decoded; the file is damaged ({last[0][:200]})",
        )
    return FfmpegFailed(returncode, stderr_tail)


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
