"""Playback: token verification latency, and media through the API against presigned S3 URLs.

    .venv/bin/python bench/playback.py [--verifications 20000] [--rounds 5] [--seconds 20]

- verify: `Signer.verify` of a real video token (HMAC-SHA256 JWT with max_resolution), each
  call timed alone with perf_counter_ns, `--verifications` per round; p50 and p99 over every
  call of every round. Goal (issue 15): p99 < 1 ms. This is the whole per-request cost of the
  token: revocation is a cached lookup (vidpipe_api.playback_store), not part of it.
- media: a real ffmpeg HLS set (`--seconds` of 1280x720 at about 4 Mb/s, 2 s single-file fMP4
  segments, as the processor lays them out) stored under a Succeeded job. Two real API
  processes (uvicorn) on the same versitygw and FerretDB, one with `playback_media=proxy`, one
  with `presign`. A round is what a player does for one rendition: fetch its media playlist
  through `/play`, then every segment by its byte range, one after the other; the proxy side
  gets the bytes from the API, the presign side from S3 at the presigned URL. Figures: wall
  seconds of each (median), their ratio, and the API's CPU seconds per round on each side.
  No goal: the figures say what the proxy default costs (docs/api.md, "Playback").
Results: bench/results/playback.json.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "common"), str(REPO / "api"), str(REPO)]

import httpx  # noqa: E402
import pymongo  # noqa: E402
from tests.utils.records import job_record  # noqa: E402
from tests.utils.servers import free_port, mongo_server, s3_process, wait_for_port  # noqa: E402

from bench.results import (  # noqa: E402
    Goal,
    Recorder,
    alternate,
    median,
    percentile,
    process_cpu_seconds,
)
from bench.upload import dead_kubeconfig  # noqa: E402
from vidpipe.keys import output_key  # noqa: E402
from vidpipe_api.auth import key_document  # noqa: E402
from vidpipe_api.db import now  # noqa: E402
from vidpipe_api.playback import Claims, Signer, TokenType  # noqa: E402

BUCKET = "bench"
KEY = "bench-playback-signing-key-" + "0" * 16
_BYTERANGE = re.compile(r"^#EXT-X-BYTERANGE:(\d+)@(\d+)$")
_MAP = re.compile(r'BYTERANGE="(\d+)@(\d+)"')


def verify_round(signer: Signer, token: str, count: int) -> list[float]:
    """Milliseconds of each of `count` verifications."""
    out: list[float] = []
    for _ in range(count):
        start = time.perf_counter_ns()
        signer.verify(token)
        out.append((time.perf_counter_ns() - start) / 1e6)
    return out


def make_hls(d: Path, seconds: int) -> None:
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=duration={seconds}:size=1280x720:rate=30",
            "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "4M", "-g", "60",
            "-keyint_min", "60", "-sc_threshold", "0", "-an",
            "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod",
            "-hls_segment_type", "fmp4", "-hls_flags", "single_file",
            "-hls_segment_filename", "720p.cmfv", "720p.m3u8",
        ],
        cwd=d, check=True, timeout=600,
    )  # fmt: skip
    (d / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:7\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=4500000,RESOLUTION=1280x720,CODECS="avc1.640028"\n'
        "720p.m3u8\n"
    )


def ranges(playlist: str) -> list[tuple[str, str]]:
    """(URI, Range header) of the init section and every segment, in playlist order."""
    out: list[tuple[str, str]] = []
    pending: str | None = None
    for line in playlist.splitlines():
        if line.startswith("#EXT-X-MAP:"):
            length, offset = map(int, _MAP.search(line).groups())  # type: ignore[union-attr]
            uri = line.split('URI="', 1)[1].split('"', 1)[0]
            out.append((uri, f"bytes={offset}-{offset + length - 1}"))
        elif m := _BYTERANGE.match(line):
            length, offset = int(m.group(1)), int(m.group(2))
            pending = f"bytes={offset}-{offset + length - 1}"
        elif line and not line.startswith("#") and pending:
            out.append((line, pending))
            pending = None
    return out


def start_api(env: dict[str, str], media: str, work: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    api_env = {
        **env,
        "VIDPIPE_API_PLAYBACK_MEDIA": media,
        "VIDPIPE_API_KUBECONFIG": str(dead_kubeconfig(work / f"dead-{media}.kubeconfig")),
    }
    argv = [
        sys.executable, "-m", "uvicorn", "--factory", "vidpipe_api.main:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, env=api_env)
    wait_for_port(port, proc)
    return proc, port


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--verifications", type=int, default=20_000, help="per round")
    parser.add_argument("--rounds", type=int, default=5, help="recorded rounds per side")
    parser.add_argument("--seconds", type=int, default=20, help="length of the HLS clip")
    args = parser.parse_args()
    recorder = Recorder("playback", vars(args))

    signer = Signer(KEY.encode())
    issued = int(time.time())
    token = signer.sign(
        Claims("pb_" + "0" * 24, "vj-" + "0" * 32, TokenType.VIDEO, issued + 3600, issued, "720p")
    )
    verify_rounds = [verify_round(signer, token, args.verifications) for _ in range(args.rounds)]
    every = [ms for r in verify_rounds for ms in r]

    work = Path(tempfile.mkdtemp(prefix="vidpipe-bench-playback-"))
    hls = work / "hls"
    hls.mkdir()
    make_hls(hls, args.seconds)
    (work / "mongo").mkdir()
    s3, s3_proc = s3_process(work / "s3")
    s3_proc.start()
    try:
        with mongo_server(work / "mongo") as mongo_url:
            media = media_rounds(args, work, hls, s3, mongo_url)
    finally:
        s3_proc.stop()

    figures = {
        "verify_p50_ms": percentile(every, 0.50),
        "verify_p99_ms": percentile(every, 0.99),
        "verify_max_ms": max(every),
        "proxy_seconds": median(media["proxy_seconds"]),
        "presign_seconds": median(media["presign_seconds"]),
        "proxy_to_presign_ratio": median(media["proxy_seconds"]) / median(media["presign_seconds"]),
        "proxy_api_cpu_seconds": median(media["proxy_api_cpu_seconds"]),
        "presign_api_cpu_seconds": median(media["presign_api_cpu_seconds"]),
        "rendition_mib": media["rendition_mib"][0],
        "segments": media["segments"][0],
    }
    path = recorder.write(
        goals=[Goal("verify_p99_ms", "<", 1.0)],
        figures=figures,
        method={
            "rounds": args.rounds,
            "warmup": 1,
            "statistic": "verify: nearest-rank percentiles over every call; media: medians",
            "verify": "Signer.verify of one HS256 video token, each call timed alone",
            "proxy": "GET /play/<token>/720p.m3u8, then each byte range from /play (API streams)",
            "presign": "GET /play/<token>/720p.m3u8 (presign mode), then each range from S3",
        },
        rounds={
            "verify_p99_ms": [percentile(r, 0.99) for r in verify_rounds],
            **{k: v for k, v in media.items() if k not in ("rendition_mib", "segments")},
        },
        notes={
            "clip": f"{args.seconds} s testsrc2 1280x720 30 fps, libx264 ultrafast 4 Mb/s",
            "servers": "versitygw and FerretDB on this machine, APIs as uvicorn subprocesses",
        },
    )
    print(Recorder.summary(path))
    return 0


def media_rounds(
    args: argparse.Namespace, work: Path, hls: Path, s3: Any, mongo_url: str
) -> dict[str, list[float]]:
    s3c = s3.client()
    s3c.create_bucket(Bucket=BUCKET)
    job_id = f"vj-{uuid.uuid4().hex}"
    outputs = []
    for path in sorted(hls.iterdir()):
        s3c.put_object(Bucket=BUCKET, Key=output_key(job_id, path.name), Body=path.read_bytes())
        outputs.append(output_key(job_id, path.name))
    key, doc = key_document("bench", False, now())
    record = job_record(
        job_id, owner="bench", phase="Succeeded", outputs=outputs, updated_at=now()
    ).document()
    with pymongo.MongoClient[dict[str, Any]](mongo_url) as mc:
        mc["bench"]["api_keys"].insert_one(doc)
        mc["bench"]["jobs"].insert_one(record)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("common", "api")),
        "VIDPIPE_S3_ENDPOINT_URL": s3.endpoint_url,
        "VIDPIPE_S3_ACCESS_KEY_ID": s3.access_key,
        "VIDPIPE_S3_SECRET_ACCESS_KEY": s3.secret_key,
        "VIDPIPE_S3_BUCKET": BUCKET,
        "VIDPIPE_MONGO_URL": mongo_url,
        "VIDPIPE_MONGO_DATABASE": "bench",
        "VIDPIPE_API_KUBE_TIMEOUT_SECONDS": "1",
        "VIDPIPE_API_RECONCILE_INTERVAL_SECONDS": "0",
        "VIDPIPE_API_REAPER_INTERVAL_SECONDS": "0",
        "VIDPIPE_API_LOG_LEVEL": "ERROR",
        "VIDPIPE_API_PLAYBACK_SIGNING_KEY": KEY,
    }
    apis = {mode: start_api(env, mode, work) for mode in ("proxy", "presign")}
    out: dict[str, list[float]] = {
        "rendition_mib": [(hls / "720p.cmfv").stat().st_size / 2**20],
        "proxy_api_cpu_seconds": [],
        "presign_api_cpu_seconds": [],
    }
    try:
        with httpx.Client(timeout=120) as http:
            headers = {"Authorization": f"Bearer {key}"}

            def side(mode: str) -> Any:
                proc, port = apis[mode]
                base = f"http://127.0.0.1:{port}"
                created = http.post(f"{base}/v1/jobs/{job_id}/playback", json={}, headers=headers)
                created.raise_for_status()
                video = created.json()["tokens"]["video"]

                def play() -> float:
                    cpu = process_cpu_seconds(proc.pid)
                    start = time.perf_counter()
                    playlist = http.get(f"{base}/play/{video}/720p.m3u8")
                    playlist.raise_for_status()
                    parts = ranges(playlist.text)
                    for uri, byte_range in parts:
                        url = uri if "://" in uri else f"{base}/play/{video}/{uri}"
                        got = http.get(url, headers={"Range": byte_range})
                        assert got.status_code == 206, got.text[:200]
                    elapsed = time.perf_counter() - start
                    out[f"{mode}_api_cpu_seconds"].append(process_cpu_seconds(proc.pid) - cpu)
                    out["segments"] = [float(len(parts) - 1)]
                    return elapsed

                return play

            timed = alternate({m: side(m) for m in ("proxy", "presign")}, args.rounds)
            for mode in ("proxy", "presign"):
                # alternate's warm-up round is not recorded: drop its CPU figure too.
                out[f"{mode}_api_cpu_seconds"] = out[f"{mode}_api_cpu_seconds"][1:]
                out[f"{mode}_seconds"] = timed[mode]
    finally:
        for proc, _ in apis.values():
            proc.terminate()
            proc.wait(timeout=30)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
