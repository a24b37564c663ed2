"""Processor benchmark: is one decode feeding the whole ladder worth it, and what does the
processor's plumbing (S3, probe, upload, manifest) cost on top of ffmpeg itself?

    .venv/bin/python bench/processor.py [--seconds 8] [--rounds 5] [--profile DIR]

(a) our single-decode ladder (1080p/720p/480p + poster) versus three separate ffmpeg runs with the
    same settings, one rendition each (and a fourth, seeking poster run): wall-time ratio, goal
    <= 0.80;
(b) the whole processor as the Pod runs it (`python -m vidpipe_processor`: S3 download, probe,
    ladder, poster, storyboard, upload, manifest) versus the bare ffmpeg commands it runs (the
    single pass and the storyboard tiling) on a local file: wall-time ratio, goal <= 1.10; and
    the processor's peak RSS (its own, without ffmpeg), which it logs when it finishes. Default
    outputs, so HLS and MP4.
(c) HLS + MP4 for the same ladder from one ffmpeg run (each rendition encoded once, teed to both
    muxers) versus two separate runs (HLS only, then MP4 only): wall-time ratio, goal <= 0.80;
    versus MP4 only (what packaging HLS too costs, GOP constraints included); and versus the
    other single-encode design, HLS only followed by a copy-remux of each rendition to a
    faststart MP4.

Rounds alternate between the sides (order reversed every other round) after one unrecorded
warm-up round of each; figures are medians. The CPU column is user + system time of the child
processes (ffmpeg, the processor and its ffmpeg) plus, in (b), the S3 server's (versitygw) on both
sides: the processor's download and upload cost the store CPU on the same cores.

The source is a 1080p30 H.264 + AAC clip made with lavfi (testsrc2 with noise, so decoding and
encoding are not trivially cheap). versitygw is started like the test suite does.
`--profile DIR` records one processor run with py-spy (DIR/processor.txt, collapsed stacks) and
writes no results file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Runnable as `python bench/processor.py` too: the import roots pytest gets from pyproject.toml.
sys.path[:0] = [str(REPO / "common"), str(REPO / "processor"), str(REPO / "operator"), str(REPO)]

from tests.integration.processor.helpers import write_access  # noqa: E402
from tests.utils.servers import s3_process  # noqa: E402

from bench.results import (  # noqa: E402
    Goal,
    Recorder,
    alternate,
    median,
    process_cpu_seconds,
    py_spy_argv,
)
from vidpipe import keys  # noqa: E402
from vidpipe.models import Outputs, Rendition, Storyboard  # noqa: E402
from vidpipe.probe import MediaInfo, ProbeLimits, probe  # noqa: E402
from vidpipe_processor.ffmpeg_graph import (  # noqa: E402
    STORYBOARD_FRAMES_DIR,
    build_ffmpeg_argv,
    storyboard_tile_argv,
)
from vidpipe_processor.plan import OutputPlan, plan_outputs  # noqa: E402

LADDER = [
    Rendition(name="1080p", height=1080),
    Rendition(name="720p", height=720),
    Rendition(name="480p", height=480),
]
Measure = dict[str, float]
# The processor's own timings (its log lines' `seconds`), recorded to show where its time goes.
STAGES = {
    "source downloaded": "processor_download_s",
    "ffmpeg finished": "processor_ffmpeg_s",
    "outputs uploaded": "processor_upload_s",
}
stages: dict[str, list[float]] = {}


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


def timed(action: Callable[[], None], server_pid: int | None = None) -> Callable[[], Measure]:
    """`action` measured: wall seconds, and CPU seconds of the children it waited for plus the
    S3 server's (a long-running child, so not in RUSAGE_CHILDREN until it exits)."""

    def measure() -> Measure:
        server = process_cpu_seconds(server_pid) if server_pid else 0.0
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        action()
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        children = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        s3 = process_cpu_seconds(server_pid) - server if server_pid else 0.0
        return {"wall": wall, "cpu": children + s3, "s3_cpu": s3}

    return measure


def run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def poster_run(source: Path, out: Path, at: float) -> list[str]:
    return [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-ss", f"{at:g}", "-i", str(source), "-frames:v", "1", "-q:v", "2", str(out),
    ]  # fmt: skip


def ladder(info: MediaInfo, source: Path, out: Path, rounds: int) -> dict[str, list[Measure]]:
    """(a) one decode feeding the ladder and the poster, versus one run per rendition."""
    no_board = Storyboard(enabled=False)
    # MP4 only, as before HLS: (c) measures what HLS adds.
    mp4 = ["mp4"]
    single_plan = plan_outputs(
        info, Outputs(renditions=LADDER, poster=True, storyboard=no_board, formats=mp4)
    )
    single = build_ffmpeg_argv(info, single_plan, source, out)
    separate = [
        build_ffmpeg_argv(
            info,
            plan_outputs(
                info, Outputs(renditions=[r], poster=False, storyboard=no_board, formats=mp4)
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

    return alternate(
        {
            "single": timed(lambda: run(single)),
            "three": timed(run_separately),
            "poster": timed(lambda: run(poster)),
        },
        rounds,
    )


def _ladder_plan(info: MediaInfo, formats: list[str]) -> OutputPlan:
    outputs = Outputs.model_validate(
        {
            "renditions": LADDER,
            "poster": False,
            "storyboard": {"enabled": False},
            "formats": formats,
        }
    )
    return plan_outputs(info, outputs)


def remux_argv(plan: OutputPlan, hls_dir: Path, out: Path) -> list[list[str]]:
    """Copy each HLS rendition (and the audio group) into a faststart MP4: no encode."""
    assert plan.hls is not None and plan.hls.audio is not None
    audio = hls_dir / plan.hls.audio.playlist_name
    head = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    copy = ["-map", "0:v", "-map", "1:a", "-c", "copy", "-movflags", "+faststart"]
    return [
        [
            *head,
            "-i",
            str(hls_dir / v.playlist_name),
            "-i",
            str(audio),
            *copy,
            str(out / f"{v.rendition}.mp4"),
        ]
        for v in plan.hls.variants
    ]


def packaging(info: MediaInfo, source: Path, out: Path, rounds: int) -> dict[str, list[Measure]]:
    """(c) HLS + MP4 from one run versus HLS and MP4 in two runs, MP4 alone, and remuxing."""
    dirs = {name: out / name for name in ("both", "hls", "mp4", "remux-src", "remux")}
    for folder in dirs.values():
        folder.mkdir(parents=True)
    both = build_ffmpeg_argv(info, _ladder_plan(info, ["hls", "mp4"]), source, dirs["both"])
    hls_plan = _ladder_plan(info, ["hls"])
    hls = build_ffmpeg_argv(info, hls_plan, source, dirs["hls"])
    mp4 = build_ffmpeg_argv(info, _ladder_plan(info, ["mp4"]), source, dirs["mp4"])
    # The remux side copies from an HLS ladder made once, so it times the remux alone.
    run(build_ffmpeg_argv(info, hls_plan, source, dirs["remux-src"]))
    remux = remux_argv(hls_plan, dirs["remux-src"], dirs["remux"])

    def run_remux() -> None:
        for argv in remux:
            run(argv)

    return alternate(
        {
            "hls_both": timed(lambda: run(both)),
            "hls_only": timed(lambda: run(hls)),
            "mp4_only": timed(lambda: run(mp4)),
            "hls_remux": timed(run_remux),
        },
        rounds,
    )


def whole_processor(
    tmp: Path, source: Path, info: MediaInfo, rounds: int, profile: Path | None
) -> tuple[dict[str, list[Measure]], list[float]]:
    """(b) rounds of the bare ffmpeg commands and of the processor; the processor's peak RSS
    (MiB) per recorded run."""
    full_plan = plan_outputs(info, Outputs(renditions=LADDER))
    bare_out = tmp / "bare-out"
    bare = build_ffmpeg_argv(info, full_plan, source, bare_out)
    tile = storyboard_tile_argv(full_plan.storyboard, bare_out) if full_plan.storyboard else None

    def run_bare() -> None:
        # The same ffmpeg work as the processor: the one decode, then the storyboard tiling.
        shutil.rmtree(bare_out, ignore_errors=True)
        (bare_out / STORYBOARD_FRAMES_DIR).mkdir(parents=True)
        run(bare)
        if tile:
            run(tile)

    s3, server = s3_process(tmp / "s3")
    server.start()
    try:
        assert server.proc is not None
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
        peaks: list[float] = []
        argv = [sys.executable, "-m", "vidpipe_processor"]
        stages.clear()

        def once() -> None:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"processor failed ({done.returncode}):\n{done.stderr[-3000:]}")
            for line in done.stderr.splitlines():
                entry = json.loads(line)
                if entry.get("message") == "job succeeded":
                    peaks.append(int(entry["peakRssKiB"]) / 1024)
                if entry.get("message") in STAGES and "seconds" in entry:
                    stages.setdefault(STAGES[entry["message"]], []).append(entry["seconds"])

        if profile is not None:
            spy_processor(profile, argv, env)
            return {}, []
        measured = alternate(
            {"bare": timed(run_bare, server.proc.pid), "processor": timed(once, server.proc.pid)},
            rounds,
        )
        for values in stages.values():
            del values[0]  # the warm-up run
        return measured, peaks[1:]
    finally:
        server.stop()


def spy_processor(folder: Path, argv: list[str], env: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "processor.txt"
    spy = [*py_spy_argv(out), "--subprocesses", "--", *argv]
    done = subprocess.run(spy, env=env, capture_output=True, text=True, check=False)
    if done.returncode not in (0, -signal.SIGINT):
        raise SystemExit(f"py-spy failed ({done.returncode}):\n{done.stderr[-3000:]}")
    print(f"profile: {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="source duration")
    parser.add_argument("--rounds", type=int, default=5, help="recorded rounds per side")
    parser.add_argument("--profile", type=Path, help="py-spy one processor run into this folder")
    args = parser.parse_args()
    recorder = Recorder("processor", vars(args))

    with tempfile.TemporaryDirectory(prefix="bench-processor-") as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "source.mp4"
        make_source(source, args.seconds)
        info = probe(str(source), ProbeLimits())
        if args.profile is not None:
            whole_processor(tmp, source, info, 0, args.profile)
            return
        out = tmp / "out"
        out.mkdir()
        a = ladder(info, source, out, args.rounds)
        b, peaks = whole_processor(tmp, source, info, args.rounds, None)
        c = packaging(info, source, tmp / "packaging", args.rounds)
    report(args, recorder, info, a | b | c, peaks)


def report(
    args: argparse.Namespace,
    recorder: Recorder,
    info: MediaInfo,
    measured: dict[str, list[Measure]],
    peaks: list[float],
) -> None:
    rounds = {
        f"{side}_{metric}": [m[metric] for m in runs]
        for side, runs in measured.items()
        for metric in ("wall", "cpu", "s3_cpu")
    }
    rounds["processor_peak_rss_mib"] = peaks
    rounds.update(stages)
    med = {name: median(values) for name, values in rounds.items()}
    figures = {
        "ladder_single_wall_s": med["single_wall"],
        "ladder_three_wall_s": med["three_wall"],
        "ladder_poster_wall_s": med["poster_wall"],
        "ladder_ratio_wall": med["single_wall"] / med["three_wall"],
        "ladder_ratio_cpu": med["single_cpu"] / med["three_cpu"],
        "ladder_ratio_with_poster_wall": med["single_wall"]
        / (med["three_wall"] + med["poster_wall"]),
        "ladder_ratio_with_poster_cpu": med["single_cpu"] / (med["three_cpu"] + med["poster_cpu"]),
        "bare_wall_s": med["bare_wall"],
        "processor_wall_s": med["processor_wall"],
        "bare_cpu_s": med["bare_cpu"],
        "processor_cpu_s": med["processor_cpu"],
        "processor_s3_cpu_s": med["processor_s3_cpu"],
        "processor_ratio_wall": med["processor_wall"] / med["bare_wall"],
        "processor_ratio_cpu": med["processor_cpu"] / med["bare_cpu"],
        "processor_peak_rss_mib_max": max(peaks),
        "hls_both_wall_s": med["hls_both_wall"],
        "hls_only_wall_s": med["hls_only_wall"],
        "mp4_only_wall_s": med["mp4_only_wall"],
        "hls_remux_wall_s": med["hls_remux_wall"],
        "hls_ratio_two_runs_wall": med["hls_both_wall"]
        / (med["hls_only_wall"] + med["mp4_only_wall"]),
        "hls_ratio_two_runs_cpu": med["hls_both_cpu"] / (med["hls_only_cpu"] + med["mp4_only_cpu"]),
        "hls_packaging_overhead_wall": med["hls_both_wall"] / med["mp4_only_wall"],
        "hls_packaging_overhead_cpu": med["hls_both_cpu"] / med["mp4_only_cpu"],
        "hls_ratio_remux_wall": med["hls_both_wall"]
        / (med["hls_only_wall"] + med["hls_remux_wall"]),
        "hls_ratio_remux_cpu": med["hls_both_cpu"] / (med["hls_only_cpu"] + med["hls_remux_cpu"]),
    }
    figures.update({f"{name}_median": median(values) for name, values in stages.items()})
    path = recorder.write(
        goals=[
            Goal("ladder_ratio_wall", "<=", 0.80),
            Goal("processor_ratio_wall", "<=", 1.10),
            Goal("hls_ratio_two_runs_wall", "<=", 0.80),
        ],
        figures=figures,
        method={
            "rounds": args.rounds,
            "warmup": "one unrecorded run of every side",
            "order": "alternating, reversed every other round; (a) and (b) in turn",
            "statistic": "median of each side's rounds; ratios of medians",
            "cpu": "user+system of child processes, plus versitygw's in (b) on both sides",
            "ladder": "single: one ffmpeg for 1080p/720p/480p + poster; three: one run per "
            "rendition; poster: a separate seeking poster run",
            "processor": "python -m vidpipe_processor with presigned URLs against versitygw "
            "(download, probe, ladder + poster + storyboard, upload, manifest; default formats "
            "hls + mp4) vs the same ffmpeg commands (single pass + storyboard tiling) on a local "
            "file",
            "packaging": "the ladder without poster or storyboard: hls_both one ffmpeg for HLS + "
            "MP4 (each rendition encoded once, teed); hls_only and mp4_only one ffmpeg each "
            "(two runs = their sum); hls_remux the copy-remux of an HLS ladder into faststart "
            "MP4s (alternative = hls_only + hls_remux); ffmpeg only (the master playlist, "
            "written by Python afterwards, is not timed)",
        },
        rounds=rounds,
        notes={
            "source": f"1920x1080 30 fps H.264 + AAC, {args.seconds:g} s, "
            f"{info.size_bytes / 2**20:.1f} MiB (testsrc2 + noise)"
        },
    )
    print(f"source: 1920x1080 30 fps, {args.seconds:g} s; median of {args.rounds} rounds")
    print(f"{'':52}{'wall':>9}{'cpu':>9}")
    print("(a) ladder 1080p/720p/480p + poster")
    row("single decode, one ffmpeg", med["single_wall"], med["single_cpu"], "s")
    row("three separate runs", med["three_wall"], med["three_cpu"], "s")
    row("separate poster run", med["poster_wall"], med["poster_cpu"], "s")
    row("ratio single/three", figures["ladder_ratio_wall"], figures["ladder_ratio_cpu"])
    row(
        "ratio single/(three + poster)",
        figures["ladder_ratio_with_poster_wall"],
        figures["ladder_ratio_with_poster_cpu"],
    )
    print("(b) whole processor (download, probe, ladder, poster, storyboard, upload, manifest)")
    row("bare ffmpeg (single pass + tiling)", med["bare_wall"], med["bare_cpu"], "s")
    row("processor (CPU incl. versitygw)", med["processor_wall"], med["processor_cpu"], "s")
    row("ratio processor/bare", figures["processor_ratio_wall"], figures["processor_ratio_cpu"])
    print(f"    processor peak RSS (Python process only): {max(peaks):.1f} MiB")
    print("(c) HLS + MP4 for the ladder 1080p/720p/480p")
    row(
        "one run, each rendition encoded once (teed)",
        med["hls_both_wall"],
        med["hls_both_cpu"],
        "s",
    )
    row("HLS only", med["hls_only_wall"], med["hls_only_cpu"], "s")
    row("MP4 only", med["mp4_only_wall"], med["mp4_only_cpu"], "s")
    row("copy-remux of the HLS ladder to MP4", med["hls_remux_wall"], med["hls_remux_cpu"], "s")
    row(
        "ratio one run/(HLS run + MP4 run)",
        figures["hls_ratio_two_runs_wall"],
        figures["hls_ratio_two_runs_cpu"],
    )
    row(
        "ratio one run/MP4 only (packaging overhead)",
        figures["hls_packaging_overhead_wall"],
        figures["hls_packaging_overhead_cpu"],
    )
    row(
        "ratio one run/(HLS only + remux)",
        figures["hls_ratio_remux_wall"],
        figures["hls_ratio_remux_cpu"],
    )
    print(Recorder.summary(path))


def row(label: str, wall: float, cpu: float, unit: str = "") -> None:
    print(f"    {label:48}{wall:8.2f}{unit or ' '}{cpu:8.2f}{unit}")


if __name__ == "__main__":
    main()
