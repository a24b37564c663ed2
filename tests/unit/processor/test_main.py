"""Signals become one `Terminated` exception."""

from __future__ import annotations

import os
import signal

import pytest

from vidpipe_processor.errors import Terminated
from vidpipe_processor.main import termination_signals

pytestmark = pytest.mark.unit


def test_first_sigterm_raises_repeats_are_ignored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with termination_signals() as disarm:
        with pytest.raises(Terminated) as caught:
            os.kill(os.getpid(), signal.SIGTERM)
        assert caught.value.signum == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGTERM)  # cleanup is running: ignored
        disarm()
    assert signal.getsignal(signal.SIGTERM) == before


def test_disarmed_handler_never_raises() -> None:
    with termination_signals() as disarm:
        disarm()
        # Delivered synchronously to this thread: a handler that raised would fail the test here.
        os.kill(os.getpid(), signal.SIGINT)
        # ...and it was ours that ran: the default handler would have raised KeyboardInterrupt.
        assert signal.getsignal(signal.SIGINT) not in (signal.SIG_DFL, signal.default_int_handler)
