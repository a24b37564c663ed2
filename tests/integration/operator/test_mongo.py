"""JobMirror against the MongoDB wire protocol (FerretDB): bursts become ordered batch writes."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import MongoClient

from vidpipe import constants
from vidpipe_operator.mongo import JobMirror
from vidpipe_operator.offload import IOPool

pytestmark = pytest.mark.integration

AT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def database() -> str:
    return f"mirror_{secrets.token_hex(3)}"


@pytest.fixture
def mirror(mongo_url: str, database: str) -> Iterator[JobMirror]:
    pool = IOPool(2, "test-mongo")
    mirror = JobMirror(mongo_url, database, pool, timeout_ms=3000)
    yield mirror
    mirror.close()
    pool.shutdown()


def _docs(url: str, database: str) -> dict[str, Any]:
    with MongoClient[dict[str, Any]](url) as client:
        return {d["_id"]: d for d in client[database][constants.JOBS_COLLECTION].find()}


def test_a_burst_of_writes_lands_in_order(mirror: JobMirror, mongo_url: str, database: str) -> None:
    async def go() -> None:
        phases = ["Pending"] * 5 + ["Running"] * 5 + ["Succeeded"] * 5
        await asyncio.gather(
            *(
                mirror.write(f"j-{i % 5}", {"$set": {"phase": phase, "n": i}})
                for i, phase in enumerate(phases)
            )
        )
        # A progress report never touches a finished document.
        await mirror.write_progress("j-0", 40, AT)

    asyncio.run(go())
    docs = _docs(mongo_url, database)
    assert sorted(docs) == [f"j-{i}" for i in range(5)]
    assert {d["phase"] for d in docs.values()} == {"Succeeded"}
    assert [docs[f"j-{i}"]["n"] for i in range(5)] == [10, 11, 12, 13, 14]
    assert "progress" not in docs["j-0"]


def test_a_failed_write_fails_itself_and_the_writes_after_it_not_those_before(
    mirror: JobMirror, mongo_url: str, database: str
) -> None:
    async def go() -> tuple[BaseException | None, ...]:
        return await asyncio.gather(
            mirror.write("ok-1", {"$set": {"phase": "Running"}}),
            mirror.write("bad", {"$inc": {"attempts": "not a number"}}),
            mirror.write("ok-2", {"$set": {"phase": "Running"}}),
            return_exceptions=True,
        )

    results = dict(zip(["ok-1", "bad", "ok-2"], asyncio.run(go()), strict=True))
    ids = set(_docs(mongo_url, database))
    # Ordered: what comes before the failure is applied, what comes after is not.
    assert ids == {"ok-1"}
    # No write is reported done unless it is stored; a caller told "failed" retries (and every
    # mirror write is idempotent), so nothing is lost.
    assert all(isinstance(results[i], Exception) for i in ("bad", "ok-2"))
    assert "Cannot increment" in str(results["bad"])
