"""Factories for VideoJob and Job bodies as the API server returns them."""

from __future__ import annotations

from typing import Any

import pytest

from vidpipe import constants
from vidpipe_operator.settings import OperatorSettings


def videojob(name: str = "j-1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {
            "name": name,
            "namespace": "jobs",
            "uid": "uid-1",
            "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {
            "jobId": name,
            "owner": "alice",
            "source": {"bucket": "media", "key": f"sources/{name}/source"},
            **spec,
        },
    }


def job(
    *,
    active: int = 0,
    ready: int = 0,
    succeeded: int = 0,
    failed: int = 0,
    conditions: list[dict[str, Any]] | None = None,
    start: str | None = "2026-01-01T00:00:05Z",
    completion: str | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "active": active,
        "ready": ready,
        "succeeded": succeeded,
        "failed": failed,
        "conditions": conditions or [],
    }
    if start:
        status["startTime"] = start
    if completion:
        status["completionTime"] = completion
    return {"metadata": {"name": "vj-j-1", "namespace": "jobs"}, "status": status}


def cond(type_: str, reason: str = "", at: str = "2026-01-01T00:01:05Z") -> dict[str, Any]:
    return {"type": type_, "status": "True", "reason": reason, "lastTransitionTime": at}


@pytest.fixture
def settings() -> OperatorSettings:
    return OperatorSettings()
