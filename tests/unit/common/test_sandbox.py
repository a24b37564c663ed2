"""The sandbox command line for ffprobe/ffmpeg (vidpipe.sandbox), and a real run that proves the
limits reach the child and the environment does not."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vidpipe.sandbox import (
    SANDBOX_ENV,
    SandboxLimits,
    hit_cpu_limit,
    hit_memory_limit,
    resolve,
    sandboxed_argv,
)

pytestmark = pytest.mark.unit


def test_argv_sets_every_limit_and_resolves_the_program() -> None:
    argv = sandboxed_argv(["ffprobe", "-v", "error"], SandboxLimits(512 * 2**20, 30))
    assert argv[0] == resolve("prlimit") and argv[0].startswith("/")
    assert argv[1:5] == ["--core=0", f"--as={512 * 2**20}", "--cpu=30:31", "--"]
    assert argv[5] == resolve("ffprobe") and argv[6:] == ["-v", "error"]


def test_unset_limits_are_left_out() -> None:
    argv = sandboxed_argv(["/usr/bin/ffmpeg"], SandboxLimits(None, None))
    assert argv[1:] == ["--core=0", "--", "/usr/bin/ffmpeg"]
    with pytest.raises(ValueError):
        sandboxed_argv([], SandboxLimits(None, None))
    with pytest.raises(FileNotFoundError):
        resolve("no-such-program-vidpipe")


def test_the_child_gets_the_limits_and_no_inherited_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A real child through prlimit: fails if a limit is not applied or a secret leaks through.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "leak-me")
    script = (
        "import os, resource; "
        "print(resource.getrlimit(resource.RLIMIT_AS)[0], "
        "resource.getrlimit(resource.RLIMIT_CPU)[0], sorted(os.environ))"
    )
    argv = sandboxed_argv([sys.executable, "-S", "-c", script], SandboxLimits(2**30, 7))
    done = subprocess.run(argv, env=SANDBOX_ENV, capture_output=True, text=True, check=True)
    memory, cpu, names = done.stdout.split(" ", 2)
    assert (int(memory), int(cpu)) == (2**30, 7)
    assert "AWS_SECRET_ACCESS_KEY" not in names and "MALLOC_ARENA_MAX" in names


def test_limit_hits_are_recognised() -> None:
    assert hit_cpu_limit(-24) and not hit_cpu_limit(-9) and not hit_cpu_limit(1)
    assert hit_memory_limit("[mov,mp4 @ 0x1] Cannot add index entry")
    assert not hit_memory_limit("[h264 @ 0x1] no frame!")
