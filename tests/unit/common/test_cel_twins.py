"""Every CEL rule of the generated CRD has a twin check in the pydantic models that refuses the
same input with the same message (issue 11, finding 5: a duplicate rendition name once passed the
API, was refused by the API server and jammed the resubmitter). A new CEL rule without a case in
TWINS fails `test_every_cel_rule_has_a_twin`; a twin that accepts its bad input fails the other.
The API server's side of each rule is proven in tests/integration/operator/test_crd.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from vidpipe.crd import build_crd
from vidpipe.models import MAX_NAME_LENGTH, NAME_TOO_LONG, VideoJobSpec, spec_update_violations

pytestmark = pytest.mark.unit

BASE: dict[str, Any] = {
    "jobId": "j-1",
    "owner": "alice",
    "source": {"bucket": "media", "key": "sources/j-1/source"},
    "outputs": {"renditions": [{"name": "720p", "height": 720}]},
    "resources": {"cpu": "1"},
    "activeDeadlineSeconds": 600,
}


def _with(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


WITHOUT_RESOURCES = {k: v for k, v in BASE.items() if k != "resources"}
PRESET = {"name": "web", "kind": "ClusterVideoPreset", "generation": 1}


# message -> (spec at creation, or (old, new) for an update) that the rule refuses.
CREATE_TWINS: dict[str, dict[str, Any]] = {
    "rendition names must be unique": _with(
        outputs={"renditions": [{"name": "a", "height": 240}, {"name": "a", "height": 360}]}
    ),
    "resources needs cpu or memory (omit it for the defaults)": _with(resources={}),
    "formats must be unique": _with(outputs={"formats": ["mp4", "mp4"]}),
    "rendition names audio and master are reserved (HLS playlists)": _with(
        outputs={"renditions": [{"name": "audio", "height": 240}]}
    ),
}
UPDATE_TWINS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "spec is immutable except spec.cancel": (BASE, WITHOUT_RESOURCES),
    "jobId is immutable; create a new VideoJob instead": (BASE, _with(jobId="j-2")),
    "owner is immutable; create a new VideoJob instead": (BASE, _with(owner="mallory")),
    "source is immutable; create a new VideoJob instead": (
        BASE, _with(source={"bucket": "media", "key": "other"})
    ),
    "outputs is immutable; create a new VideoJob instead": (
        BASE, _with(outputs={"renditions": [{"name": "480p", "height": 480}]})
    ),
    "activeDeadlineSeconds is immutable; create a new VideoJob instead": (
        BASE, _with(activeDeadlineSeconds=900)
    ),
    "resources is immutable; create a new VideoJob instead": (BASE, _with(resources={"cpu": "2"})),
    "userMetadata is immutable; create a new VideoJob instead": (
        _with(userMetadata={"a": "1"}), _with(userMetadata={"a": "2"})
    ),
    "priority is immutable; create a new VideoJob instead": (BASE, _with(priority="high")),
    "preset is immutable; create a new VideoJob instead": (
        _with(preset=PRESET), _with(preset={**PRESET, "generation": 2})
    ),
    "cancel cannot be undone": (_with(cancel=True), BASE),
}  # fmt: skip
# The name rule sits on the root (metadata.name). Its twin is the job id's limit: the API names
# every VideoJob after its job id.
NAME_TWINS: dict[str, str] = {NAME_TOO_LONG: "j" * (MAX_NAME_LENGTH + 1)}


def _rules(node: dict[str, Any]) -> Iterator[dict[str, str]]:
    yield from node.get("x-kubernetes-validations", [])
    for child in node.get("properties", {}).values():
        yield from _rules(child)
    if "items" in node:
        yield from _rules(node["items"])


def cel_rules() -> list[dict[str, str]]:
    version = build_crd()["spec"]["versions"][0]
    return list(_rules(version["schema"]["openAPIV3Schema"]))


def test_every_cel_rule_has_a_twin() -> None:
    messages = {rule["message"] for rule in cel_rules()}
    assert len(messages) >= 9
    assert messages == set(CREATE_TWINS) | set(UPDATE_TWINS) | set(NAME_TWINS)
    for rule in cel_rules():
        # Transition rules (oldSelf) can only be twinned by the update check, others at creation;
        # an optionalOldSelf rule also runs at creation.
        transition = "oldSelf" in rule["rule"] and not rule.get("optionalOldSelf")
        expected = UPDATE_TWINS if transition else {**CREATE_TWINS, **NAME_TWINS}
        assert rule["message"] in expected, rule


@pytest.mark.parametrize("message", sorted(CREATE_TWINS))
def test_the_model_refuses_what_the_rule_refuses_at_creation(message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        VideoJobSpec.model_validate(CREATE_TWINS[message])
    assert message in str(caught.value)


def test_the_job_id_limit_refuses_what_the_name_rule_refuses() -> None:
    # Fails if the API could pick a job id (so a VideoJob name) the API server refuses.
    with pytest.raises(ValidationError, match="jobId"):
        VideoJobSpec.model_validate(_with(jobId=NAME_TWINS[NAME_TOO_LONG]))
    assert VideoJobSpec.model_validate(_with(jobId="j" * MAX_NAME_LENGTH))


@pytest.mark.parametrize("message", sorted(UPDATE_TWINS))
def test_the_update_check_refuses_what_the_rule_refuses(message: str) -> None:
    old, new = (VideoJobSpec.model_validate(s) for s in UPDATE_TWINS[message])
    assert message in spec_update_violations(old, new)


def test_valid_input_passes_both_twins() -> None:
    spec = VideoJobSpec.model_validate(BASE)
    cancelled = VideoJobSpec.model_validate(_with(cancel=True))
    assert spec_update_violations(spec, cancelled) == []
    assert spec_update_violations(cancelled, cancelled) == []
