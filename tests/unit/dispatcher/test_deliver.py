"""One attempt against small in-process servers: it connects to the checked address with the
URL's Host, never resolves twice, stops at its deadline and refuses oversized payloads."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.utils.httpstub import Server
from vidpipe.webhooks import AllowList
from vidpipe_dispatcher.deliver import MAX_BODY_BYTES, attempt

pytestmark = pytest.mark.unit

LOCAL = AllowList.parse(["127.0.0.1/32"])


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
