"""`vidpipe upload FILE [--wait]`, `vidpipe jobs`, `vidpipe watch ID`: the public API from a shell.

The base URL and API key come from `--url`/`--api-key` or `VIDPIPE_URL`/`VIDPIPE_API_KEY`; the
key goes only to the API, never to the presigned S3 URLs of a large upload.

Uploads stream from the file in 1 MiB chunks, so memory stays flat whatever the size: up to
`--multipart-threshold` (64 MiB) as one raw body (`PUT /v1/videos`), above it as a presigned
multipart session (`POST /v1/uploads`, each part PUT straight to S3, then completed): one
part in memory at a time, and a part that fails can be retried without sending the rest again.

Exit codes: 0 done (with `--wait`/`watch`: the job Succeeded); 1 the API refused the request or
the job did not succeed; 2 the API could not be reached; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import mimetypes
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
CHUNK = 1024 * 1024
MULTIPART_THRESHOLD = 64 * 1024 * 1024
TERMINAL = frozenset({"Succeeded", "Failed", "Cancelled"})
# Polling of `watch`: fast while the job moves, backing off to this while it does not.
POLL_MIN_SECONDS = 1.0
POLL_MAX_SECONDS = 5.0
# Part PUTs to S3 retried this many times before the upload is aborted.
PART_ATTEMPTS = 3


class ApiError(Exception):
    """A refusal in the API's error shape (`code`, `message`)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code


class Progress:
    """A bar on a terminal (redrawn in place); on anything else a line per 10 %."""

    WIDTH = 30

    def __init__(self, stream: TextIO, label: str, total: int, unit: str = "B") -> None:
        self.stream = stream
        self.label = label
        self.total = max(total, 1)
        self.unit = unit
        self.done = 0
        self.tty = stream.isatty()
        self._last_decile = -1

    def advance(self, amount: int) -> None:
        self.update(self.done + amount)

    def update(self, done: int, note: str = "") -> None:
        self.done = min(done, self.total)
        share = self.done / self.total
        if self.tty:
            filled = int(share * self.WIDTH)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            self.stream.write(f"\r{self.label} [{bar}] {share:6.1%} {self._amount()} {note}")
            self.stream.flush()
        elif int(share * 10) != self._last_decile:
            self._last_decile = int(share * 10)
            self.stream.write(f"{self.label} {share:.0%} {self._amount()} {note}\n".rstrip() + "\n")

    def finish(self, note: str = "") -> None:
        if self.tty:
            self.update(self.done, note)
            self.stream.write("\n")
        elif note:
            self.stream.write(f"{self.label} {note}\n")
        self.stream.flush()

    def _amount(self) -> str:
        if self.unit == "%":
            return ""
        return f"{self.done / 2**20:.1f}/{self.total / 2**20:.1f} MiB"


class Client:
    def __init__(self, url: str, key: str, timeout: float = 120.0) -> None:
        self.http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(timeout, connect=10.0),
        )
        # Presigned S3 URLs carry their own signature: the API key must never go there.
        self.s3 = httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0))

    def close(self) -> None:
        self.http.close()
        self.s3.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise api_error(response)
        return response.json() if response.content else None

    def jobs(self, phase: str | None, limit: int) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if phase:
            params["phase"] = phase
        items: list[dict[str, Any]] = self.call("GET", "/v1/jobs", params=params)["items"]
        return items

    def job(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.call("GET", f"/v1/jobs/{quote(job_id, safe='')}")
        return job

    def upload_raw(self, path: Path, params: dict[str, str], progress: Progress) -> dict[str, Any]:
        size = path.stat().st_size
        headers = {
            "Content-Type": content_type(path),
            "Content-Length": str(size),
            "X-Filename": quote(path.name),
        }
        job: dict[str, Any] = self.call(
            "PUT",
            "/v1/videos",
            params=params,
            headers=headers,
            content=file_chunks(path, 0, size, progress.advance),
        )
        return job

    def upload_presigned(
        self, path: Path, options: dict[str, Any], metadata: dict[str, str], progress: Progress
    ) -> dict[str, Any]:
        size = path.stat().st_size
        body: dict[str, Any] = {
            "sizeBytes": size,
            "filename": path.name,
            "contentType": content_type(path),
        }
        if options:
            body["options"] = options
        if metadata:
            body["metadata"] = metadata
        session = self.call("POST", "/v1/uploads", json=body)
        try:
            parts = []
            for part in session["parts"]:
                number = int(part["partNumber"])
                offset = (number - 1) * int(session["partSize"])
                length = min(int(session["partSize"]), size - offset)
                etag = self._put_part(part["url"], path, offset, length, progress)
                parts.append({"partNumber": number, "etag": etag})
            job: dict[str, Any] = self.call("POST", session["completeUrl"], json={"parts": parts})
            return job
        except BaseException:
            # Leave nothing behind: the API aborts the multipart upload and frees the session.
            # If this fails too, the API's reaper removes sessions nobody completes.
            with contextlib.suppress(httpx.HTTPError):
                self.http.delete(f"/v1/uploads/{session['uploadId']}")
            raise

    def _put_part(self, url: str, path: Path, offset: int, length: int, progress: Progress) -> str:
        for attempt in range(1, PART_ATTEMPTS + 1):
            start = progress.done
            try:
                response = self.s3.put(
                    url,
                    content=file_chunks(path, offset, length, progress.advance),
                    headers={"Content-Length": str(length)},
                )
                if response.status_code < 300:
                    return str(response.headers["ETag"])
                if response.status_code < 500 or attempt == PART_ATTEMPTS:
                    raise ApiError(response.status_code, "part_upload_failed", "S3 refused a part")
            except httpx.TransportError:
                if attempt == PART_ATTEMPTS:
                    raise
            progress.update(start)  # the retry sends the part again
            time.sleep(attempt)
        raise AssertionError("unreachable")


def api_error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
        return ApiError(response.status_code, str(body["code"]), str(body["message"]))
    except (ValueError, KeyError, TypeError):
        return ApiError(response.status_code, "http_error", f"HTTP {response.status_code}")


def content_type(path: Path) -> str:
    guessed = mimetypes.guess_type(path.name)[0] or ""
    return guessed if guessed.startswith("video/") else "application/octet-stream"


def file_chunks(
    path: Path, offset: int, length: int, on_chunk: Callable[[int], None]
) -> Iterator[bytes]:
    """`length` bytes of `path` from `offset`, CHUNK at a time: one chunk in memory."""
    with path.open("rb") as f:
        f.seek(offset)
        left = length
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                raise OSError(f"{path} shrank while it was being uploaded")
            left -= len(chunk)
            on_chunk(len(chunk))
            yield chunk


def renditions_option(value: str) -> list[dict[str, Any]]:
    """`480p,720p` as the options document's renditions (for presigned sessions, which take
    only the full `options` JSON; the raw upload takes the shorthand itself)."""
    out = []
    for item in (v.strip().lower() for v in value.split(",") if v.strip()):
        height = item.removesuffix("p")
        if not height.isdigit():
            raise SystemExit(f"vidpipe: rendition {item!r} is not like 720p")
        out.append({"name": f"{int(height)}p", "height": int(height)})
    return out


def parse_metadata(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"vidpipe: --metadata wants KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


# -- commands ----------------------------------------------------------------------------------


def cmd_upload(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    path: Path = args.file
    if not path.is_file():
        err.write(f"vidpipe: {path}: no such file\n")
        return 1
    size = path.stat().st_size
    metadata = parse_metadata(args.metadata)
    progress = Progress(err, f"upload {path.name}", size)
    if size > args.multipart_threshold:
        options: dict[str, Any] = {}
        if args.renditions:
            options["renditions"] = renditions_option(args.renditions)
        if args.formats:
            options["formats"] = [f.strip() for f in args.formats.split(",") if f.strip()]
        job = client.upload_presigned(path, options, metadata, progress)
    else:
        params = {"renditions": args.renditions, "formats": args.formats}
        clean = {k: v for k, v in params.items() if v}
        if metadata:
            clean["metadata"] = json.dumps(metadata)
        job = client.upload_raw(path, clean, progress)
    progress.finish("uploaded")
    out.write(f"{job['id']}\n")
    out.flush()
    if args.wait:
        return watch(client, job["id"], err, args.interval)
    return 0


def cmd_jobs(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    items = client.jobs(args.phase, args.limit)
    if args.json:
        out.write(json.dumps(items, indent=2) + "\n")
        return 0
    rows = [("ID", "PHASE", "PROGRESS", "CREATED", "FILE")]
    for job in items:
        rows.append(
            (
                str(job.get("id", "")),
                str(job.get("phase", "")),
                f"{job.get('progress', 0)}%",
                str(job.get("createdAt", ""))[:19],
                str(job.get("filename") or ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")
    return 0


def cmd_watch(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    return watch(client, args.job_id, err, args.interval, out)


def watch(
    client: Client,
    job_id: str,
    err: TextIO,
    interval: float = POLL_MIN_SECONDS,
    out: TextIO | None = None,
) -> int:
    """Poll the job until it ends, showing its phase and progress; 0 only if it Succeeded."""
    progress = Progress(err, job_id, 100, unit="%")
    delay = interval
    last: tuple[str, int] | None = None
    while True:
        job = client.job(job_id)
        phase, value = str(job.get("phase")), int(job.get("progress") or 0)
        progress.update(value, phase)
        if phase in TERMINAL:
            error = job.get("error") or {}
            note = phase + (f" ({error.get('code')}: {error.get('message')})" if error else "")
            progress.finish(note)
            if out is not None:
                out.write(f"{phase}\n")
            return 0 if phase == "Succeeded" else 1
        delay = interval if (phase, value) != last else min(delay * 1.5, POLL_MAX_SECONDS)
        last = (phase, value)
        time.sleep(delay)


# -- entry point -------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="vidpipe", description=__doc__.splitlines()[0])
    top.add_argument("--url", default=os.environ.get("VIDPIPE_URL", DEFAULT_URL))
    top.add_argument(
        "--api-key",
        default=os.environ.get("VIDPIPE_API_KEY"),
        help="API key (default: $VIDPIPE_API_KEY; a flag is visible to other local users)",
    )
    top.add_argument("--timeout", type=float, default=120.0, help="seconds per HTTP request")
    commands = top.add_subparsers(dest="command", required=True)

    upload = commands.add_parser("upload", help="upload a video; prints its job id")
    upload.add_argument("file", type=Path)
    upload.add_argument("--renditions", help="e.g. 480p,720p (default: the API's ladder)")
    upload.add_argument("--formats", help="hls, mp4 or hls,mp4 (default: both)")
    upload.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE")
    upload.add_argument("--wait", action="store_true", help="then watch the job until it ends")
    upload.add_argument("--interval", type=float, default=POLL_MIN_SECONDS, help=argparse.SUPPRESS)
    upload.add_argument(
        "--multipart-threshold",
        type=int,
        default=MULTIPART_THRESHOLD,
        help="bytes above which the file goes to S3 in presigned parts",
    )
    upload.set_defaults(run=cmd_upload)

    jobs = commands.add_parser("jobs", help="list your jobs, newest first")
    jobs.add_argument("--phase", choices=["Pending", "Running", "Succeeded", "Failed", "Cancelled"])
    jobs.add_argument("--limit", type=int, default=20)
    jobs.add_argument("--json", action="store_true", help="the API's JSON instead of a table")
    jobs.set_defaults(run=cmd_jobs)

    watch_cmd = commands.add_parser("watch", help="follow a job until it ends")
    watch_cmd.add_argument("job_id")
    watch_cmd.add_argument("--interval", type=float, default=POLL_MIN_SECONDS)
    watch_cmd.set_defaults(run=cmd_watch)
    return top


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = parser().parse_args(argv)
    if not args.api_key:
        err.write("vidpipe: no API key: set VIDPIPE_API_KEY or pass --api-key\n")
        return 2
    client = Client(args.url, args.api_key, args.timeout)
    try:
        code: int = args.run(client, args, out, err)
        return code
    except ApiError as exc:
        err.write(f"\nvidpipe: refused ({exc.status}): {exc}\n")
        return 1
    except httpx.TransportError as exc:
        err.write(f"\nvidpipe: cannot reach {args.url}: {type(exc).__name__}\n")
        return 2
    except KeyboardInterrupt:
        err.write("\nvidpipe: interrupted\n")
        return 130
    finally:
        client.close()
