"""Upload to Succeeded on the running local platform (`make up`), against bare ffmpeg.

    .venv/bin/python bench/platform_latency.py [--seconds 30] [--height 1080]

Generates a 1080p30 clip with audio, uploads it through the API with the default options
(720p rendition, poster, storyboard), and times upload start -> phase Succeeded. The baseline,
measured in the same run on the same machine, is one bare ffmpeg command producing the same 720p
rendition from a local file: the ratio is what the platform (HTTP, S3 both ways, probe twice,
Kubernetes scheduling, the operator, Pod start, manifest) costs on top of the transcode itself.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
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


def platform(source: Path, base_url: str, key: str) -> float:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=600) as http:
        started = time.monotonic()
        with source.open("rb") as body:
            response = http.put("/v1/videos", content=body, headers={"Content-Type": "video/mp4"})
        response.raise_for_status()
        job_id = response.json()["id"]
        while True:
            phase = http.get(f"/v1/jobs/{job_id}").json()["phase"]
            if phase in {"Succeeded", "Failed", "Cancelled"}:
                break
            time.sleep(0.25)
        elapsed = time.monotonic() - started
    if phase != "Succeeded":
        raise SystemExit(f"job {job_id} ended {phase}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    args = parser.parse_args()
    if not KEY_FILE.exists():
        raise SystemExit("no local platform: run `make up` first")
    key = KEY_FILE.read_text().strip()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.mp4"
        make_source(source, args.seconds, args.height)
        size_mib = source.stat().st_size / 2**20
        baseline = bare_ffmpeg(source, Path(tmp) / "bare-720p.mp4")
        ours = platform(source, args.api, key)
    print(f"source: {args.seconds}s {args.height}p30, {size_mib:.1f} MiB")
    print(f"bare ffmpeg 720p on a local file: {baseline:.1f}s")
    print(f"platform upload -> Succeeded (720p + poster + storyboard): {ours:.1f}s")
    print(f"ratio platform / bare ffmpeg: {ours / baseline:.2f}")


if __name__ == "__main__":
    main()
