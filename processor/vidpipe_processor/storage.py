"""S3 for the processor, through presigned URLs only: it holds no keys.

The operator writes a per-job Secret (mounted as a file) with one GET URL for the job's source and
one PUT URL per output the job may produce. Each URL allows one method on one key until it
expires, so this process cannot list, delete, read another job's source or write outside its own
prefix, whatever runs inside it.

Transfers are plain HTTP(S) with the standard library: the source is streamed to disk (resumed by
a Range request after a dropped connection), each output is streamed from disk in one PUT with its
Content-Length, several outputs at once. Memory stays at one buffer per transfer. Connection
errors, 5xx and throttling are retried with exponential backoff and jitter; what is left is a
StorageError, which the processor treats as retryable (the next Pod starts over).
Once the job's outcome is decided (SIGTERM, or another output failed), the uploads in flight are
abandoned at once rather than awaited: their sockets are shut down, and a PUT cut short stores
nothing, so only whole objects are ever left for the operator to remove.

A single PUT takes at most 5 GiB (an S3 limit; multipart would need a URL per part, and the part
count is unknown before encoding). A larger output fails the job with a non-retryable error.

URLs carry a signature: nothing here puts one in a message or a log line. Errors name the key.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import logging
import random
import re
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from vidpipe import keys
from vidpipe.errors import BadInput, ErrorCode
from vidpipe.models import VideoJobSpec
from vidpipe_processor.errors import InvalidJob, StorageError

log = logging.getLogger(__name__)

KiB, MiB, GiB = 1024, 1024 * 1024, 1024 * 1024 * 1024
MAX_PUT_BYTES = 5 * GiB  # S3's limit on one PutObject
BLOCK = 256 * KiB  # one read/send buffer per transfer
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # struct linger {on, 0 seconds}
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_ERROR_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")


class OutputTooLarge(BadInput):
    """An output exceeds what one presigned PUT can store; a rerun would make the same file."""

    def __init__(self, name: str, size: int) -> None:
        super().__init__(
            ErrorCode.OUTPUT_TOO_LARGE,
            f"output {name} is {size / GiB:.2f} GiB; one upload takes at most 5 GiB "
            "(ask for a lower bitrate or split the source)",
        )


@dataclass(frozen=True)
class ObjectURL:
    key: str
    url: str = field(repr=False)  # a credential: never in a repr, a message or a log


@dataclass(frozen=True)
class JobAccess:
    """The presigned URLs of one job, as the operator wrote them (operator/access.py)."""

    source: ObjectURL
    outputs: dict[str, ObjectURL]
    expires_at: str = ""
    # Where the outputs go: named here, not in the environment, as the URLs are bound to it.
    bucket: str = ""

    @classmethod
    def load(cls, path: Path, spec: VideoJobSpec) -> JobAccess:
        """Read and check the access file: every key must be the one this job may touch."""
        try:
            document: Any = json.loads(path.read_text())
            if (
                not isinstance(document, dict)
                or document.get("version") != keys.ACCESS_DOCUMENT_VERSION
            ):
                raise ValueError("unknown version")
            source = ObjectURL(str(document["source"]["key"]), str(document["source"]["url"]))
            outputs = {
                str(name): ObjectURL(str(entry["key"]), str(entry["url"]))
                for name, entry in dict(document["outputs"]).items()
            }
            bucket = str(document["outputBucket"])
        except FileNotFoundError as exc:
            raise InvalidJob(f"no S3 access file at {path} (the Job's Secret is missing)") from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Never the content: it holds the URLs.
            raise InvalidJob(f"unreadable S3 access file {path}: {type(exc).__name__}") from exc
        if source.key != spec.source.key:
            raise InvalidJob("the S3 access file is for another source object")
        for name, url in outputs.items():
            if url.key != keys.output_key(spec.job_id, name):
                raise InvalidJob(f"the S3 access file grants {url.key} for output {name}")
        return cls(source, outputs, str(document.get("expiresAt", "")), bucket)

    def output(self, name: str) -> ObjectURL:
        try:
            return self.outputs[name]
        except KeyError:
            # The operator presigns every name the spec allows; a miss is a version mismatch.
            raise InvalidJob(f"no upload URL for output {name}") from None


@dataclass(frozen=True)
class Upload:
    path: Path
    name: str
    content_type: str


@dataclass(frozen=True)
class TransferConfig:
    max_attempts: int = 10
    max_concurrency: int = 8
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    backoff_base: float = 0.25
    backoff_cap: float = 20.0


class _Retry(Exception):
    """A transient failure: worth another attempt."""


class _Abandoned(Exception):
    """The job's outcome is decided elsewhere (a signal, another upload failed): stop now."""


class _Counting:
    """A file reader that reports bytes as http.client pulls them, and stops when abandoned."""

    def __init__(
        self,
        handle: BinaryIO,
        on_bytes: Callable[[int], None] | None,
        abandoned: threading.Event,
    ) -> None:
        self._handle = handle
        self._on_bytes = on_bytes
        self._abandoned = abandoned
        self.sent = 0

    def read(self, size: int = -1) -> bytes:
        if self._abandoned.is_set():
            raise _Abandoned()
        data = self._handle.read(size)
        self.sent += len(data)
        if data and self._on_bytes:
            self._on_bytes(len(data))
        return data


class Storage:
    """Download the source and upload outputs through one job's presigned URLs."""

    def __init__(
        self,
        access: JobAccess,
        config: TransferConfig | None = None,
        *,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.access = access
        self.config = config or TransferConfig()
        self._abandoned = threading.Event()
        # Backoff waits end early when the transfers are abandoned.
        self._sleep = sleep or self._abandoned.wait
        self._tls = ssl.create_default_context()
        self._live: set[socket.socket] = set()
        self._live_lock = threading.Lock()

    def abandon(self) -> None:
        """Stop every transfer in flight: no new attempt, blocked sends and reads woken up.

        The sockets are reset, not closed gracefully: a graceful close would still deliver the
        body already queued in the kernel (megabytes), and the server could then store it.
        """
        with self._live_lock:
            self._abandoned.set()
            for sock in self._live:
                with contextlib.suppress(OSError):
                    # Linger 0: the close that follows (the owning thread's) sends RST and
                    # drops whatever is still queued; shutdown wakes that thread now.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
                    sock.shutdown(socket.SHUT_RDWR)

    @contextlib.contextmanager
    def _tracked(self, connection: http.client.HTTPConnection) -> Iterator[None]:
        """Connect, and keep the socket where `abandon` (another thread) can shut it down."""
        try:
            connection.connect()
            sock = connection.sock
            with self._live_lock:
                if self._abandoned.is_set():
                    raise _Abandoned()
                self._live.add(sock)
            try:
                yield
            finally:
                with self._live_lock:
                    self._live.discard(sock)
        finally:
            connection.close()

    # --- one HTTP exchange ------------------------------------------------------------------

    def _connection(self, url: str) -> tuple[http.client.HTTPConnection, str]:
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        timeout = self.config.connect_timeout
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.hostname or "",
                parts.port,
                timeout=timeout,
                context=self._tls,
                blocksize=BLOCK,
            )
        elif parts.scheme == "http":
            connection = http.client.HTTPConnection(
                parts.hostname or "", parts.port, timeout=timeout, blocksize=BLOCK
            )
        else:
            raise InvalidJob(f"unsupported URL scheme {parts.scheme!r} in the S3 access file")
        return connection, target

    def _attempts(self, action: str, once: Callable[[], Any]) -> Any:
        """Run `once` until it succeeds, a permanent error, or the attempts are spent."""
        last = ""
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                return once()
            except _Retry as exc:
                last = str(exc)
            except OSError as exc:  # the errno text only: never a URL
                last = f"{type(exc).__name__}: {exc.strerror or exc.errno or ''}".rstrip(": ")
            except http.client.HTTPException as exc:
                # Some (InvalidURL) quote the request target, signature included: type only.
                last = type(exc).__name__
            if self._abandoned.is_set():
                raise _Abandoned()  # the error is our own socket shutdown, not worth a retry
            if attempt < self.config.max_attempts:
                delay = min(self.config.backoff_cap, self.config.backoff_base * 2 ** (attempt - 1))
                delay *= random.uniform(0.5, 1.0)
                log.info(
                    "S3 transfer retried",
                    extra={"action": action, "attempt": attempt, "error": last},
                )
                self._sleep(delay)
        raise StorageError(f"{action} failed after {self.config.max_attempts} attempts: {last}")

    @staticmethod
    def _refusal(action: str, response: http.client.HTTPResponse) -> None:
        """Raise for a non-2xx answer: retry transient ones, fail on the rest."""
        body = response.read(4 * KiB)
        match = _ERROR_CODE.search(body)
        detail = f"HTTP {response.status} {match.group(1).decode() if match else response.reason}"
        if response.status in _RETRY_STATUSES:
            raise _Retry(detail)
        hint = " (the presigned URL may have expired)" if response.status == 403 else ""
        raise StorageError(f"{action} refused: {detail}{hint}")

    # --- source -----------------------------------------------------------------------------

    def download_source(
        self,
        dest: Path,
        on_size: Callable[[int], None] | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> int:
        """Stream the source to `dest`; returns its size. A dropped connection resumes where it
        stopped (Range), so a retry never re-downloads what is on disk."""
        source = self.access.source
        action = f"downloading {source.key}"
        state = {"size": -1}

        def once() -> int:
            have = dest.stat().st_size if dest.exists() and state["size"] >= 0 else 0
            if 0 <= state["size"] <= have:
                return have
            connection, target = self._connection(source.url)
            try:
                headers = {"Range": f"bytes={have}-"} if have else {}
                connection.request("GET", target, headers=headers)
                response = connection.getresponse()
                if response.status == 404:
                    raise StorageError(f"the source object {source.key} does not exist")
                if response.status not in (200, 206):
                    self._refusal(action, response)
                if response.status == 200:
                    have = 0  # the server ignored the range: start over
                length = int(response.headers.get("Content-Length") or 0)
                if state["size"] < 0:
                    state["size"] = have + length
                    if on_size:
                        on_size(state["size"])
                if connection.sock is not None:
                    connection.sock.settimeout(self.config.read_timeout)
                with dest.open("r+b" if have else "wb") as out:
                    out.seek(have)
                    out.truncate()
                    while chunk := response.read(BLOCK):
                        out.write(chunk)
                        if on_bytes:
                            on_bytes(len(chunk))
                got = dest.stat().st_size
                if got != state["size"]:
                    raise _Retry(f"connection closed at byte {got} of {state['size']}")
                return got
            finally:
                connection.close()

        size: int = self._attempts(action, once)
        return size

    # --- outputs ----------------------------------------------------------------------------

    def _put(
        self,
        target_url: ObjectURL,
        size: int,
        content_type: str,
        opener: Callable[[], BinaryIO],
        on_bytes: Callable[[int], None] | None,
    ) -> None:
        action = f"uploading {target_url.key}"

        def once() -> None:
            connection, target = self._connection(target_url.url)
            with opener() as handle, self._tracked(connection):
                body = _Counting(handle, on_bytes, self._abandoned)
                try:
                    connection.request(
                        "PUT",
                        target,
                        body=body,  # any object with read() is streamed
                        headers={"Content-Length": str(size), "Content-Type": content_type},
                    )
                    if connection.sock is not None:
                        connection.sock.settimeout(self.config.read_timeout)
                    response = connection.getresponse()
                    if not 200 <= response.status < 300:
                        self._refusal(action, response)
                    response.read()
                except BaseException:
                    if on_bytes and body.sent:
                        on_bytes(-body.sent)  # progress must not count a failed attempt
                    raise

        self._attempts(action, once)

    def upload_all(
        self, uploads: Iterable[Upload], on_bytes: Callable[[int], None] | None = None
    ) -> list[str]:
        """Upload every file, several at once; returns the keys written."""
        jobs = [(u, self.access.output(u.name), u.path.stat().st_size) for u in uploads]
        # Checked before anything is sent: a job either fits or writes nothing.
        for upload, _, size in jobs:
            if size > MAX_PUT_BYTES:
                raise OutputTooLarge(upload.name, size)
        workers = max(1, min(self.config.max_concurrency, len(jobs)))
        pool = ThreadPoolExecutor(workers, thread_name_prefix="upload")
        try:
            futures = [
                pool.submit(
                    self._put,
                    url,
                    size,
                    upload.content_type,
                    _reader(upload.path),
                    on_bytes,
                )
                for upload, url, size in jobs
            ]
            for future in as_completed(futures):
                future.result()
        except BaseException:
            # One upload failed, or SIGTERM raised `Terminated` here: waiting for the others
            # would spend the Pod's grace period on outputs the operator is about to delete.
            self.abandon()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return [url.key for _, url, _ in jobs]

    def put_bytes(self, name: str, body: bytes, content_type: str) -> str:
        """Upload a small document (the manifest); returns its key."""
        url = self.access.output(name)
        self._put(url, len(body), content_type, lambda: io.BytesIO(body), None)
        return url.key


def _reader(path: Path) -> Callable[[], BinaryIO]:
    return lambda: path.open("rb")
