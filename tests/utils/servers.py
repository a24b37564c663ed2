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
    from types_boto3_s3 import S3Client

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


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

    def client(self) -> S3Client:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
        )


@contextmanager
def _process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=out, stderr=out)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def s3_server(workdir: Path) -> Iterator[S3Server]:
    """versitygw with a posix backend: real S3 signatures, real multipart, data on disk."""
    data = workdir / "s3-data"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    access, secret = "test-" + secrets.token_hex(4), secrets.token_urlsafe(24)
    env = {"ROOT_ACCESS_KEY": access, "ROOT_SECRET_KEY": secret}
    argv = [str(_binary("versitygw")), "--port", f"127.0.0.1:{port}", "posix", str(data)]
    with _process(argv, env, workdir / "versitygw.log") as proc:
        wait_for_port(port, proc)
        yield S3Server(f"http://127.0.0.1:{port}", access, secret)


@contextmanager
def mongo_server(workdir: Path) -> Iterator[str]:
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
        *("--listen-addr", f"127.0.0.1:{port}"),
        # No state file, no debug/metrics listener (parallel sessions would share its port).
        *("--state-dir", "-", "--debug-addr", "-", "--telemetry", "disable", "--log-level", "warn"),
    ]
    with _process(argv, {}, workdir / "ferretdb.log") as proc:
        wait_for_port(port, proc)
        yield f"mongodb://127.0.0.1:{port}/"
