"""HTTPS attempts against an in-process TLS server with a certificate from a test CA (made by
openssl, an external program: hence not a unit test)."""

from __future__ import annotations

import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.utils.httpstub import Server
from vidpipe.webhooks import AllowList
from vidpipe_dispatcher.deliver import attempt

pytestmark = pytest.mark.integration
LOCAL = AllowList.parse(["127.0.0.1/32"])


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
