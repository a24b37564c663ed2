"""Upload benchmark: a large file through the API versus boto3 `upload_fileobj` to the same S3.

    .venv/bin/python bench/upload.py [--size-mib 1024] [--rounds 5] [--form] [--same-config]
        [--profile DIR]

Starts versitygw and FerretDB (as the tests do) and the API as a real uvicorn subprocess. Each
round uploads the file once through the API (`PUT /v1/videos`, raw body, httpx streaming 1 MiB
chunks) and once with boto3's `upload_fileobj` (its default transfer settings) to the same S3
server, alternating; one unrecorded round of each warms both up (imports, pools, page cache).
Figures are medians: throughput of both, their ratio (goal >= 0.80), and the API's peak RSS
growth (goal < 100 MiB): the highest /proc/<pid>/status VmHWM of any round minus the idle VmRSS
after a small warm-up upload, so buffers kept between uploads count as growth. CPU seconds
of the API, versitygw and this client are recorded per round too: on 2 cores the three compete.

The file is a real 1 s video padded with zeros to the size, so the API's validation (ffprobe over
a presigned URL) runs for real and is part of the API's time. The Kubernetes API is a dead
address here: the VideoJob creation fails at once (connection refused) and the job waits for
the reconciler, which is not what we measure.

`--form` adds a third side, the multipart form (`POST /v1/videos`); `--same-config` adds boto3
with the API's own S3 client settings (no SHA-256 of each part, no CRC32), which shows how much
of the ratio comes from those settings rather than from the API's streaming.
`--profile DIR` records the API with py-spy during one upload after a warm-up (DIR/api.txt,
collapsed stacks) and writes no results file: sampling costs CPU the figures would include.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pymongo
import yaml
from botocore.config import Config

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "common"), str(REPO / "api"), str(REPO)]

from tests.utils.servers import (  # noqa: E402
    S3Server,
    free_port,
    mongo_server,
    s3_process,
    wait_for_port,
)

from bench.results import (  # noqa: E402
    Goal,
    Recorder,
    alternate,
    median,
    process_cpu_seconds,
    py_spy_argv,
)
from vidpipe_api.auth import key_document  # noqa: E402
from vidpipe_api.db import now  # noqa: E402

MiB = 1024 * 1024
BUCKET = "bench"


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def make_video(path: Path, size: int) -> None:
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc=duration=1:size=320x240:rate=25",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path),
        ],
        check=True,
    )  # fmt: skip
    with path.open("r+b") as f:
        f.truncate(size)  # zeros after the MP4 boxes; ffprobe reads the real video


def chunks(path: Path, size: int = MiB) -> Iterator[bytes]:
    with path.open("rb") as f:
        while block := f.read(size):
            yield block


def api_like_client(s3: S3Server) -> Any:
    """boto3 configured like the API's Storage client: no payload hash, no extra checksums."""
    return s3.client(
        Config(
            signature_version="s3v4",
            s3={"addressing_style": "path", "payload_signing_enabled": False},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
    )


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def dead_kubeconfig(path: Path) -> Path:
    cluster = {"server": f"http://127.0.0.1:{free_port()}"}
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "d", "cluster": cluster}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "d", "context": {"cluster": "d", "user": "u"}}],
                "current-context": "d",
            }
        )
    )
    return path


class Round:
    """One upload's wall time and the CPU each process spent meanwhile."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids

    def measure(self, upload: Callable[[], None]) -> dict[str, float]:
        before = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        client_before = self_cpu()
        started = time.perf_counter()
        upload()
        out = {"seconds": time.perf_counter() - started}
        for name, pid in self.pids.items():
            out[f"{name}_cpu"] = process_cpu_seconds(pid) - before[name]
        out["client_cpu"] = self_cpu() - client_before
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5, help="recorded rounds per side")
    parser.add_argument("--form", action="store_true", help="also POST the multipart form")
    parser.add_argument(
        "--same-config",
        action="store_true",
        help="also boto3 with the API's S3 client settings (no payload hash, no checksums)",
    )
    parser.add_argument("--profile", type=Path, help="py-spy the API into this folder instead")
    args = parser.parse_args()
    recorder = Recorder("upload", vars(args))
    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="vidpipe-bench-"))
    video = work / "big.mp4"
    make_video(video, size)
    (work / "mongo").mkdir()
    s3, s3_proc = s3_process(work / "s3")
    s3_proc.start()
    try:
        with mongo_server(work / "mongo") as mongo_url:
            return run(args, recorder, work, video, size, s3, s3_proc.proc, mongo_url)
    finally:
        s3_proc.stop()


def run(
    args: argparse.Namespace,
    recorder: Recorder,
    work: Path,
    video: Path,
    size: int,
    s3: Any,
    s3_popen: Any,
    mongo_url: str,
) -> int:
    s3c = s3.client()
    s3c.create_bucket(Bucket=BUCKET)
    key, doc = key_document("bench", False, now())
    with pymongo.MongoClient[dict[str, Any]](mongo_url) as mc:
        mc["bench"]["api_keys"].insert_one(doc)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("common", "api")),
        "VIDPIPE_S3_ENDPOINT_URL": s3.endpoint_url,
        "VIDPIPE_S3_ACCESS_KEY_ID": s3.access_key,
        "VIDPIPE_S3_SECRET_ACCESS_KEY": s3.secret_key,
        "VIDPIPE_S3_BUCKET": BUCKET,
        "VIDPIPE_MONGO_URL": mongo_url,
        "VIDPIPE_MONGO_DATABASE": "bench",
        "VIDPIPE_API_KUBECONFIG": str(dead_kubeconfig(work / "dead.kubeconfig")),
        "VIDPIPE_API_KUBE_TIMEOUT_SECONDS": "1",
        "VIDPIPE_API_MAX_UPLOAD_BYTES": str(size + MiB),
        "VIDPIPE_API_RECONCILE_INTERVAL_SECONDS": "0",
        "VIDPIPE_API_REAPER_INTERVAL_SECONDS": "0",
        "VIDPIPE_API_LOG_LEVEL": "ERROR",
    }
    argv = [
        sys.executable, "-m", "uvicorn", "--factory", "vidpipe_api.main:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        "--no-access-log",
    ]  # fmt: skip
    api = subprocess.Popen(argv, env=env)
    try:
        wait_for_port(port, api)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as http:
            rss: dict[str, list[float]] = {"before": [], "growth": [], "peak": []}

            def api_put(source: Path = video) -> None:
                Path(f"/proc/{api.pid}/clear_refs").write_text("5")
                before = status_kib(api.pid, "VmRSS")
                resp = http.put(
                    "/v1/videos",
                    headers={
                        **headers,
                        "Content-Type": "video/mp4",
                        "Content-Length": str(source.stat().st_size),
                    },
                    content=chunks(source),
                )
                assert resp.status_code == 202, resp.text
                peak = status_kib(api.pid, "VmHWM")
                rss["before"].append(before / 1024)
                rss["growth"].append((peak - before) / 1024)
                rss["peak"].append(peak / 1024)
                s3c.delete_object(Bucket=BUCKET, Key=f"sources/{resp.json()['id']}/source")

            # Imports, pools and the first probe, on a small file; then the idle baseline that
            # every round's peak is held to (buffers kept between uploads count as growth).
            small = work / "small.mp4"
            make_video(small, 2 * MiB)
            api_put(small)
            idle = status_kib(api.pid, "VmRSS") / 1024
            for values in rss.values():
                values.clear()

            def api_form() -> None:
                with video.open("rb") as f:
                    files = {"file": ("big.mp4", f, "video/mp4")}
                    resp = http.post("/v1/videos", headers=headers, files=files)
                assert resp.status_code == 202, resp.text
                s3c.delete_object(Bucket=BUCKET, Key=f"sources/{resp.json()['id']}/source")

            def boto(client: Any) -> Callable[[], None]:
                def upload() -> None:
                    with video.open("rb") as f:
                        client.upload_fileobj(f, BUCKET, "bench/raw-upload")
                    s3c.delete_object(Bucket=BUCKET, Key="bench/raw-upload")

                return upload

            if args.profile:
                return profile(args.profile, api.pid, api_form if args.form else api_put)

            meter = Round({"api": api.pid, "s3": s3_popen.pid})
            sides: dict[str, Callable[[], dict[str, float]]] = {
                "api": lambda: meter.measure(api_put),
                "boto3": lambda: meter.measure(boto(s3c)),
            }
            if args.same_config:
                sides["boto3_same_config"] = lambda: meter.measure(boto(api_like_client(s3)))
            if args.form:
                sides["api_form"] = lambda: meter.measure(api_form)
            results = alternate(sides, args.rounds, warmup=1)
            for values in rss.values():
                del values[0]  # the warm-up round
    finally:
        api.terminate()
        api.wait(timeout=20)

    mib = size / MiB
    rounds: dict[str, list[float]] = {}
    for side, measured in results.items():
        for metric in measured[0]:
            rounds[f"{side}_{metric}"] = [m[metric] for m in measured]
    rounds["api_rss_before_mib"] = rss["before"]
    rounds["api_rss_growth_mib"] = rss["growth"]
    rounds["api_rss_peak_mib"] = rss["peak"]
    api_s, boto_s = median(rounds["api_seconds"]), median(rounds["boto3_seconds"])
    figures = {
        "size_mib": mib,
        "api_mib_per_s": mib / api_s,
        "boto3_mib_per_s": mib / boto_s,
        "ratio_api_to_boto3": boto_s / api_s,
        "api_rss_idle_mib": idle,
        "api_rss_peak_growth_from_idle_mib": max(rss["peak"]) - idle,
        "api_rss_growth_within_round_mib_max": max(rss["growth"]),
    }
    for side in results:
        for proc in ("api", "s3", "client"):
            figures[f"{side}_{proc}_cpu_s_median"] = median(rounds[f"{side}_{proc}_cpu"])
    if args.same_config:
        same_s = median(rounds["boto3_same_config_seconds"])
        figures["boto3_same_config_mib_per_s"] = mib / same_s
        figures["ratio_api_to_boto3_same_config"] = same_s / api_s
    if args.form:
        figures["api_form_mib_per_s"] = mib / median(rounds["api_form_seconds"])
        figures["ratio_api_form_to_boto3"] = boto_s / median(rounds["api_form_seconds"])
    path = recorder.write(
        goals=[
            Goal("ratio_api_to_boto3", ">=", 0.80),
            Goal("api_rss_peak_growth_from_idle_mib", "<", 100),
        ],
        figures=figures,
        method={
            "rounds": args.rounds,
            "warmup": "one unrecorded upload per side, same file",
            "statistic": "median of each side's rounds; ratio = median boto3 s / median API s",
            "rss": "idle: VmRSS after a 2 MiB warm-up upload; peak growth: the highest VmHWM of "
            "any round minus idle; within a round: VmHWM after minus VmRSS before (clear_refs)",
            "api": "PUT /v1/videos raw body via httpx, 1 MiB chunks, incl. ffprobe validation "
            "and the MongoDB record",
            "baseline": "boto3 upload_fileobj, default TransferConfig and client settings "
            "(over HTTP it hashes every part into the signature and adds a CRC32), same S3 "
            "server; with --same-config also boto3 with the API's client settings "
            "(UNSIGNED-PAYLOAD, checksums only when required)",
        },
        rounds=rounds,
        notes={"file": "1 s 320x240 H.264 video padded with zeros to the size"},
    )
    print(f"file {mib:.0f} MiB, {args.rounds} rounds per side, medians:")
    print(f"  API PUT /v1/videos : {api_s:6.2f} s {mib / api_s:7.1f} MiB/s")
    print(f"  boto3 upload_fileobj: {boto_s:6.2f} s {mib / boto_s:7.1f} MiB/s")
    if args.form:
        form_s = median(rounds["api_form_seconds"])
        print(f"  API POST (form)    : {form_s:6.2f} s {mib / form_s:7.1f} MiB/s")
    print(Recorder.summary(path))
    return 0


def profile(folder: Path, pid: int, upload: Callable[[], None]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    upload()  # warm-up
    out = folder / "api.txt"
    spy = subprocess.Popen([*py_spy_argv(out), "--pid", str(pid)], stdout=subprocess.DEVNULL)
    time.sleep(1)
    upload()
    spy.send_signal(signal.SIGINT)
    spy.wait(timeout=60)
    print(f"profile: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
