"""How ffprobe and ffmpeg are started on hostile media: no inherited environment, hard rlimits.

A decoder bug reached through an uploaded file must not see the caller's credentials (the API's
MongoDB URL and S3 keys live in its environment), and a tiny file that makes libavformat build a
gigabyte index or spin for an hour must hit a limit of its own, not the Pod's memory limit (which
would kill the whole API) or the job's deadline. `prlimit` (util-linux, essential on Debian) sets
the limits and then execs the tool, so nothing runs between fork and exec in our process (which
`preexec_fn` would, unsafely, with threads).

Address space (RLIMIT_AS) is the memory limit: Linux does not count anonymous mmaps under
RLIMIT_DATA on every kernel we run on, and libavformat allocates its index with mmap. The address
space includes the mapped shared libraries (about 300 MiB for Debian's ffprobe), so the limits
are sized with that in mind, and glibc is told to keep one malloc arena per process
(MALLOC_ARENA_MAX) so threads do not each reserve 64 MiB of address space.
"""

from __future__ import annotations

import re
import shutil
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

MiB: Final = 1024 * 1024
# The only environment the tools get: nothing inherited, nothing secret.
SANDBOX_ENV: Final = {"MALLOC_ARENA_MAX": "2", "LC_ALL": "C"}
PRLIMIT: Final = "prlimit"
# Killed by the CPU-time limit: SIGXCPU at the soft limit (ffmpeg does not catch it). A SIGKILL is
# not counted: it may as well come from the node's OOM killer, which says nothing about the file.
CPU_LIMIT_SIGNAL: Final = signal.SIGXCPU
# What libavformat/libavcodec print when an allocation fails under the address-space limit.
OUT_OF_MEMORY: Final = re.compile(
    r"Cannot allocate memory|Cannot add index entry|out of memory|failed to allocate|"
    r"failed to map segment",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SandboxLimits:
    """Hard limits for one child process; None leaves that limit unset."""

    memory_bytes: int | None
    cpu_seconds: int | None


def sandboxed_argv(argv: Sequence[str], limits: SandboxLimits) -> list[str]:
    """`argv` run under `prlimit` with the given limits and no core dumps (pure)."""
    if not argv:
        raise ValueError("empty argv")
    program = resolve(argv[0])
    options = ["--core=0"]
    if limits.memory_bytes is not None:
        options.append(f"--as={limits.memory_bytes}")
    if limits.cpu_seconds is not None:
        # soft:hard; SIGXCPU at the soft limit, SIGKILL a second later if it is ignored.
        options.append(f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}")
    return [resolve(PRLIMIT), *options, "--", program, *argv[1:]]


def resolve(program: str) -> str:
    """An absolute path: the child's empty environment has no PATH to search."""
    if "/" in program:
        return program
    found = shutil.which(program)
    if found is None:
        raise FileNotFoundError(f"{program} is not installed")
    return found


def hit_cpu_limit(returncode: int) -> bool:
    return returncode == -CPU_LIMIT_SIGNAL


def hit_memory_limit(stderr: str) -> bool:
    return bool(OUT_OF_MEMORY.search(stderr))
