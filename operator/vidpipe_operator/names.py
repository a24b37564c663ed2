"""Names the operator shares with kubectl users, alerting and the other modules: labels, the
processor container, condition types and reasons. A leaf: it imports nothing of the operator's,
so no module depends on another only for a constant."""

from __future__ import annotations

from vidpipe import constants
from vidpipe.record import CANCELLED_CONDITION, VIDEOJOB_DELETED_REASON

CONTAINER = "processor"
MANAGED_BY = constants.FIELD_MANAGER_OPERATOR
# Which VideoJob a Job belongs to, readable without parsing owner references.
LABEL_VIDEOJOB = f"{constants.GROUP}/videojob"
# The label the Job controller puts on its Pods (Kubernetes >= 1.27).
LABEL_POD_JOB_NAME = "batch.kubernetes.io/job-name"
# Kueue's API (kueue mode): LocalQueues the operator creates, Workloads it reads.
KUEUE_GROUP = "kueue.x-k8s.io"
KUEUE_VERSION = "v1beta2"
# Kueue labels each Workload with the uid of the Job it stands for.
JOB_UID_LABEL = f"{KUEUE_GROUP}/job-uid"

# VideoJob condition types: one per question an on-call engineer asks.
ADMITTED = "Admitted"  # has it got a slot and a Job?
RUNNING = "Running"  # is a processor Pod working on it?
COMPLETE = "Complete"  # did it succeed?
FAILED = "Failed"  # did it fail, and why?
CANCELLED = CANCELLED_CONDITION  # was it stopped on request? (the sweep writes it too)
CONDITION_TYPES = (ADMITTED, RUNNING, COMPLETE, FAILED, CANCELLED)

# Reasons (CamelCase, stable: alerting may match them).
WAITING_FOR_SLOT = "WaitingForSlot"
# Kueue mode: waiting in a LocalQueue; back in it after Kueue evicted (e.g. preempted) the Job;
# admitted by Kueue.
QUEUED = "Queued"
EVICTED = "Evicted"
ADMITTED_BY_KUEUE = "AdmittedByKueue"
JOB_CREATED = "JobCreated"
POD_PENDING = "PodPending"
PROCESSING = "Processing"
RETRYING = "Retrying"
FINISHED = "Finished"
SUCCEEDED = "Succeeded"
BAD_INPUT = "BadInput"
RETRIES_EXHAUSTED = "RetriesExhausted"
DEADLINE_EXCEEDED = "DeadlineExceeded"
CANCEL_REQUESTED = "CancelRequested"
VIDEOJOB_DELETED = VIDEOJOB_DELETED_REASON
