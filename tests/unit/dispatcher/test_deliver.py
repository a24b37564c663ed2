"""One attempt against small in-process servers: it connects to the checked address with the
URL's Host, never resolves twice, stops at its deadline and refuses oversized payloads."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vidpipe_dispatcher.deliver import MAX_BODY_BYTES, attempt
from vidpipe_dispatcher.ssrf import AllowList

pytestmark = pytest.mark.unit

LOCAL = AllowList.parse(["127.0.0.1/32"])


class Server:
    """Accepts connections on 127.0.0.1 and answers each with `reply(conn, request_bytes)`."""

    def __init__(self, reply: Any, tls: ssl.SSLContext | None = None) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.tls = tls
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self.reply = reply
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
                if self.tls is not None:
                    conn = self.tls.wrap_socket(conn, server_side=True)
            except ssl.SSLError:
                continue  # the client refused our certificate
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + body)
                with contextlib.suppress(OSError):  # the client hung up: its choice
                    self.reply(conn)


@pytest.fixture
def ok() -> Iterator[Server]:
    server = Server(lambda c: c.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"))
    yield server
    server.sock.close()


def test_connects_to_the_checked_address_with_the_urls_host_and_resolves_once(ok: Server) -> None:
    # Fails if the attempt looked the name up again (DNS rebinding) or sent another Host.
    lookups: list[str] = []

    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    result = attempt(
        f"http://hooks.example.com:{ok.port}/in?x=1",
        b"{}",
        {"webhook-id": "evt_1"},
        allow=LOCAL,
        timeout=5,
        resolve=resolve,
    )
    assert result.status == 204 and result.error is None
    assert lookups == ["hooks.example.com"]
    (request,) = ok.requests
    assert request.startswith(b"POST /in?x=1 HTTP/1.1\r\n")
    assert f"host: hooks.example.com:{ok.port}\r\n".encode() in request.lower()
    assert b"webhook-id: evt_1\r\n" in request


def test_an_oversized_payload_is_refused_without_connecting(ok: Server) -> None:
    # Fails if a body of 20 KiB or more were sent.
    result = attempt(
        f"http://127.0.0.1:{ok.port}/", b"x" * MAX_BODY_BYTES, {}, allow=LOCAL, timeout=5
    )
    assert result.refused and result.error is not None and "20 KiB" in result.error
    assert ok.requests == []


def test_a_trickling_receiver_is_cut_off_at_the_deadline() -> None:
    # Fails if a receiver sending a byte a second could hold the attempt past its timeout
    # (each read would succeed, so only an overall deadline stops it).
    def trickle(conn: socket.socket) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 60:
            conn.sendall(bytes([byte]))
            time.sleep(0.5)

    server = Server(trickle)
    started = time.monotonic()
    result = attempt(f"http://127.0.0.1:{server.port}/", b"{}", {}, allow=LOCAL, timeout=2)
    assert time.monotonic() - started < 15
    assert result.status is None and result.error is not None and "timed out" in result.error
    server.sock.close()


def test_a_huge_answer_is_not_read_in_full() -> None:
    # Fails if the attempt waited for a 50 MB answer to end (it reads 4 KiB, then hangs up).
    def huge(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 50000000\r\n\r\n")
        chunk = b"x" * 65536
        for _ in range(800):
            conn.sendall(chunk)

    server = Server(huge)
    result = attempt(f"http://127.0.0.1:{server.port}/", b"{}", {}, allow=LOCAL, timeout=10)
    assert result.status == 200 and result.error is None
    server.sock.close()


def test_a_redirect_is_reported_not_followed(ok: Server) -> None:
    # Fails if a 3xx counted as success or were followed to its Location.
    server = Server(
        lambda c: c.sendall(
            b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:"
            + str(ok.port).encode()
            + b"/\r\nContent-Length: 0\r\n\r\n"
        )
    )
    result = attempt(f"http://127.0.0.1:{server.port}/", b"{}", {}, allow=LOCAL, timeout=5)
    assert result.status == 307
    assert result.error == f"redirect to http://127.0.0.1:{ok.port}/ not followed"
    assert ok.requests == []
    server.sock.close()


def _pki(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for hooks.example.com (openssl, which deps.sh installs)."""

    def run(*argv: str) -> None:
        subprocess.run(["openssl", *argv], check=True, capture_output=True, cwd=tmp)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=test CA",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=hooks.example.com",
    )
    (tmp / "ext").write_text("subjectAltName=DNS:hooks.example.com\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.pem", "-days", "1", "-extfile", "ext")  # fmt: skip
    return tmp / "ca.pem", tmp / "srv.pem", tmp / "srv.key"


def test_https_sends_the_urls_name_as_sni_and_checks_the_certificate_against_it(
    tmp_path: Path,
) -> None:
    # Fails if TLS went to the checked IP without the host name (no SNI, or the certificate
    # checked against the IP), or if a certificate for another name were accepted.
    ca, cert, key = _pki(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)
    tls = Server(lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), context)

    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    def post(host: str) -> Any:
        return attempt(f"https://{host}:{tls.port}/h", b"{}", {}, allow=LOCAL, timeout=5,
                       ca_file=str(ca), resolve=resolve)  # fmt: skip

    good = post("hooks.example.com")
    assert good.status == 200 and good.error is None
    assert names == ["hooks.example.com"]
    wrong = post("other.example.com")
    assert wrong.status is None and wrong.error is not None
    assert "certificate" in wrong.error.lower() or "hostname" in wrong.error.lower()
    assert len(tls.requests) == 1
    tls.sock.close()
