"""Job phases, shared by the CR status, MongoDB and the REST API, and the seed system's names."""

from enum import StrEnum


class Phase(StrEnum):
    PENDING = "Pending"
    # Kueue mode only (docs/queueing.md): waiting in a LocalQueue for Kueue to admit its Job
    # (again, after a preemption or eviction), then admitted with no processor Pod yet.
    QUEUED = "Queued"
    ADMITTED = "Admitted"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES

    @property
    def waiting(self) -> bool:
        """Not started yet: no processor has run (Pending, or Queued/Admitted in Kueue mode)."""
        return self in WAITING_PHASES


TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED})
WAITING_PHASES = frozenset({Phase.PENDING, Phase.QUEUED, Phase.ADMITTED})


class SeedStatus(StrEnum):
    """The task statuses of the service we replace (its clients still read them)."""

    SAVED = "Saved"
    PROCESSING = "Processing"
    PROCESSED = "Processed"
    FAILED = "Failed"


# The one mapping from our phases to the replaced service's statuses: `seedStatus` in the v1 job
# JSON and `task_status` in the compatibility layer (docs/api.md) both come from it.
SEED_STATUS: dict[Phase, SeedStatus] = {
    Phase.PENDING: SeedStatus.SAVED,
    Phase.QUEUED: SeedStatus.SAVED,
    Phase.ADMITTED: SeedStatus.SAVED,
    Phase.RUNNING: SeedStatus.PROCESSING,
    Phase.SUCCEEDED: SeedStatus.PROCESSED,
    Phase.FAILED: SeedStatus.FAILED,
    # The old service had no cancel; a cancelled task will never be processed.
    Phase.CANCELLED: SeedStatus.FAILED,
}
