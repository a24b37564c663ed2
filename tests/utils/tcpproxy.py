"""A TCP relay in front of a real server, for the faults a test needs on a real connection: bytes
slowed in one direction, a request or its answer held, the server unreachable and back again.

It only relays bytes (TLS passes through untouched) and reads nothing but the head of each
request (its first line and Content-Length), so client and server speak their real protocol.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

CHUNK = 64 * 1024
SLOW_CHUNK = 4 * 1024
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # struct linger {on, 0 s}: close() sends RST


@dataclass
class Relay:
    """One client connection: its latest request's head and how many bytes went each way.

    HTTP/1.1 clients send a connection's next request only after reading the last answer, so
    upstream bytes that follow answer bytes start a new head.
    """

    head: bytes = b""
    up: int = 0  # client -> server, all requests
    down: int = 0  # server -> client
    closed: bool = False
    cut: bool = False  # reset (by a peer or `down`) rather than ended cleanly
    sockets: list[socket.socket] = field(default_factory=list, repr=False)
    _up_at_head: int = 0
    _down_at_head: int = 0

    def saw_upstream(self, data: bytes) -> None:
        if self.head_complete and self.down > self._down_at_head:
            self.head, self._up_at_head, self._down_at_head = b"", self.up, self.down
        if not self.head_complete:
            self.head += data[:8192]

    @property
    def request_line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")

    @property
    def method(self) -> str:
        return self.request_line.split(" ", 1)[0]

    @property
    def head_complete(self) -> bool:
        return b"\r\n\r\n" in self.head

    @property
    def content_length(self) -> int | None:
        for line in self.head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                return int(value.strip())
        return None

    @property
    def body_sent(self) -> int:
        """Body bytes of the latest request relayed to the server so far."""
        if not self.head_complete:
            return 0
        return max(0, self.up - self._up_at_head - (self.head.index(b"\r\n\r\n") + 4))


class TcpProxy:
    """Relay 127.0.0.1:<port> to `target`; `up_rate`/`down_rate` slow each direction (bytes/s).

    `hold_request(relay)` / `hold_response(relay)`, checked once a request's head is read, stop
    forwarding that connection's request (the server never sees it) or its answer (the server
    acted, the client never hears) until `release()` or `down()`.
    """

    def __init__(
        self,
        target: tuple[str, int],
        *,
        up_rate: float | None = None,
        down_rate: float | None = None,
    ) -> None:
        self.target = target
        self.up_rate, self.down_rate = up_rate, down_rate
        self.hold_request: Callable[[Relay], bool] | None = None
        self.hold_response: Callable[[Relay], bool] | None = None
        self.relays: list[Relay] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._listener: socket.socket | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Listen (again, on the same port after `down`) and relay new connections."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._released.clear()
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """The server becomes unreachable: new connections are refused, open ones reset."""
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown wakes the thread blocked in accept(); close alone does not on Linux.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            for relay in self.relays:
                self._reset(relay)
        self._released.set()

    def release(self) -> None:
        self._released.set()

    @contextlib.contextmanager
    def running(self) -> Iterator[TcpProxy]:
        self.start()
        try:
            yield self
        finally:
            self.down()

    # -- relaying ------------------------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # down()
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            relay = Relay(sockets=[client, server])
            with self._lock:
                self.relays.append(relay)
            done = threading.Barrier(2, action=functools.partial(self._close, relay))
            threading.Thread(
                target=self._pump, args=(relay, client, server, True, done), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(relay, server, client, False, done), daemon=True
            ).start()

    def _pump(
        self,
        relay: Relay,
        source: socket.socket,
        sink: socket.socket,
        upstream: bool,
        done: threading.Barrier,
    ) -> None:
        rate = self.up_rate if upstream else self.down_rate
        hold = self.hold_request if upstream else self.hold_response
        clean = False
        try:
            while data := source.recv(SLOW_CHUNK if rate else CHUNK):
                if upstream:
                    relay.saw_upstream(data)
                if self._held(relay, hold):
                    self._released.wait()
                    if relay.cut:
                        break  # down(): what was held is never delivered
                sink.sendall(data)
                if upstream:
                    relay.up += len(data)
                else:
                    relay.down += len(data)
                if rate:
                    time.sleep(len(data) / rate)
            clean = not relay.cut
        except OSError:
            pass
        finally:
            if clean:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)  # end of stream: pass the FIN on
            else:
                # A reset stays a reset on the other side, as on a direct connection: a FIN
                # would tell the server that a cut-off request body ended cleanly.
                self._reset(relay)
            with contextlib.suppress(threading.BrokenBarrierError):
                done.wait(timeout=600)

    @staticmethod
    def _reset(relay: Relay) -> None:
        relay.cut = True
        for sock in relay.sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
                sock.shutdown(socket.SHUT_RD)  # wakes a pump blocked in recv, sends nothing

    def _held(self, relay: Relay, rule: Callable[[Relay], bool] | None) -> bool:
        return (
            rule is not None and relay.head_complete and not self._released.is_set() and rule(relay)
        )

    @staticmethod
    def _close(relay: Relay) -> None:
        relay.closed = True
        for sock in relay.sockets:
            sock.close()
