"""Everything a request needs, built once per app (so tests can run several apps side by side)."""

from __future__ import annotations

from dataclasses import dataclass

from vidpipe_api.cluster import Cluster
from vidpipe_api.db import Database
from vidpipe_api.jobs import Ingest
from vidpipe_api.metrics import Metrics
from vidpipe_api.settings import Settings
from vidpipe_api.storage import Storage
from vidpipe_api.validation import Validator


@dataclass
class AppContext:
    settings: Settings
    storage: Storage
    db: Database
    cluster: Cluster
    metrics: Metrics
    validator: Validator
    ingest: Ingest

    @classmethod
    def build(cls, settings: Settings, metrics: Metrics) -> AppContext:
        storage = Storage(settings)
        db = Database(settings)
        cluster = Cluster(settings)
        validator = Validator(settings, storage)
        return cls(
            settings=settings,
            storage=storage,
            db=db,
            cluster=cluster,
            metrics=metrics,
            validator=validator,
            ingest=Ingest(storage, db, cluster, validator, metrics),
        )

    def close(self) -> None:
        self.db.close()
        self.cluster.close()
