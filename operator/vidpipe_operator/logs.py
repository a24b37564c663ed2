"""The operator's logs: JSON lines on stderr (`vidpipe.logs`, the shape the API, the processor and
the dispatcher write), kopf's own lines included.

kopf passes every per-object line through an adapter whose extras are its whole settings object,
a flag for its Event poster and a reference to the object: the reference becomes `kind`,
`namespace` and `object` (its name) fields (what a log query filters on), the rest is dropped.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from vidpipe.logs import JsonFormatter, install_json_logging

_log = logging.getLogger("vidpipe_operator")
# kopf's object reference, as the fields of a line: `name` is taken (a LogRecord's logger name).
_REF_FIELDS = (("kind", "kind"), ("namespace", "namespace"), ("object", "name"))
# kopf's extras that say nothing to a reader (its settings, its Event poster's switch).
_KOPF_INTERNAL = ("settings", "k8s_skip")


class OperatorJsonFormatter(JsonFormatter):
    def extra_fields(self, record: logging.LogRecord) -> dict[str, Any]:
        fields = super().extra_fields(record)
        for name in _KOPF_INTERNAL:
            fields.pop(name, None)
        ref = fields.pop("k8s_ref", None)
        if isinstance(ref, dict):
            fields.update({k: ref[r] for k, r in _REF_FIELDS if ref.get(r)})
        return fields


def videojob_fields(namespace: str, name: str) -> dict[str, str]:
    """The fields kopf puts on its per-object lines, for ours about a VideoJob (`extra=`)."""
    return {"kind": "VideoJob", "namespace": namespace, "object": name}


def videojob_logger(namespace: str, name: str) -> logging.LoggerAdapter[logging.Logger]:
    return logging.LoggerAdapter(_log, videojob_fields(namespace, name))


class QuietHandlerSuccess(logging.Filter):
    """Drops kopf's line for every watch event a handler took without error: at 10,000
    VideoJobs it was nearly the whole log (50,000 lines a run, bench/operator_scale.py) and
    said nothing. A handler's failure and every line of ours still pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Handler '") and message.endswith("' succeeded."))


def configure_logging(level: str, stream: TextIO = sys.stderr) -> None:
    install_json_logging(stream, level, formatter=OperatorJsonFormatter())
    # On kopf's logger, not on our handler: its Event poster (a handler of that logger) then
    # posts no Event for those lines either.
    logging.getLogger("kopf.objects").addFilter(QuietHandlerSuccess())
