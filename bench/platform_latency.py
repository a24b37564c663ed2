"""Upload to Succeeded on the platform in the local cluster, against bare ffmpeg.

    .venv/bin/python bench/platform_latency.py [--seconds 30] [--height 1080] [--rounds 3]
    .venv/bin/python bench/platform_latency.py --api http://127.0.0.1:8000   # after `make up`

Generates a 1080p30 clip with audio, uploads it through the API with the default options
(720p rendition, poster, storyboard), and times upload start -> phase Succeeded. The baseline is
one bare ffmpeg command producing the same 720p rendition from a local file: the ratio is what the
platform (HTTP, S3 both ways, probe twice, Kubernetes scheduling, the operator, Pod start,
manifest) costs on top of the transcode itself. A second baseline runs the processor's own ffmpeg
commands for the same default outputs (720p, poster, storyboard) on the local file, so the ratio
to it is the platform's cost alone. Rounds alternate between the sides (order reversed every other
round) after one unrecorded warm-up of each; figures are medians. The platform's rounds are split
into the upload (until the 202) and the rest.

Without --api the bench installs its own release of the chart into the local cluster
(`hack/platform.sh install`, the images of the current sources, as the e2e tests do) and
uninstalls it afterwards; with --api it uses that platform and the key in
.local/cluster/api-key. No issue sets a goal for this ratio: the file records it without one.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "common"), str(REPO / "processor"), str(REPO)]

from tests.utils.cluster import local_cluster  # noqa: E402
from tests.utils.platform import installed, run  # noqa: E402

from bench.results import Recorder, alternate, median  # noqa: E402
from vidpipe.models import Outputs  # noqa: E402
from vidpipe.probe import ProbeLimits, probe  # noqa: E402
from vidpipe_processor.ffmpeg_graph import (  # noqa: E402
    STORYBOARD_FRAMES_DIR,
    build_ffmpeg_argv,
    storyboard_tile_argv,
)
from vidpipe_processor.plan import plan_outputs  # noqa: E402

KEY_FILE = REPO / ".local" / "cluster" / "api-key"


def make_source(path: Path, seconds: int, height: int) -> None:
    width = height * 16 // 9
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
         f"testsrc2=size={width}x{height}:rate=30,noise=alls=8:allf=t",
         "-f", "lavfi", "-i", "sine=frequency=440", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-y", str(path)],
        check=True,
    )  # fmt: skip


def bare_ffmpeg(source: Path, out: Path) -> float:
    started = time.monotonic()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(source), "-vf", "scale=-2:720,format=yuv420p",
         "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-c:a", "aac", "-b:a", "128k",
         "-movflags", "+faststart", "-y", str(out)],
        check=True,
    )  # fmt: skip
    return time.monotonic() - started


def same_outputs(source: Path, out: Path) -> Callable[[], float]:
    """The ffmpeg commands the processor runs for the default options (720p, poster and storyboard
    in one decode, then the storyboard tiling), on a local file."""
    info = probe(str(source), ProbeLimits())
    plan = plan_outputs(info, Outputs())
    argvs = [build_ffmpeg_argv(info, plan, source, out)]
    if plan.storyboard:
        argvs.append(storyboard_tile_argv(plan.storyboard, out))

    def run() -> float:
        shutil.rmtree(out, ignore_errors=True)
        (out / STORYBOARD_FRAMES_DIR).mkdir(parents=True)
        started = time.monotonic()
        for argv in argvs:
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        return time.monotonic() - started

    return run


def stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def platform(source: Path, base_url: str, key: str) -> dict[str, float]:
    """Upload start -> Succeeded seen; the upload's share (until the 202) and the rest; and the
    job's own span (finishedAt - startedAt as the operator recorded them, whole seconds)."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=600) as http:
        started, t0 = time.monotonic(), time.time()
        with source.open("rb") as body:
            response = http.put("/v1/videos", content=body, headers={"Content-Type": "video/mp4"})
        response.raise_for_status()
        accepted = time.time()
        job_id = response.json()["id"]
        while True:
            job = http.get(f"/v1/jobs/{job_id}").json()
            if job["phase"] in {"Succeeded", "Failed", "Cancelled"}:
                break
            time.sleep(0.25)
        elapsed, seen = time.monotonic() - started, time.time()
    if job["phase"] != "Succeeded":
        raise SystemExit(f"job {job_id} ended {job['phase']}")
    return {
        "total": elapsed,
        "upload": accepted - t0,
        "after_upload": seen - accepted,
        "job_span": stamp(job["finishedAt"]) - stamp(job["startedAt"]),
    }


@contextlib.contextmanager
def endpoint(api: str | None) -> Iterator[tuple[str, str]]:
    """(base URL, API key): the given platform's, or a release installed for this run."""
    if api is not None:
        if not KEY_FILE.exists():
            raise SystemExit(f"no API key at {KEY_FILE}: run `make up` first")
        yield api, KEY_FILE.read_text().strip()
        return
    cluster = local_cluster()
    # The chart names its objects after the release when the name contains "vidpipe".
    name = f"vidpipe-bench-{secrets.token_hex(3)}"
    try:
        with installed(cluster, name) as release:
            yield release.base_url, release.key
    finally:
        run(str(REPO / "bin" / "kubectl"), "delete", "namespace", name, "--wait=false",
            cluster=cluster, check=False)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--rounds", type=int, default=3, help="recorded rounds per side")
    parser.add_argument("--api", help="an installed platform's API (default: install one)")
    args = parser.parse_args()
    recorder = Recorder("platform_latency", vars(args))
    with tempfile.TemporaryDirectory() as tmp, endpoint(args.api) as (base_url, key):
        source = Path(tmp) / "source.mp4"
        make_source(source, args.seconds, args.height)
        size_mib = source.stat().st_size / 2**20
        same_ffmpeg = same_outputs(source, Path(tmp) / "same-outputs")
        measured = alternate(
            {
                "bare": lambda: {"total": bare_ffmpeg(source, Path(tmp) / "bare-720p.mp4")},
                "same_outputs": lambda: {"total": same_ffmpeg()},
                "platform": lambda: platform(source, base_url, key),
            },
            args.rounds,
        )
    rounds = {
        f"{side}_{what}_s": [m[what] for m in runs]
        for side, runs in measured.items()
        for what in runs[0]
    }
    bare, same = median(rounds["bare_total_s"]), median(rounds["same_outputs_total_s"])
    ours = median(rounds["platform_total_s"])
    figures = {
        "bare_ffmpeg_720p_s": bare,
        "bare_ffmpeg_same_outputs_s": same,
        "platform_upload_to_succeeded_s": ours,
        "ratio_platform_to_bare": ours / bare,
        "ratio_platform_to_same_outputs": ours / same,
    }
    for stage in ("upload", "after_upload", "job_span"):
        figures[f"platform_{stage}_s"] = median(rounds[f"platform_{stage}_s"])
    path = recorder.write(
        goals=[],
        figures=figures,
        method={
            "rounds": args.rounds,
            "warmup": "one unrecorded run of each side",
            "statistic": "median of each side's rounds; ratios of the medians",
            "platform": "PUT /v1/videos (default options: 720p, poster, storyboard) until GET "
            "/v1/jobs/{id} says Succeeded, polled every 0.25 s; "
            + ("the platform at --api" if args.api else "a release installed for this run"),
            "baseline": "one ffmpeg: the same source to 720p (veryfast, crf 23, aac 128k) "
            "from a local file",
            "same_outputs": "the processor's own ffmpeg commands for the default outputs (720p, "
            "poster and storyboard frames in one decode, then the tiling) on a local file",
            "stages": "upload: until the 202; after_upload: from the 202 until the poll saw "
            "Succeeded; job_span: the job's finishedAt - startedAt (Kubernetes times, whole "
            "seconds)",
        },
        rounds=rounds,
        notes={
            "source": f"{args.seconds} s {args.height}p30 H.264 + AAC (testsrc2 + noise), "
            f"{size_mib:.1f} MiB",
            "goal": "none set by an issue",
        },
    )
    print(f"source: {args.seconds}s {args.height}p30, {size_mib:.1f} MiB; medians of {args.rounds}")
    print(f"bare ffmpeg 720p on a local file: {bare:.1f}s")
    print(f"bare ffmpeg, the processor's commands (720p + poster + storyboard): {same:.1f}s")
    print(f"platform upload -> Succeeded (720p + poster + storyboard): {ours:.1f}s")
    print(f"ratio platform / bare 720p: {ours / bare:.2f}; / same outputs: {ours / same:.2f}")
    print(Recorder.summary(path))


if __name__ == "__main__":
    main()
