"""A status change goes to the VideoJob and to MongoDB at once (reconcile._write)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from tests.unit.operator.conftest import videojob
from vidpipe_operator import reconcile
from vidpipe_operator.runtime import Runtime
from vidpipe_operator.settings import OperatorSettings
from vidpipe_operator.status import merge_patched, status_patch

pytestmark = pytest.mark.unit

RUNNING = {"phase": "Running", "attempts": 1, "progress": 40}
SUCCEEDED = {"phase": "Succeeded", "attempts": 1, "finishedAt": "2026-01-01T00:02:00Z"}


class SlowKube:
    """The status patch is held until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.patches: list[dict[str, Any]] = []

    async def patch_videojob_status(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        await self.release.wait()
        self.patches.append(patch)
        return {"status": patch}


class Mirror:
    def __init__(self) -> None:
        self.writes: list[dict[str, Any]] = []

    async def write(self, job_id: str, update: dict[str, Any], *events: Any) -> None:
        self.writes.append(update)


def test_the_mirror_does_not_wait_for_the_status_patch() -> None:
    # Fails if MongoDB is written only once the status patch has come back: a finish then
    # reaches the API's read model a whole API-server round trip late (operator_scale bench).
    kube, mirror = SlowKube(), Mirror()
    rt = Runtime(
        settings=OperatorSettings(),
        kube=cast(Any, kube),
        mirror=cast(Any, mirror),
        storage=cast(Any, None),
        io=cast(Any, None),
    )

    async def go() -> tuple[int, Any]:
        body = videojob("j-1")
        task = asyncio.create_task(
            reconcile._write(rt, body, RUNNING, SUCCEEDED, force_mirror=False)
        )
        for _ in range(5):
            await asyncio.sleep(0)
        mirrored_before_patch = len(mirror.writes)
        kube.release.set()
        return mirrored_before_patch, await task

    mirrored_before_patch, phase = asyncio.run(go())
    assert mirrored_before_patch == 1
    assert kube.patches == [status_patch(RUNNING, SUCCEEDED)]
    assert phase.value == "Succeeded"
    # The mirror carries the status as the patch leaves it: the processor's progress kept.
    assert mirror.writes[0]["$set"]["progress"] == 40


def test_merge_patched_applies_a_json_merge_patch_as_the_api_server_does() -> None:
    # Fails if the mirrored status differs from what the server makes of the patch: nested
    # objects merge, None deletes, lists and scalars replace (RFC 7386).
    old = {"phase": "Running", "error": {"code": "a", "detail": "d"}, "outputs": ["x"], "n": 1}
    patch = {"phase": "Failed", "error": {"code": "b"}, "outputs": ["y"], "n": None}
    assert merge_patched(old, patch) == {
        "phase": "Failed",
        "error": {"code": "b", "detail": "d"},
        "outputs": ["y"],
    }
    assert merge_patched(old, {}) == old
    assert old["n"] == 1  # the target is not changed in place
