"""One-off clean-ups of what older releases left in the cluster, run once at start-up.

Each migration is dated and names the release it undoes, so it can be deleted once no
supported upgrade path starts before that release. Every migration is idempotent: it runs at
every start-up (cheap when there is nothing left to do) and is retried with backoff until it
succeeds, without holding up the handlers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from vidpipe import constants
from vidpipe_operator.kube import Kube

log = logging.getLogger(__name__)
MAX_BACKOFF = 300.0

LEGACY_FINALIZER = f"{constants.GROUP}/finalizer"


async def remove_legacy_finalizer(kube: Kube, namespace: str | None) -> int:
    """Chart 0.1's operator (kopf change handlers) put a finalizer on every VideoJob. Nothing
    waits on it since 0.2, and left in place it keeps a deleted VideoJob Terminating for ever.
    Returns how many VideoJobs still carried it."""
    found = 0
    for item in await kube.list_videojobs(namespace):
        meta = item["metadata"]
        if LEGACY_FINALIZER in (meta.get("finalizers") or []):
            found += 1
            await kube.remove_finalizer(meta["namespace"], meta["name"], LEGACY_FINALIZER)
    return found


@dataclass(frozen=True)
class Migration:
    since: str  # the date the old behaviour ended
    name: str
    run: Callable[[Kube, str | None], Awaitable[int]]


MIGRATIONS = (Migration("2026-11-25", "remove the chart 0.1 finalizer", remove_legacy_finalizer),)


async def migrate(kube: Kube, namespaces: list[str | None]) -> None:
    """Run every migration in every watched namespace (None: cluster-wide) until it succeeds."""
    for migration in MIGRATIONS:
        for namespace in namespaces:
            delay = 1.0
            while True:
                try:
                    done = await migration.run(kube, namespace)
                    break
                except Exception as exc:  # e.g. 409, or the API server away: try again
                    log.warning(f"migration {migration.name!r} failed, retrying: {exc}")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, MAX_BACKOFF)
            if done:
                log.info(f"migration {migration.name!r} ({migration.since}): {done} object(s)")
