"""The shared VideoJob models: defaults, aliases and the limits the CRD inherits."""

import pytest
from pydantic import ValidationError

from vidpipe.keys import output_key, source_key
from vidpipe.models import VideoJobSpec
from vidpipe.phases import SEED_STATUS, Phase

pytestmark = pytest.mark.unit

MINIMAL = {"jobId": "j-1", "owner": "alice", "source": {"bucket": "media", "key": "sources/j-1"}}


def test_minimal_spec_gets_defaults() -> None:
    spec = VideoJobSpec.model_validate(MINIMAL)
    assert [r.height for r in spec.outputs.renditions] == [720]
    assert spec.outputs.poster is True
    assert spec.cancel is False
    assert spec.model_dump(by_alias=True)["jobId"] == "j-1"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"jobId": "Bad_ID"}, "jobId"),
        ({"owner": ""}, "owner"),
        ({"outputs": {"renditions": []}}, "renditions"),
        ({"outputs": {"renditions": [{"name": "x", "height": 100}]}}, "height"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_invalid_specs_are_refused(patch: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        VideoJobSpec.model_validate({**MINIMAL, **patch})


def test_every_phase_has_a_seed_name() -> None:
    assert set(SEED_STATUS) == set(Phase)
    assert Phase.SUCCEEDED.terminal and not Phase.RUNNING.terminal


def test_keys_come_from_the_job_id() -> None:
    assert source_key("abc") == "sources/abc/source"
    assert output_key("abc", "720p.mp4") == "outputs/abc/720p.mp4"
    with pytest.raises(ValueError, match="plain file name"):
        output_key("abc", "../escape")
