"""Processor benchmark: is one decode feeding the whole ladder worth it, and what does the
processor's plumbing (S3, probe, upload, manifest) cost on top of ffmpeg itself?

    .venv/bin/python bench/processor.py [--seconds 8] [--repeat 2]

(a) our single-decode ladder (1080p/720p/480p + poster) versus three separate ffmpeg runs with the
    same settings, one rendition each (and a fourth, seeking poster run): wall-time ratio, goal
    <= 0.80;
(b) the whole processor as the Pod runs it (`python -m vidpipe_processor`: S3 download, probe,
    ladder, poster, storyboard, upload, manifest) versus the bare single-pass ffmpeg on a local
    file: wall-time ratio, goal <= 1.10; and the processor's peak RSS (its own, without ffmpeg),
    which it logs when it finishes.

The source is a 1080p30 H.264 + AAC clip made with lavfi (testsrc2 with noise, so decoding and
encoding are not trivially cheap). versitygw is started like the test suite does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Runnable as `python bench/processor.py` too: the import roots pytest gets from pyproject.toml.
sys.path[:0] = [str(REPO / "common"), str(REPO / "processor"), str(REPO / "operator"), str(REPO)]

from tests.integration.processor.helpers import write_access  # noqa: E402
from tests.utils.servers import s3_server  # noqa: E402

from vidpipe import keys  # noqa: E402
from vidpipe.models import Outputs, Rendition, Storyboard  # noqa: E402
from vidpipe.probe import ProbeLimits, probe  # noqa: E402
from vidpipe_processor.ffmpeg_graph import build_ffmpeg_argv  # noqa: E402
from vidpipe_processor.plan import plan_outputs  # noqa: E402

LADDER = [
    Rendition(name="1080p", height=1080),
    Rendition(name="720p", height=720),
    Rendition(name="480p", height=480),
]


def make_source(path: Path, seconds: float) -> None:
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
            "-vf", "noise=alls=4:allf=t",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-movflags", "+faststart", str(path),
        ],
        check=True,
    )  # fmt: skip


@dataclass(frozen=True)
class Timing:
    wall: float
    # User + system CPU of the child processes (ffmpeg, the processor and its ffmpeg): far less
    # sensitive than wall time to other work on a shared machine.
    cpu: float


def interleaved(actions: dict[str, Callable[[], None]], repeat: int) -> dict[str, Timing]:
    """Best wall and CPU time of each action over `repeat` rounds, alternating within a round.

    The machine is shared: alternating spreads load changes over every action, and the minimum
    is the run least disturbed.
    """
    wall = dict.fromkeys(actions, float("inf"))
    cpu = dict.fromkeys(actions, float("inf"))
    for _ in range(repeat):
        for name, action in actions.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            action()
            wall[name] = min(wall[name], time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            cpu[name] = min(cpu[name], used)
    return {name: Timing(wall[name], cpu[name]) for name in actions}


def run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def poster_run(source: Path, out: Path, at: float) -> list[str]:
    return [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-ss", f"{at:g}", "-i", str(source), "-frames:v", "1", "-q:v", "2", str(out),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="source duration")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement (best kept)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-processor-") as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "source.mp4"
        make_source(source, args.seconds)
        info = probe(str(source), ProbeLimits())
        out = tmp / "out"
        out.mkdir()

        # (a) one decode feeding the ladder and the poster, versus one run per rendition.
        single_plan = plan_outputs(
            info, Outputs(renditions=LADDER, poster=True, storyboard=Storyboard(enabled=False))
        )
        single = build_ffmpeg_argv(info, single_plan, source, out)
        separate = [
            build_ffmpeg_argv(
                info,
                plan_outputs(
                    info,
                    Outputs(renditions=[r], poster=False, storyboard=Storyboard(enabled=False)),
                ),
                source,
                out,
            )
            for r in LADDER
        ]
        assert single_plan.poster is not None
        poster = poster_run(source, out / "poster.jpg", single_plan.poster.time_seconds)

        def run_separately() -> None:
            for argv in separate:
                run(argv)

        times = interleaved(
            {"single": lambda: run(single), "three": run_separately, "poster": lambda: run(poster)},
            args.repeat,
        )

        # (b) the whole processor against the bare single pass (the full default outputs).
        full_plan = plan_outputs(info, Outputs(renditions=LADDER))
        bare = build_ffmpeg_argv(info, full_plan, source, out)
        t_bare, t_proc, peak_rss_kib = whole_processor(tmp, source, bare, args.repeat)

    t_single, t_three, t_poster = times["single"], times["three"], times["poster"]
    print(f"source: 1920x1080 30 fps, {args.seconds:g} s, {source_size_mib(info.size_bytes)}")
    print(f"nproc {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, best of {args.repeat}")
    print(f"{'':52}{'wall':>9}{'cpu':>9}")
    print("(a) ladder 1080p/720p/480p + poster")
    row("single decode, one ffmpeg", t_single.wall, t_single.cpu, "s")
    row("three separate runs", t_three.wall, t_three.cpu, "s")
    row("separate poster run", t_poster.wall, t_poster.cpu, "s")
    row(
        "ratio single/three (goal <= 0.80)",
        t_single.wall / t_three.wall,
        t_single.cpu / t_three.cpu,
    )
    row(
        "ratio single/(three + poster)",
        t_single.wall / (t_three.wall + t_poster.wall),
        t_single.cpu / (t_three.cpu + t_poster.cpu),
    )
    print("(b) whole processor (download, probe, ladder, poster, storyboard, upload, manifest)")
    row("bare single-pass ffmpeg", t_bare.wall, t_bare.cpu, "s")
    row("processor", t_proc.wall, t_proc.cpu, "s")
    row("ratio processor/bare (goal <= 1.10)", t_proc.wall / t_bare.wall, t_proc.cpu / t_bare.cpu)
    print(f"    processor peak RSS (Python process only): {peak_rss_kib / 1024:.1f} MiB")


def row(label: str, wall: float, cpu: float, unit: str = "") -> None:
    print(f"    {label:48}{wall:8.2f}{unit or ' '}{cpu:8.2f}{unit}")


def whole_processor(
    tmp: Path, source: Path, bare: list[str], repeat: int
) -> tuple[Timing, Timing, int]:
    """(bare ffmpeg, processor, processor peak RSS in KiB), measured alternately."""
    with s3_server(tmp / "s3") as s3:
        client = s3.client()
        client.create_bucket(Bucket="bench")
        client.upload_file(str(source), "bench", keys.source_key("bench-1"))
        spec = {
            "jobId": "bench-1",
            "owner": "bench",
            "source": {"bucket": "bench", "key": keys.source_key("bench-1")},
            "outputs": {"renditions": [r.model_dump(by_alias=True) for r in LADDER]},
        }
        # As in a Pod: presigned URLs made by the operator's code, no S3 keys.
        write_access(s3, spec, tmp / "access.json")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("VIDPIPE_", "AWS_"))},
            "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("common", "processor")),
            "VIDPIPE_JOB_SPEC": json.dumps(spec),
            "VIDPIPE_ACCESS_FILE": str(tmp / "access.json"),
            "VIDPIPE_WORK_DIR": str(tmp / "work"),
            "VIDPIPE_TERMINATION_LOG": str(tmp / "termination-log"),
        }
        peak = 0

        def once() -> None:
            nonlocal peak
            done = subprocess.run(
                [sys.executable, "-m", "vidpipe_processor"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"processor failed ({done.returncode}):\n{done.stderr[-3000:]}")
            for line in done.stderr.splitlines():
                entry = json.loads(line)
                if entry.get("message") == "job succeeded":
                    peak = max(peak, int(entry["peakRssKiB"]))

        times = interleaved({"bare": lambda: run(bare), "processor": once}, repeat)
        return times["bare"], times["processor"], peak


def source_size_mib(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"


if __name__ == "__main__":
    main()
