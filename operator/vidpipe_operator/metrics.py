"""Prometheus metrics of the operator (served on settings.metrics_port)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

TRANSITIONS = Counter(
    "vidpipe_operator_phase_transitions_total", "VideoJob phase transitions written", ["phase"]
)
FINISH_LAG = Histogram(
    "vidpipe_operator_finish_to_status_seconds",
    "From the Job finishing to the VideoJob status and MongoDB both saying so",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
RECONCILES = Counter(
    "vidpipe_operator_reconciles_total",
    "Reconciliations by trigger and result",
    ["trigger", "result"],
)
