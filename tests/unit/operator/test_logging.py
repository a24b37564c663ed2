"""What the operator logs per watch event."""

from __future__ import annotations

import logging

import pytest

from vidpipe_operator.main import QuietHandlerSuccess

pytestmark = pytest.mark.unit


def record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)


def test_only_kopfs_per_event_success_lines_are_dropped() -> None:
    # Fails if kopf's "Handler ... succeeded." line per watch event reaches the log (50,000
    # lines a run at 10,000 VideoJobs), or if anything else is dropped with it: a handler's
    # failure, or a line of ours that happens to mention a handler.
    quiet = QuietHandlerSuccess()
    assert not quiet.filter(record("Handler 'watch_event' succeeded."))
    assert quiet.filter(record("Handler 'watch_event' failed with an exception. Will retry."))
    assert quiet.filter(record("created Job vj-1"))
    assert quiet.filter(record("Handler 'watch_event' succeeded. Then something else"))
