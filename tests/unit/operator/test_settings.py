"""Operator settings come from VIDPIPE_OPERATOR_* variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vidpipe_operator.settings import OperatorSettings

pytestmark = pytest.mark.unit


def test_defaults() -> None:
    settings = OperatorSettings()
    assert settings.max_running_per_namespace == 4
    assert settings.presign_margin_seconds == 900
    assert settings.leader_election is True and settings.namespaces == []
    assert settings.processor_endpoint is None


def test_environment_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDPIPE_OPERATOR_MAX_RUNNING_PER_NAMESPACE", "7")
    monkeypatch.setenv("VIDPIPE_OPERATOR_NAMESPACES", '["a","b"]')
    monkeypatch.setenv("VIDPIPE_OPERATOR_PROCESSOR_COMMAND", '["/bin/sh","-c"]')
    # Shared facts under their one name (vidpipe.settings), the rest with the prefix.
    monkeypatch.setenv("VIDPIPE_S3_ENDPOINT_URL", "http://s3:9000")
    monkeypatch.setenv("VIDPIPE_MONGO_URL", "mongodb://db:27017/")
    settings = OperatorSettings()
    assert settings.max_running_per_namespace == 7
    assert settings.namespaces == ["a", "b"]
    assert settings.processor_command == ["/bin/sh", "-c"]
    assert settings.processor_endpoint == "http://s3:9000"
    assert settings.mongo_url.get_secret_value() == "mongodb://db:27017/"
    assert "db:27017" not in repr(settings)  # secrets stay out of logs


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MAX_RUNNING_PER_NAMESPACE", "0"),
        ("PROCESSOR_IMAGE_PULL_POLICY", "Sometimes"),
        ("MONGO_URL", "http://db"),  # the 0.2.0 name, still read (vidpipe.settings)
        ("BACKOFF_LIMIT", "-1"),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, key: str, value: str) -> None:
    monkeypatch.setenv(f"VIDPIPE_OPERATOR_{key}", value)
    with pytest.raises(ValidationError):
        OperatorSettings()


def test_kopf_is_configured_to_stay_alive_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fails if kopf keeps its defaults: no watch timeouts (a silently dead watch is never
    # noticed: kopf issues #585, #957) or an unbounded per-object worker pool.
    import kopf

    from vidpipe_operator.startup import configure_kopf

    monkeypatch.setenv("VIDPIPE_OPERATOR_KOPF_WORKER_LIMIT", "50")
    p = kopf.OperatorSettings()
    configure_kopf(p, OperatorSettings())
    assert p.queueing.worker_limit == 50
    assert p.watching.server_timeout and p.watching.client_timeout
    assert p.watching.client_timeout > p.watching.server_timeout
    assert p.networking.request_timeout
