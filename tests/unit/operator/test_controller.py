"""When the controller asks a reconcile to mirror to MongoDB even if the status did not change.

The reconcile is replaced by a recorder: these tests are about the triggers, not the reconcile
(its behaviour is proven on the cluster in tests/integration/operator).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest

from tests.unit.operator.conftest import videojob
from vidpipe.phases import Phase
from vidpipe_operator import controller
from vidpipe_operator.queue import QueueEntry, Slot
from vidpipe_operator.reconcile import Result
from vidpipe_operator.runtime import Runtime
from vidpipe_operator.settings import OperatorSettings

pytestmark = pytest.mark.unit
NS = "jobs"


class Recorder:
    """Stands in for `reconcile.reconcile`: records each run's `force_mirror`; the first run
    waits for `release` so that triggers can arrive while it is under way."""

    def __init__(self) -> None:
        self.forced: list[bool] = []
        self.release = asyncio.Event()

    async def __call__(self, rt: Runtime, namespace: str, name: str, **kw: Any) -> Result:
        self.forced.append(kw["force_mirror"])
        if len(self.forced) == 1:
            await self.release.wait()
        return Result(Phase.RUNNING)


def runtime() -> Runtime:
    none = cast(Any, None)  # no adapter is reached: the reconcile is the recorder
    return Runtime(settings=OperatorSettings(), kube=none, mirror=none, storage=none, io=none)


async def settle(rt: Runtime) -> None:
    while rt.tasks:
        await asyncio.gather(*list(rt.tasks))


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    fake = Recorder()
    monkeypatch.setattr(controller, "reconcile", fake)
    return fake


def kicked_during_a_run(recorder: Recorder, first: bool, *later: bool) -> list[bool]:
    """Kick once with `first`, then with each of `later` while that run is under way."""

    async def go() -> list[bool]:
        recorder.release = asyncio.Event()
        rt = runtime()
        controller.kick(rt, NS, "vj", force_mirror=first)
        await asyncio.sleep(0)  # the first run has started and waits
        for force in later:
            controller.kick(rt, NS, "vj", force_mirror=force)
        recorder.release.set()
        await settle(rt)
        return recorder.forced

    return asyncio.run(go())


def test_a_mirror_asked_for_during_a_run_is_made_by_the_rerun(recorder: Recorder) -> None:
    # Fails if a trigger that asks for a mirror (a failed write's retry) arriving during a run
    # that does not mirror is folded into a rerun that does not mirror either: the failed
    # write would then never be made again. A later plain trigger keeps the ask.
    assert kicked_during_a_run(recorder, False, True, False) == [False, True]


def test_plain_triggers_during_a_run_rerun_once_without_a_forced_mirror(
    recorder: Recorder,
) -> None:
    # Fails if a rerun inherits the first run's forced mirror (a write per trigger however
    # little changed) or if the triggers arriving during a run are dropped instead of running
    # it once more.
    assert kicked_during_a_run(recorder, True, False, False) == [True, False]


def test_the_resync_rereads_holding_videojobs_without_forcing_a_mirror(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fails if the periodic resync mirrors every VideoJob holding a Job whether or not its
    # status changed: at 10,000 VideoJobs that was a burst of a thousand MongoDB writes a
    # minute, which finished jobs' records queued behind (bench/operator_scale.py).
    async def no_sweep(rt: Runtime, namespace: str | None) -> int:
        return 0

    async def go() -> list[bool]:
        recorder.release.set()
        rt = runtime()
        rt.index = {
            NS: [
                QueueEntry("2026-01-01T00:00:00Z", "holding", Slot.HOLDING),
                QueueEntry("2026-01-01T00:00:01Z", "done", Slot.RELEASED),
            ]
        }
        await controller._resync(rt)
        await settle(rt)
        return recorder.forced

    monkeypatch.setattr(controller, "sweep_deleted", no_sweep)
    assert asyncio.run(go()) == [False]


class FakeKube:
    """The API server's VideoJobs by (namespace, name): spec.jobId; records each read."""

    def __init__(self, videojobs: dict[tuple[str, str], str]):
        self.videojobs = videojobs
        self.reads: list[str] = []

    async def get_videojob(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads.append(f"get {name}")
        job_id = self.videojobs.get((namespace, name))
        return None if job_id is None else {"spec": {"jobId": job_id}}

    async def videojob_job_ids(self, namespace: str | None) -> set[str]:
        self.reads.append("list")
        return set(self.videojobs.values())


def doc(job_id: str, name: str) -> dict[str, Any]:
    return {"_id": job_id, "videojob": {"namespace": NS, "name": name}}


def swept(kube: FakeKube, docs: list[dict[str, Any]], indexed: list[str], listing: bool) -> Any:
    rt = runtime()
    rt.kube = cast(Any, kube)
    rt.index = {NS: [QueueEntry("2026-01-01T00:00:00Z", n, Slot.HOLDING) for n in indexed]}
    gone = asyncio.run(controller._gone(rt, NS, docs, listing))
    return [d["_id"] for d in gone]


def test_the_sweep_reads_back_only_what_the_index_lacks() -> None:
    # Fails if a round without listing reads every VideoJob (a GET per document, or a list of
    # them all each minute), if a VideoJob the index lacks but the API server still has is
    # taken for deleted, or if a VideoJob recreated under the same name hides the deletion of
    # the job that had it before.
    kube = FakeKube({(NS, "known"): "j1", (NS, "late"): "j2", (NS, "reused"): "new-job"})
    docs = [doc("j1", "known"), doc("j2", "late"), doc("j3", "deleted"), doc("j4", "reused")]
    assert swept(kube, docs, ["known"], listing=False) == ["j3", "j4"]
    assert kube.reads == ["get late", "get deleted", "get reused"]


def test_a_listing_round_trusts_no_index() -> None:
    # Fails if the listing round (the first, and every SWEEP_LISTING_EVERY) believes the index:
    # a deletion whose watch event was lost would then never be found.
    kube = FakeKube({(NS, "kept"): "j1"})
    docs = [doc("j1", "kept"), doc("j2", "stale-in-index")]
    assert swept(kube, docs, ["kept", "stale-in-index"], listing=True) == ["j2"]
    assert kube.reads == ["list"]


def test_many_unknown_documents_are_checked_with_one_listing() -> None:
    # Fails if an index not yet filled after a start costs one GET per document.
    count = controller.SWEEP_GETS_MAX + 1
    kube = FakeKube({(NS, f"vj-{i}"): f"j{i}" for i in range(count)})
    docs = [doc(f"j{i}", f"vj-{i}") for i in range(count)] + [doc("gone", "gone")]
    assert swept(kube, docs, [], listing=False) == ["gone"]
    assert kube.reads == ["list"]


class FakeMirror:
    """Records what is mirrored to MongoDB: (jobId, phase)."""

    def __init__(self) -> None:
        self.written: list[tuple[str, str]] = []

    async def write(self, job_id: str, update: dict[str, Any], *events: Any) -> None:
        self.written.append((job_id, update["$set"]["phase"]))


def test_a_restart_mirrors_finished_videojobs_as_listed_without_reading_them() -> None:
    # Fails if the listing at start-up reads every finished VideoJob back before mirroring it
    # (a restart with 10,000 finished VideoJobs made 10,000 GETs), or if it stops mirroring
    # them (MongoDB may lag a status the previous process wrote just before it died).
    finished = videojob("done-1")
    finished["status"] = {"phase": "Succeeded", "finishedAt": "2026-01-01T00:05:00Z"}
    kube, mirror = FakeKube({(NS, "done-1"): "done-1"}), FakeMirror()

    async def go() -> None:
        rt = runtime()
        rt.kube, rt.mirror = cast(Any, kube), cast(Any, mirror)
        await controller.on_videojob_event(rt, None, finished, logging.getLogger("test"))
        # A read returns FakeKube's bare body, which a reconcile cannot use: it would retry.
        await asyncio.wait_for(settle(rt), timeout=10)

    asyncio.run(go())
    assert kube.reads == []
    assert mirror.written == [("done-1", "Succeeded")]
