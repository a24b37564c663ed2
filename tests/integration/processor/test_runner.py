"""The ffmpeg runner with the real ffmpeg: progress, typed failures, and a child always reaped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vidpipe_processor.errors import FfmpegFailed, Terminated
from vidpipe_processor.ffmpeg_graph import GLOBAL_ARGS
from vidpipe_processor.runner import run_ffmpeg

pytestmark = pytest.mark.integration


def lavfi_argv(out: Path, seconds: float, realtime: bool = False) -> list[str]:
    source = f"testsrc2=size=160x120:rate=25:duration={seconds}"
    return [
        "ffmpeg", *GLOBAL_ARGS, *(["-re"] if realtime else []),
        "-f", "lavfi", "-i", source, "-c:v", "libx264", "-preset", "ultrafast", "-y", str(out),
    ]  # fmt: skip


def test_progress_reaches_completion(tmp_path: Path) -> None:
    fractions: list[float] = []
    run_ffmpeg(
        lavfi_argv(tmp_path / "out.mp4", 2),
        duration_seconds=2,
        stderr_path=tmp_path / "stderr",
        on_progress=fractions.append,
    )
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert (tmp_path / "out.mp4").stat().st_size > 0


def test_failure_carries_exit_code_and_stderr_tail(tmp_path: Path) -> None:
    argv = ["ffmpeg", *GLOBAL_ARGS, "-i", str(tmp_path / "missing.mp4"), str(tmp_path / "o.mp4")]
    with pytest.raises(FfmpegFailed) as caught:
        run_ffmpeg(argv, duration_seconds=1, stderr_path=tmp_path / "stderr")
    assert caught.value.returncode != 0
    assert "No such file or directory" in caught.value.stderr_tail
    assert "No such file or directory" in caught.value.message


def test_child_is_stopped_and_reaped_when_interrupted(tmp_path: Path) -> None:
    pids: list[int] = []

    def interrupt(fraction: float) -> None:
        # Stand-in for SIGTERM arriving while the output is read: raised in this same thread.
        pids.extend(int(p.name) for p in Path("/proc").iterdir() if _is_ffmpeg_child(p))
        raise Terminated(15)

    with pytest.raises(Terminated):
        run_ffmpeg(
            lavfi_argv(tmp_path / "out.mp4", 30, realtime=True),
            duration_seconds=30,
            stderr_path=tmp_path / "stderr",
            on_progress=interrupt,
        )
    assert pids, "ffmpeg was running when interrupted"
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), "ffmpeg must be reaped, not left running"


def _is_ffmpeg_child(entry: Path) -> bool:
    if not entry.name.isdigit():
        return False
    try:
        stat = (entry / "stat").read_text()
    except OSError:
        return False
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    return name == "ffmpeg" and int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid()
