"""A hand-driven HTTP/1.1 request over a plain socket: send the head and the body in pieces, at the
pace a test chooses, to act like a client that stalls, trickles or never finishes its body."""

from __future__ import annotations

import http.client
import json
import select
import socket
from typing import Any
from urllib.parse import urlsplit


class RawRequest:
    def __init__(
        self,
        base_url: str,
        method: str,
        path: str,
        headers: dict[str, str],
        content_length: int,
        timeout: float = 30.0,
    ) -> None:
        parts = urlsplit(base_url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        self.sock = socket.create_connection((host, port), timeout=timeout)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"Content-Length: {content_length}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.sent = 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.sent += len(data)

    def try_send(self, data: bytes) -> bool:
        """Send if the server still reads; False once it has closed the connection."""
        try:
            self.send(data)
        except OSError:
            return False
        return True

    def answered(self) -> bool:
        """The server has sent something (its answer) that we have not read yet."""
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def response(self, timeout: float = 30.0) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Status, headers (lower-case names) and JSON body of the server's answer."""
        self.sock.settimeout(timeout)
        resp = http.client.HTTPResponse(self.sock)
        resp.begin()
        body = resp.read()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        return resp.status, headers, json.loads(body) if body else {}

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawRequest:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def multipart_head(boundary: str, fields: list[tuple[str, str]], filename: str = "v.mp4") -> bytes:
    """The form's text fields, then the file part's headers (its content follows)."""
    out = b""
    for name, value in fields:
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    out += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    return out


def multipart_tail(boundary: str) -> bytes:
    return f"\r\n--{boundary}--\r\n".encode()
