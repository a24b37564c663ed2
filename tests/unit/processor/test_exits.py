"""Exit codes and termination messages for every way the processor can end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from vidpipe import exitcodes
from vidpipe.errors import BadInput, ErrorCode, VidpipeError
from vidpipe.probe import ProbeFailed
from vidpipe_processor.errors import (
    FfmpegFailed,
    InvalidJob,
    StorageError,
    Terminated,
)
from vidpipe_processor.exits import SUCCESS, exit_status, write_termination_message
from vidpipe_processor.settings import ProcessorSettings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("exc", "exit_code", "code"),
    [
        (BadInput(ErrorCode.NOT_A_VIDEO, "nope"), exitcodes.BAD_INPUT, ErrorCode.NOT_A_VIDEO),
        (
            BadInput(ErrorCode.RESOLUTION_LIMIT_EXCEEDED, "big"),
            exitcodes.BAD_INPUT,
            ErrorCode.RESOLUTION_LIMIT_EXCEEDED,
        ),
        (InvalidJob("dup"), exitcodes.BAD_INPUT, ErrorCode.VALIDATION_FAILED),
        (FfmpegFailed(1, "boom"), exitcodes.RETRYABLE, ErrorCode.PROCESSING_FAILED),
        (StorageError("down"), exitcodes.RETRYABLE, ErrorCode.STORAGE_UNAVAILABLE),
        (ProbeFailed("timeout"), exitcodes.RETRYABLE, ErrorCode.PROCESSING_FAILED),
        (
            VidpipeError(ErrorCode.DEADLINE_EXCEEDED, "late"),
            exitcodes.RETRYABLE,
            ErrorCode.DEADLINE_EXCEEDED,
        ),
        (MemoryError(), exitcodes.RETRYABLE, ErrorCode.INTERNAL),
        (RuntimeError("bug"), exitcodes.RETRYABLE, ErrorCode.INTERNAL),
        (Terminated(15), exitcodes.TERMINATED, ErrorCode.PROCESSING_FAILED),
        (KeyboardInterrupt(), exitcodes.TERMINATED, ErrorCode.PROCESSING_FAILED),
    ],
)
def test_exit_code_mapping(exc: BaseException, exit_code: int, code: ErrorCode) -> None:
    status = exit_status(exc)
    assert (status.exit_code, status.code) == (exit_code, code)
    assert status.message


def test_invalid_settings_are_never_retried_and_do_not_echo_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VIDPIPE_JOB_SPEC", json.dumps({"jobId": "Bad_Id", "owner": "o"}))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    with pytest.raises(ValidationError) as caught:
        ProcessorSettings()
    status = exit_status(caught.value)
    assert status.exit_code == exitcodes.BAD_INPUT
    assert status.code is ErrorCode.VALIDATION_FAILED
    assert "job_spec" in status.message and "Bad_Id" not in status.message


def test_unparseable_job_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDPIPE_JOB_SPEC", "{not json")
    with pytest.raises(Exception) as caught:
        ProcessorSettings()
    assert exit_status(caught.value).exit_code == exitcodes.BAD_INPUT


def test_termination_message_is_one_json_line(tmp_path: Path) -> None:
    path = tmp_path / "termination-log"
    write_termination_message(path, exit_status(BadInput(ErrorCode.NOT_A_VIDEO, "x" * 5000)))
    text = path.read_text()
    assert text.count("\n") == 1
    body = json.loads(text)
    assert body["code"] == "not_a_video"
    assert len(body["message"]) <= 1000


def test_success_message_is_code_and_message_only(tmp_path: Path) -> None:
    # Fails if the message lists outputs again: the manifest is the only list of them.
    path = tmp_path / "termination-log"
    write_termination_message(path, SUCCESS)
    assert json.loads(path.read_text()) == {"code": "ok", "message": "all outputs written"}


def test_unwritable_termination_log_is_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Fails if the OSError escapes (the exit code would be lost) or is swallowed silently.
    write_termination_message(tmp_path / "missing" / "log", SUCCESS)
    assert "cannot write the termination message" in caplog.text
    assert not (tmp_path / "missing").exists()
