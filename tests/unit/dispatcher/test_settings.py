"""The dispatcher's settings as the chart sets them: environment variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vidpipe_dispatcher.schedule import SPEC_SCHEDULE
from vidpipe_dispatcher.settings import DispatcherSettings

pytestmark = pytest.mark.unit


def test_defaults_are_the_spec_schedule_15_s_and_public_addresses_only() -> None:
    # Fails if a default drifted from the contract (schedule, 15 s, no allow-list).
    settings = DispatcherSettings()
    assert settings.retry_schedule_seconds == SPEC_SCHEDULE
    assert settings.timeout_seconds == 15
    assert settings.allowed_hosts == []


def test_allowed_hosts_are_comma_separated_like_the_apis(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fails if the chart could not give the dispatcher the API's value unchanged.
    monkeypatch.setenv("VIDPIPE_DISPATCHER_ALLOWED_HOSTS", " 10.0.0.0/8, hooks.svc ,.internal.svc")
    monkeypatch.setenv("VIDPIPE_DISPATCHER_RETRY_SCHEDULE_SECONDS", "[1, 2.5]")
    settings = DispatcherSettings()
    assert settings.allowed_hosts == ["10.0.0.0/8", "hooks.svc", ".internal.svc"]
    assert settings.allow.allows_host("x.internal.svc")
    assert settings.retry_schedule_seconds == (1.0, 2.5)


def test_a_claim_shorter_than_an_attempt_is_refused() -> None:
    # Fails if a claim could run out while its attempt is still under way (a second replica
    # would then send the same delivery).
    with pytest.raises(ValidationError, match="claim_seconds"):
        DispatcherSettings(timeout_seconds=15, claim_seconds=10)
