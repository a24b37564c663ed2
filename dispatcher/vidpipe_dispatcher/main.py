"""Entry point: `python -m vidpipe_dispatcher`. Serve metrics and /healthz, run the loop until
SIGTERM or SIGINT, then let the attempts in flight finish."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

from vidpipe.logs import install_json_logging
from vidpipe_dispatcher import metrics, store
from vidpipe_dispatcher.loop import Dispatcher
from vidpipe_dispatcher.settings import DispatcherSettings

log = logging.getLogger("vidpipe_dispatcher")


def main() -> int:
    settings = DispatcherSettings()
    install_json_logging(sys.stdout, settings.log_level)
    db = store.connect(
        settings.mongo_url.get_secret_value(), settings.mongo_database, settings.mongo_timeout_ms
    )
    dispatcher = Dispatcher(settings, db)
    if settings.metrics_port:
        metrics.serve(settings.metrics_port, dispatcher.alive)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("dispatcher started", extra={"replica": settings.replica_id})
    dispatcher.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
