"""What the operator logs: JSON lines in the shape of every component, kopf's included."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import kopf
import pytest

from vidpipe_operator.logs import QuietHandlerSuccess, configure_logging, videojob_logger

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


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root, kopf_objects = logging.getLogger(), logging.getLogger("kopf.objects")
    saved = root.handlers[:], root.level, kopf_objects.filters[:]
    stream = io.StringIO()
    configure_logging("INFO", stream)
    yield stream
    root.handlers[:], kopf_objects.filters[:] = saved[0], saved[2]
    root.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


BODY = kopf.Body(
    {
        "apiVersion": "vidpipe.io/v1alpha1",
        "kind": "VideoJob",
        "metadata": {"name": "vj-1", "namespace": "media", "uid": "u-1"},
    }
)


def test_kopfs_object_lines_are_json_with_the_object_and_without_kopfs_internals(
    captured: io.StringIO,
) -> None:
    # Fails if the operator logs plain text, if kopf's per-object line loses which VideoJob it
    # is about, or if kopf's extras leak in (its whole settings object, printed on every line).
    logger = kopf.ObjectLogger(body=BODY, settings=kopf.OperatorSettings())
    logger.warning("Patching failed with inconsistencies: %s", "x")
    logging.getLogger("vidpipe_operator.controller").info("created Job vj-1")
    kopf_line, our_line = lines(captured)
    assert kopf_line["level"] == "warning" and kopf_line["logger"] == "kopf.objects"
    assert kopf_line["message"] == "Patching failed with inconsistencies: x"
    assert (kopf_line["kind"], kopf_line["namespace"], kopf_line["object"]) == (
        "VideoJob", "media", "vj-1"
    )  # fmt: skip
    assert not {"settings", "k8s_skip", "k8s_ref"} & set(kopf_line)
    assert our_line["message"] == "created Job vj-1" and "kind" not in our_line


def test_the_success_line_per_watch_event_is_dropped_from_the_json_log(
    captured: io.StringIO,
) -> None:
    # Fails if configure_logging does not install the filter on kopf's logger (the line kopf
    # writes through its local object logger for each handled event comes through).
    logger = kopf.LocalObjectLogger(body=BODY, settings=kopf.OperatorSettings())
    logger.info("Handler 'watch_event' succeeded.")
    logger.error("Handler 'watch_event' failed with an exception. Will retry.")
    assert [line["message"] for line in lines(captured)] == [
        "Handler 'watch_event' failed with an exception. Will retry."
    ]


def test_our_lines_about_a_videojob_carry_the_same_fields_as_kopfs(captured: io.StringIO) -> None:
    # Fails if a reconcile's lines (run outside kopf's handlers, so without its object logger)
    # say which VideoJob only inside the message text.
    videojob_logger("media", "vj-2").info("created Job vj-2")
    (line,) = lines(captured)
    assert (line["kind"], line["namespace"], line["object"]) == ("VideoJob", "media", "vj-2")
    assert line["message"] == "created Job vj-2" and line["logger"] == "vidpipe_operator"
