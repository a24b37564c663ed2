"""A tiny in-process HTTP(S) server for client tests: each connection gets one request read and
one scripted reply (`reply(conn)`), so a test can answer in ways a real server would not
(trickling bytes, endless bodies, redirects)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable


class Server:
    """Accepts connections on 127.0.0.1 (TLS with `tls`), records each request and answers it
    with `reply(conn)`."""

    def __init__(
        self, reply: Callable[[socket.socket], object], tls: ssl.SSLContext | None = None
    ) -> None:
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
