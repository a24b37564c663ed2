"""The API's logs: JSON lines on stdout (`vidpipe.logs`), uvicorn's own loggers routed into them."""

from __future__ import annotations

import logging
import sys

from vidpipe.logs import install_json_logging


def configure_logging(level: str) -> None:
    install_json_logging(sys.stdout, level)
    # uvicorn's access log prints full request lines; ours is the metrics and the app log.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
