"""Start the real S3 (versitygw) and MongoDB-protocol (FerretDB) servers for one test session.

The binaries are built by `make tools` into `bin/`; a missing binary fails loudly rather than
skipping, because these tests are the proof that our code works against the real protocols.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botocore.config import Config
    from types_boto3_s3 import S3Client

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0, host: str = "127.0.0.1"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def _binary(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make tools` first")
    return path


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def client(self, config: Config | None = None) -> S3Client:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=config,
        )


class ServerProcess:
    """One real server process that a test can stop and start again on the same port and data.

    Outage tests stop the real process (SIGTERM, or SIGKILL for a crash) rather than swapping the
    code's internals for a dead address: the code under test keeps its connections, pools and
    URLs, exactly as in production when a dependency goes away and comes back.
    """

    def __init__(
        self, argv: list[str], env: dict[str, str], log: Path, host: str, port: int
    ) -> None:
        self.argv, self.env, self.log, self.host, self.port = argv, env, log, host, port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, env={**os.environ, **self.env}, stdout=out, stderr=out
            )
        wait_for_port(self.port, self.proc, host=self.host)

    def stop(self, *, crash: bool = False) -> None:
        """Stop the server; `crash` kills it with SIGKILL, as an OOM kill or node loss would."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if crash:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    @contextmanager
    def down(self, *, crash: bool = False) -> Iterator[None]:
        """The server is unreachable inside the block and serving again after it."""
        self.stop(crash=crash)
        try:
            yield
        finally:
            self.start()


@contextmanager
def _running(server: ServerProcess) -> Iterator[ServerProcess]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


def s3_process(workdir: Path, host: str = "127.0.0.1") -> tuple[S3Server, ServerProcess]:
    """versitygw with a posix backend: real S3 signatures, real multipart, data on disk.

    `host` is the listen address: Pods reach a server on the cluster bridge address, not loopback.
    """
    data = workdir / "s3-data"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    access, secret = "test-" + secrets.token_hex(4), secrets.token_urlsafe(24)
    env = {"ROOT_ACCESS_KEY": access, "ROOT_SECRET_KEY": secret}
    argv = [str(_binary("versitygw")), "--port", f"{host}:{port}", "posix", str(data)]
    server = ServerProcess(argv, env, workdir / "versitygw.log", host, port)
    return S3Server(f"http://{host}:{port}", access, secret), server


def mongo_process(workdir: Path, host: str = "127.0.0.1") -> tuple[str, ServerProcess]:
    """FerretDB on SQLite: the MongoDB wire protocol pymongo speaks in production.

    Without authentication, unlike the local cluster's (tests/security/test_mongo_auth.py): these
    servers listen on loopback for one test session, and the code under test only ever sees a URL.
    """
    port = free_port()
    data = workdir / "ferretdb-data"
    data.mkdir(parents=True, exist_ok=True)
    argv = [
        str(_binary("ferretdb")),
        *("--handler", "sqlite", "--sqlite-url", f"file:{data}/"),
        *("--listen-addr", f"{host}:{port}"),
        # No state file, no debug/metrics listener (parallel sessions would share its port).
        *("--state-dir", "-", "--debug-addr", "-", "--telemetry", "disable", "--log-level", "warn"),
    ]
    server = ServerProcess(argv, {}, workdir / "ferretdb.log", host, port)
    return f"mongodb://{host}:{port}/", server


@contextmanager
def s3_server(workdir: Path) -> Iterator[S3Server]:
    s3, process = s3_process(workdir)
    with _running(process):
        yield s3


@contextmanager
def mongo_server(workdir: Path) -> Iterator[str]:
    url, process = mongo_process(workdir)
    with _running(process):
        yield url
