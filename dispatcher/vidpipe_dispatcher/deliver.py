"""One delivery attempt: check the URL, connect to the checked address, POST, read a little.

The connection goes to the address ssrf.check approved (no second lookup), while TLS sends the
URL's host name as SNI and checks the certificate against it, and the Host header carries it:
to the receiver this is an ordinary request to its name. Redirects are never followed (a 3xx
is a failed attempt that says where it pointed), the whole attempt is bounded by one deadline
(a receiver trickling bytes cannot hold a worker), and only the first bytes of the answer are
read, none of which is logged.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from dataclasses import dataclass
from typing import Final

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError

from vidpipe.webhooks import AllowList
from vidpipe_dispatcher.ssrf import Refused, Resolver, Target, check

# Standard Webhooks: payloads should stay under 20 kB.
MAX_BODY_BYTES: Final = 20 * 1024
# Enough to tell an error page from a JSON answer; the body is read only to free the connection.
RESPONSE_READ_BYTES: Final = 4096
USER_AGENT: Final = "vidpipe-webhooks/1"


@dataclass(frozen=True)
class Result:
    status: int | None = None  # None: no HTTP answer
    latency_s: float | None = None
    error: str | None = None
    retry_after: str | None = None  # the raw header, parsed by schedule.parse_retry_after
    refused: bool = False  # the SSRF policy (or the size limit) refused: never sent


def _connection(
    target: Target, address: str, timeout: float, ca_file: str | None
) -> HTTPConnection:
    if target.scheme == "https":
        return HTTPSConnection(
            address,
            target.port,
            timeout=timeout,
            server_hostname=target.host,  # SNI
            assert_hostname=target.host,  # the certificate must name the URL's host
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_file,  # None: the system's CAs
        )
    return HTTPConnection(address, target.port, timeout=timeout)


def _abort(conn: HTTPConnection) -> None:
    """At the deadline: unblock a read stuck on a trickling receiver."""
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed: nothing to unblock
            sock.shutdown(socket.SHUT_RDWR)


def attempt(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    allow: AllowList,
    timeout: float,
    ca_file: str | None = None,
    resolve: Resolver = socket.getaddrinfo,
) -> Result:
    """POST `body` to `url` once; never raises for anything the receiver or network does."""
    if len(body) >= MAX_BODY_BYTES:
        return Result(error=f"payload of {len(body)} bytes is over the 20 KiB limit", refused=True)
    try:
        target, address = check(url, allow, resolve)
    except Refused as exc:
        return Result(error=f"refused: {exc}", refused=True)
    started = time.monotonic()
    conn = _connection(target, address, timeout, ca_file)
    timer = threading.Timer(timeout, _abort, (conn,))
    timer.daemon = True
    timer.start()
    try:
        conn.request(
            "POST",
            target.path,
            body=body,
            headers={
                **headers,
                "Host": target.host_header,
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            },
            preload_content=False,
        )
        response = conn.getresponse()
        response.read(RESPONSE_READ_BYTES)  # bounded: the rest is dropped with the socket
        latency = time.monotonic() - started
        status = response.status
        error = None
        if 300 <= status < 400:
            # Where it pointed helps the tenant fix the URL; following it could reach anywhere.
            error = f"redirect to {response.headers.get('Location', '?')[:200]} not followed"
        elif not 200 <= status < 300:
            error = f"HTTP {status}"
        return Result(status, latency, error, response.headers.get("Retry-After"))
    # ValueError: urllib3's CertificateError (a certificate for another name) is one.
    except (OSError, HTTPError, http.client.HTTPException, ValueError) as exc:
        late = time.monotonic() - started >= timeout
        why = f"timed out after {timeout:g} s" if late else f"{type(exc).__name__}: {exc}"
        return Result(latency_s=time.monotonic() - started, error=why[:300])
    finally:
        timer.cancel()
        conn.close()
