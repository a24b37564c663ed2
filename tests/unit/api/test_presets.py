"""Choosing a preset (issue 16): the request's parsing and the resolution order, as pure code."""

from __future__ import annotations

from typing import Any

import pytest

from tests.utils.records import job_record
from vidpipe.errors import ErrorCode
from vidpipe.models import Outputs
from vidpipe_api.cluster import build_videojob
from vidpipe_api.errors import InvalidRequest
from vidpipe_api.jobs import job_view, spec_for
from vidpipe_api.options import parse_job_options
from vidpipe_api.presets import UnknownPreset, resolve_preset

pytestmark = pytest.mark.unit


def preset(height: int, generation: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "generation": generation},
        "spec": {"outputs": {"renditions": [{"name": f"{height}p", "height": height}]}},
    }


def test_a_namespaced_preset_wins_over_the_cluster_one() -> None:
    # Fails if the cluster-wide preset were taken while the jobs namespace has its own.
    outputs, ref = resolve_preset("web", preset(480, generation=4), preset(1080))
    assert [r.height for r in outputs.renditions] == [480]
    assert (ref.name, ref.kind, ref.generation) == ("web", "VideoPreset", 4)


def test_the_cluster_preset_is_used_when_the_namespace_has_none() -> None:
    # Fails if a ClusterVideoPreset alone did not resolve, or its kind or generation were lost.
    outputs, ref = resolve_preset("web", None, preset(1080, generation=2))
    assert [r.height for r in outputs.renditions] == [1080]
    assert (ref.kind, ref.generation) == ("ClusterVideoPreset", 2)
    # The preset's other outputs take the VideoJob's defaults.
    assert outputs.poster == Outputs().poster and outputs.formats == Outputs().formats


def test_an_unknown_preset_is_a_422_naming_it() -> None:
    # Fails if a missing preset fell back to default outputs or its error did not name it.
    with pytest.raises(UnknownPreset) as err:
        resolve_preset("nope", None, None)
    assert err.value.code == ErrorCode.UNKNOWN_PRESET and err.value.http_status == 422
    assert err.value.details == {"preset": "nope"} and "'nope'" in err.value.message


def test_an_invalid_stored_preset_is_refused_naming_it() -> None:
    # Fails if outputs the model refuses were copied into a job.
    bad = {"metadata": {"generation": 1}, "spec": {"outputs": {"renditions": []}}}
    with pytest.raises(InvalidRequest) as err:
        resolve_preset("old", None, bad)
    assert err.value.details["preset"] == "old"


def test_a_preset_is_parsed_with_the_priority_and_left_to_resolve() -> None:
    # Fails if `preset` were ignored (default outputs with no preset) or dropped the priority.
    options = parse_job_options(None, {"preset": " web ", "priority": "high"})
    assert options.preset_name == "web" and options.preset is None
    assert options.priority.value == "high"
    assert parse_job_options(None, {}).preset_name is None


@pytest.mark.parametrize(
    ("options_json", "fields"),
    [
        ('{"poster": false}', {"preset": "web"}),
        (None, {"preset": "web", "renditions": "480p"}),
        (None, {"preset": "web", "formats": "hls"}),
        (None, {"preset": "Web"}),
        (None, {"preset": "web/../x"}),
        (None, {"preset": "w" * 254}),
    ],
)
def test_a_preset_with_explicit_options_or_a_bad_name_is_refused(
    options_json: str | None, fields: dict[str, str]
) -> None:
    # Fails if explicit outputs were silently merged with (or overridden by) a preset, or a
    # name that cannot be an object name reached the API server.
    with pytest.raises(InvalidRequest) as err:
        parse_job_options(options_json, fields)
    assert err.value.details["field"] == "preset"


def test_the_videojob_and_the_job_view_record_the_preset() -> None:
    # Fails if the preset reference is lost between the job record and the VideoJob (also the
    # reconciler's, which builds it from the record) or the client's view of the job.
    ref = {"name": "web", "kind": "ClusterVideoPreset", "generation": 3}
    record = job_record("vj-1").updated({"preset": ref})
    assert build_videojob(spec_for(record), "ns")["spec"]["preset"] == ref
    assert job_view(record)["preset"] == ref
    assert "preset" not in build_videojob(spec_for(job_record("vj-2")), "ns")["spec"]
