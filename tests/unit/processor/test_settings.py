"""Settings from the environment, as the operator's Job template sets them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from vidpipe.probe import ProbeLimits
from vidpipe.settings import X264_PRESET
from vidpipe_processor.main import build_reporter
from vidpipe_processor.reporter import FanoutReporter, LoggingReporter
from vidpipe_processor.settings import ProcessorSettings

pytestmark = pytest.mark.unit

SPEC = {"jobId": "job-1", "owner": "alice", "source": {"bucket": "uploads", "key": "sources/x"}}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VIDPIPE_JOB_SPEC", json.dumps(SPEC))


def test_defaults() -> None:
    settings = ProcessorSettings()
    assert settings.job_spec.job_id == "job-1"
    assert settings.probe_limits == ProbeLimits()
    assert settings.x264_preset == X264_PRESET
    assert settings.work_dir == Path("/work")
    assert settings.kubernetes_url() is None
    assert isinstance(build_reporter(settings), LoggingReporter)


def test_everything_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "VIDPIPE_ACCESS_FILE": "/secrets/access.json",
        "VIDPIPE_S3_MAX_ATTEMPTS": "3",
        "VIDPIPE_WORK_DIR": "/scratch",
        "VIDPIPE_MAX_DURATION_SECONDS": "60",
        "VIDPIPE_MAX_PIXELS": "2073600",
        "VIDPIPE_MAX_STREAMS": "4",
        "VIDPIPE_X264_PRESET": "slow",
        "VIDPIPE_TERMINATION_LOG": "/tmp/term",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = ProcessorSettings()
    assert settings.x264_preset == "slow"
    assert settings.access_file == Path("/secrets/access.json")
    assert settings.transfer.max_attempts == 3
    assert settings.probe_limits.max_pixels == 2073600
    assert settings.probe_limits.max_duration_seconds == 60
    assert settings.probe_limits.max_streams == 4


def test_videojob_progress_needs_name_namespace_and_an_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDPIPE_VIDEOJOB_NAME", "job-1")
    assert ProcessorSettings().kubernetes_url() is None
    monkeypatch.setenv("VIDPIPE_VIDEOJOB_NAMESPACE", "jobs")
    assert ProcessorSettings().kubernetes_url() is None  # not in a Pod
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    settings = ProcessorSettings()
    assert settings.kubernetes_url() == "https://10.96.0.1:443"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    assert ProcessorSettings().kubernetes_url() == "https://[fd00::1]:6443"
    monkeypatch.setenv("VIDPIPE_KUBERNETES_API_URL", "http://127.0.0.1:8001")
    monkeypatch.setenv("VIDPIPE_KUBERNETES_CA_PATH", "/nonexistent-ca")
    settings = ProcessorSettings()
    assert settings.kubernetes_url() == "http://127.0.0.1:8001"
    assert isinstance(build_reporter(settings), FanoutReporter)


def test_empty_strings_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDPIPE_VIDEOJOB_NAME", "")
    settings = ProcessorSettings()
    assert settings.videojob_name is None


def test_an_unknown_preset_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fails if any string reaches ffmpeg's -preset (a typo would fail every job at encode time).
    monkeypatch.setenv("VIDPIPE_X264_PRESET", "fastest")
    with pytest.raises(ValidationError, match="VIDPIPE_X264_PRESET"):
        ProcessorSettings()
