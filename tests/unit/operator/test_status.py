"""Phase computation from Job status and Pod states, and the condition helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.unit.operator.conftest import cond, job
from vidpipe_operator import names
from vidpipe_operator import status as st
from vidpipe_operator.status import Outcome, view_job

pytestmark = pytest.mark.unit

AT = datetime(2026, 1, 1, 0, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "outcome", "attempts"),
    [
        (job(start=None), Outcome.NOT_STARTED, 0),
        (job(active=1), Outcome.ACTIVE, 1),
        (job(active=1, ready=1), Outcome.ACTIVE, 1),
        (job(failed=1), Outcome.ACTIVE, 1),  # between a failure and the retry Pod
        (job(active=1, failed=1), Outcome.ACTIVE, 2),
        (job(succeeded=1, conditions=[cond("Complete")]), Outcome.SUCCEEDED, 1),
        (job(active=1, conditions=[cond("SuccessCriteriaMet")]), Outcome.SUCCEEDED, 1),
        (job(failed=1, conditions=[cond("Failed", "PodFailurePolicy")]), Outcome.BAD_INPUT, 1),
        (
            job(failed=1, conditions=[cond("FailureTarget", "PodFailurePolicy")]),
            Outcome.BAD_INPUT,
            1,
        ),
        (
            job(failed=4, conditions=[cond("Failed", "BackoffLimitExceeded")]),
            Outcome.RETRIES_EXHAUSTED,
            4,
        ),
        (
            job(failed=1, conditions=[cond("Failed", "DeadlineExceeded")]),
            Outcome.DEADLINE_EXCEEDED,
            1,
        ),
    ],
)
def test_view_job(body: dict[str, Any], outcome: Outcome, attempts: int) -> None:
    view = view_job(body)
    assert (view.outcome, view.attempts) == (outcome, attempts)


def test_false_conditions_are_ignored() -> None:
    body = job(active=1, conditions=[{**cond("Failed", "BackoffLimitExceeded"), "status": "False"}])
    assert view_job(body).outcome is Outcome.ACTIVE


def _conds(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_pending_until_a_pod_exists() -> None:
    new = st.from_job({}, "vj-j", view_job(job(start=None)), at=AT, generation=1)
    assert new["phase"] == "Pending" and new["jobName"] == "vj-j"
    assert _conds(new)["Admitted"]["status"] == "True"
    assert _conds(new)["Running"]["reason"] == names.POD_PENDING
    assert "startedAt" not in new


def test_running_keeps_processor_progress_untouched() -> None:
    old = {"phase": "Pending", "progress": 42}
    new = st.from_job(old, "vj-j", view_job(job(active=1)), at=AT, generation=1)
    assert new["phase"] == "Running" and "progress" not in new
    assert new["startedAt"] == "2026-01-01T00:00:05Z"
    assert "progress" not in st.status_patch(old, new)
    assert _conds(new)["Running"]["reason"] == names.PROCESSING


def test_retry_is_visible() -> None:
    new = st.from_job({}, "vj-j", view_job(job(active=1, failed=1)), at=AT, generation=1)
    assert new["attempts"] == 2 and _conds(new)["Running"]["reason"] == names.RETRYING


def test_success() -> None:
    done = job(succeeded=1, conditions=[cond("Complete")], completion="2026-01-01T00:01:10Z")
    new = st.from_job(
        {"phase": "Running", "startedAt": "2026-01-01T00:00:05Z"},
        "vj-j",
        view_job(done),
        at=AT,
        generation=1,
        outputs=["outputs/j/720p.mp4"],
    )
    assert new["phase"] == "Succeeded" and new["progress"] == 100
    assert new["finishedAt"] == "2026-01-01T00:01:10Z" and new["duration"] == "1m5s"
    assert new["outputs"] == ["outputs/j/720p.mp4"] and "error" not in new
    assert _conds(new)["Complete"]["status"] == "True"
    assert _conds(new)["Running"]["status"] == "False"


def test_bad_input_uses_the_processor_message() -> None:
    failed = job(failed=1, conditions=[cond("Failed", "PodFailurePolicy")])
    message = '{"code": "no_video_stream", "message": "no video stream"}\n'
    new = st.from_job({}, "vj-j", view_job(failed), at=AT, generation=1, pod_message=message)
    assert new["phase"] == "Failed"
    assert new["error"] == {"code": "no_video_stream", "message": "no video stream"}
    assert _conds(new)["Failed"]["reason"] == names.BAD_INPUT


def test_bad_input_without_message() -> None:
    failed = job(failed=1, conditions=[cond("Failed", "PodFailurePolicy")])
    new = st.from_job({}, "vj-j", view_job(failed), at=AT, generation=1)
    assert new["error"]["code"] == "not_a_video"


def test_retries_exhausted_with_log_tail() -> None:
    failed = job(failed=2, conditions=[cond("Failed", "BackoffLimitExceeded")])
    new = st.from_job(
        {}, "vj-j", view_job(failed), at=AT, generation=1, pod_message="Traceback...\nBoom"
    )
    assert new["error"]["code"] == "processing_failed"
    assert new["error"]["message"] == "failed after 2 attempt(s): Traceback...\nBoom"
    assert _conds(new)["Failed"]["reason"] == names.RETRIES_EXHAUSTED


def test_deadline() -> None:
    failed = job(failed=1, conditions=[cond("Failed", "DeadlineExceeded")])
    new = st.from_job({}, "vj-j", view_job(failed), at=AT, generation=1)
    assert new["error"]["code"] == "deadline_exceeded"


def test_termination_message_prefers_the_latest_processor_exit() -> None:
    def pod(msg: str, at: str, name: str = "processor", last: bool = False) -> dict[str, Any]:
        state = {"terminated": {"message": msg, "finishedAt": at, "exitCode": 75}}
        cs = {"name": name, "lastState" if last else "state": state}
        return {"status": {"containerStatuses": [cs]}}

    pods = [
        pod("first", "2026-01-01T00:00:10Z"),
        pod("second", "2026-01-01T00:00:40Z"),
        pod("sidecar", "2026-01-01T00:01:00Z", name="other"),
    ]
    assert st.termination_message(pods) == "second"
    assert st.termination_message([{"status": {}}]) is None


def test_waiting_condition_says_why() -> None:
    new = st.waiting({"progress": 0}, running=3, limit=3, position=2, at=AT, generation=1)
    assert new["phase"] == "Pending"
    admitted = _conds(new)["Admitted"]
    assert admitted["status"] == "False" and admitted["reason"] == names.WAITING_FOR_SLOT
    assert "3/3" in admitted["message"] and "position 2" in admitted["message"]
    assert "progress" not in new


def test_cancelled() -> None:
    old: dict[str, Any] = {"phase": "Running", "startedAt": "2026-01-01T00:00:05Z"}
    old["conditions"] = st.set_condition(
        [], names.RUNNING, "True", names.PROCESSING, "", at=AT - timedelta(minutes=1), generation=1
    )
    new = st.cancelled(old, reason=names.CANCEL_REQUESTED, at=AT, generation=2)
    assert new["phase"] == "Cancelled" and new["finishedAt"] == "2026-01-01T00:02:00Z"
    assert new["duration"] == "1m55s" and new["observedGeneration"] == 2
    assert _conds(new)["Cancelled"]["reason"] == names.CANCEL_REQUESTED
    assert _conds(new)["Running"]["status"] == "False"


def test_set_condition_keeps_transition_time_while_status_holds() -> None:
    first = st.set_condition([], "Running", "True", "A", "m", at=AT, generation=1)
    later = AT + timedelta(minutes=5)
    same = st.set_condition(first, "Running", "True", "B", "m2", at=later, generation=2)
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:02:00Z"
    assert (same[0]["reason"], same[0]["observedGeneration"]) == ("B", 2)
    flipped = st.set_condition(same, "Running", "False", "C", "", at=later, generation=2)
    assert flipped[0]["lastTransitionTime"] == "2026-01-01T00:07:00Z"


def test_conditions_are_kept_in_a_stable_order() -> None:
    conds: list[dict[str, Any]] = []
    for type_ in ("Failed", "Running", "Admitted"):
        conds = st.set_condition(conds, type_, "True", "R", "", at=AT, generation=None)
    assert [c["type"] for c in conds] == ["Admitted", "Running", "Failed"]
    assert "observedGeneration" not in conds[0]


def test_status_patch_is_a_minimal_merge_patch() -> None:
    old = {"phase": "Running", "progress": 40, "error": {"code": "x", "message": "y"}}
    new = {"phase": "Succeeded", "progress": 100}
    assert st.status_patch(old, new) == {"phase": "Succeeded", "progress": 100, "error": None}
    assert st.status_patch(new, new) == {}


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (59.9, "59s"), (65, "1m5s"), (3600 * 2 + 300, "2h5m")]
)
def test_fmt_duration(seconds: float, text: str) -> None:
    assert st.fmt_duration(seconds) == text


def test_time_round_trip() -> None:
    assert st.parse_time(st.fmt_time(AT)) == AT
    assert st.parse_time(None) is None
