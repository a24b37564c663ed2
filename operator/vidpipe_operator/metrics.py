"""Prometheus metrics of the operator (served on settings.metrics_port)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

TRANSITIONS = Counter(
    "vidpipe_operator_phase_transitions_total", "VideoJob phase transitions written", ["phase"]
)
FINISH_LAG = Histogram(
    "vidpipe_operator_finish_to_status_seconds",
    "From the Job finishing to the VideoJob status saying so (its MongoDB write then queued)",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
# The MongoDB mirror's batches (batching.py): how long each took and how many writes it held. A
# mirror falling behind shows here first (batches growing to MONGO_BATCH_MAX, seconds rising).
MONGO_BATCH_SECONDS = Histogram(
    "vidpipe_operator_mongo_batch_seconds",
    "Time to apply one batch of MongoDB writes, by collection and outcome",
    ["collection", "outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
MONGO_BATCH_WRITES = Histogram(
    "vidpipe_operator_mongo_batch_writes",
    "Writes in one batch of MongoDB writes, by collection",
    ["collection"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
RECONCILES = Counter(
    "vidpipe_operator_reconciles_total",
    "Reconciliations by trigger and result",
    ["trigger", "result"],
)
