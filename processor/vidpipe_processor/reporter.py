"""Where progress goes: structured log lines always, and the VideoJob's `status.progress` when the
processor runs in a cluster.

The Kubernetes reporter is a plain HTTPS PATCH (server-side apply of one field, under its own
field manager) with the Pod's service-account token, so the image needs no Kubernetes client
library. Reporting is best effort: a failed update is logged and never fails the job.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, urlencode

from vidpipe.constants import API_VERSION, FIELD_MANAGER_PROCESSOR, KIND, PLURAL

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_MIN_INTERVAL_SECONDS = 2.0


class ProgressReporter(Protocol):
    """Receives the job's overall progress (0..100, rising); `close` flushes what is pending."""

    def report(self, percent: int) -> None: ...

    def close(self) -> None: ...


class LoggingReporter:
    """One JSON log line per new value, for `kubectl logs` and log pipelines."""

    def report(self, percent: int) -> None:
        log.info("progress", extra={"progress": percent})

    def close(self) -> None:
        return None


class FanoutReporter:
    def __init__(self, *reporters: ProgressReporter) -> None:
        self._reporters = reporters

    def report(self, percent: int) -> None:
        for reporter in self._reporters:
            reporter.report(percent)

    def close(self) -> None:
        for reporter in self._reporters:
            reporter.close()


class Throttle:
    """Decides when a rising value is worth sending: at most one send per interval, except 100.

    Values that arrive too soon are kept as pending and sent by the next report or by `flush`.
    """

    def __init__(self, min_interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._min_interval = min_interval
        self._clock = clock
        self._last_time: float | None = None
        self.sent = -1
        self.pending: int | None = None

    def offer(self, value: int) -> int | None:
        """The value to send now, or None to wait."""
        if value <= max(self.sent, self.pending or -1):
            return None
        now = self._clock()
        if (
            value < 100
            and self._last_time is not None
            and now - self._last_time < self._min_interval
        ):
            self.pending = value
            return None
        return self._take(value, now)

    def flush(self) -> int | None:
        if self.pending is None or self.pending <= self.sent:
            return None
        return self._take(self.pending, self._clock())

    def _take(self, value: int, now: float) -> int:
        self._last_time = now
        self.sent = value
        self.pending = None
        return value


class KubernetesReporter:
    """Server-side apply of `status.progress` on the processor's own VideoJob."""

    def __init__(
        self,
        api_url: str,
        namespace: str,
        name: str,
        *,
        token_path: Path = SERVICE_ACCOUNT_DIR / "token",
        ca_path: Path | None = SERVICE_ACCOUNT_DIR / "ca.crt",
        min_interval: float = DEFAULT_MIN_INTERVAL_SECONDS,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = name
        self._url = (
            f"{api_url.rstrip('/')}/apis/{API_VERSION}/namespaces/{quote(namespace, safe='')}"
            f"/{PLURAL}/{quote(name, safe='')}/status?"
            + urlencode({"fieldManager": FIELD_MANAGER_PROCESSOR, "force": "true"})
        )
        self._token_path = token_path
        self._context: ssl.SSLContext | None = None
        self._disabled = False
        if api_url.startswith("https://") and ca_path is not None:
            try:
                self._context = ssl.create_default_context(cafile=str(ca_path))
            except (OSError, ssl.SSLError) as exc:
                # No CA, no trusted connection: give up on this transport, never on the job.
                self._disabled = True
                log.warning(
                    "progress to the VideoJob disabled: cannot load the cluster CA",
                    extra={"path": str(ca_path), "error": _describe(exc)},
                )
        self._timeout = timeout
        self._throttle = Throttle(min_interval, clock)
        self._lock = threading.Lock()
        self._failures = 0

    @property
    def url(self) -> str:
        return self._url

    def body(self, percent: int) -> bytes:
        # An apply patch names the object and holds only the fields this manager owns. JSON is
        # valid YAML, which is what the apply-patch content type expects.
        document = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": self._name},
            "status": {"progress": percent},
        }
        return json.dumps(document, separators=(",", ":")).encode()

    def report(self, percent: int) -> None:
        if self._disabled:
            return
        with self._lock:
            value = self._throttle.offer(percent)
            if value is not None:
                self._send(value)

    def close(self) -> None:
        if self._disabled:
            return
        with self._lock:
            value = self._throttle.flush()
            if value is not None:
                self._send(value)

    def _send(self, percent: int) -> None:
        try:
            # Re-read on every call: projected service-account tokens are rotated by the kubelet.
            token = self._token_path.read_text().strip()
            request = urllib.request.Request(
                self._url,
                data=self.body(percent),
                method="PATCH",
                headers={
                    "Content-Type": "application/apply-patch+yaml",
                    "Accept": "application/json",
                    "Authorization": f"Bearer {token}",
                    "User-Agent": FIELD_MANAGER_PROCESSOR,
                },
            )
            with urllib.request.urlopen(
                request, timeout=self._timeout, context=self._context
            ) as response:
                response.read()
        except (OSError, urllib.error.URLError, ValueError) as exc:
            self._failures += 1
            # Warn once, then quietly: a missing RBAC rule should not flood the logs.
            level = logging.WARNING if self._failures == 1 else logging.DEBUG
            log.log(
                level,
                "progress update to the VideoJob failed",
                extra={"progress": percent, "error": _describe(exc)},
            )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"
