"""The processor's logs: JSON lines (`vidpipe.logs`) on stderr, which is what `kubectl logs` and
log pipelines expect, each carrying the job id once it is known.
"""

from __future__ import annotations

import logging
import sys

from vidpipe.logs import JsonFormatter, install_json_logging

# Libraries that log request details (URLs, signed headers) at DEBUG stay at WARNING.
_QUIET = ("botocore", "boto3", "s3transfer", "urllib3")


def configure_logging(level: str = "INFO", job_id: str | None = None) -> None:
    install_json_logging(sys.stderr, level, job_id)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


def set_job_id(job_id: str) -> None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, JsonFormatter):
            handler.formatter.job_id = job_id
