"""Job phases, shared by the CR status, MongoDB and the REST API, and the seed system's names."""

from enum import StrEnum


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES


TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED})

# The Celery-era system exposed these status names; the README documents the mapping.
SEED_STATUS: dict[Phase, str] = {
    Phase.PENDING: "Saved",
    Phase.RUNNING: "Processing",
    Phase.SUCCEEDED: "Processed",
    Phase.FAILED: "Failed",
    Phase.CANCELLED: "Failed",
}
