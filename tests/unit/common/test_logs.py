"""The one JSON log line of the API and the processor (`vidpipe.logs`)."""

from __future__ import annotations

import json
import logging

import pytest

from vidpipe.logs import JsonFormatter

pytestmark = pytest.mark.unit


def test_json_log_lines_carry_extra_fields_and_the_job_id() -> None:
    # Fails if a line spans lines, drops `extra` fields or the processor's job id.
    record = logging.makeLogRecord(
        {"name": "x", "levelname": "INFO", "msg": "progress %s", "args": ("now",), "progress": 7}
    )
    line = JsonFormatter(job_id="job-1").format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "progress now"
    assert (entry["level"], entry["jobId"], entry["progress"]) == ("info", "job-1", 7)


def test_log_formatter_redacts() -> None:
    # Fails if a presigned URL's signature or an API key reaches a line, message or extra field.
    record = logging.LogRecord(
        "x", logging.INFO, "f", 1, "url %s", ("http://s3/k?X-Amz-Signature=abc",), None
    )
    record.key = "vpk_0123456789ab_secretsecret"
    line = JsonFormatter().format(record)
    assert "abc" not in line and "secretsecret" not in line
    assert json.loads(line)["level"] == "info"


def test_a_quoted_signature_is_redacted_and_the_line_stays_json() -> None:
    # Fails if the redaction eats the backslash of an escaped quote that ends the signature
    # (the line would no longer parse) or leaves any of the signature behind.
    record = logging.makeLogRecord(
        {"name": "x", "levelname": "INFO", "msg": 'fetch "http://s3/k?a=1&Signature=s3cr3t" failed'}
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == 'fetch "http://s3/k?a=1&Signature=<redacted>" failed'


def test_a_webhook_secret_is_redacted_whole() -> None:
    # Fails if any of a `whsec_` secret reaches a line, its base64 padding mistaken for a
    # key=value pair included.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw+/Abc0123456789abcdef=="
    record = logging.makeLogRecord({"name": "x", "levelname": "INFO", "msg": "m", "s": secret})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["s"] == "whsec_<redacted>"
