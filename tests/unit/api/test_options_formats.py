"""`formats`, the packagings a client picks (issue 15): the shorthand field, the JSON document,
and the one 422 (`validation_failed`) for a name the processor does not make."""

from __future__ import annotations

import json

import pytest

from vidpipe.errors import ErrorCode
from vidpipe_api.errors import InvalidRequest
from vidpipe_api.options import FORMATS, parse_options

pytestmark = pytest.mark.unit


def test_formats_default_to_both_and_follow_the_shorthand_field() -> None:
    # Fails if the default stopped being HLS + MP4 or the comma-separated field were misread.
    assert parse_options(None, {}).formats == ["hls", "mp4"]
    assert parse_options(None, {"formats": " HLS "}).formats == ["hls"]
    assert parse_options(None, {"formats": "mp4,hls"}).formats == ["mp4", "hls"]
    assert parse_options(None, {"formats": ""}).formats == ["hls", "mp4"]
    assert parse_options(json.dumps({"formats": ["mp4"]}), {}).formats == ["mp4"]
    assert FORMATS == ("hls", "mp4")


@pytest.mark.parametrize(
    ("options", "fields", "detail"),
    [
        (None, {"formats": "hls,dash"}, {"field": "formats", "value": "dash"}),
        (None, {"formats": "mp4,mp4"}, None),
        ('{"formats": []}', {}, None),
        ('{"formats": ["webm"]}', {}, None),
    ],
)
def test_unknown_or_repeated_formats_are_a_validation_error(
    options: str | None, fields: dict[str, str], detail: dict[str, str] | None
) -> None:
    # Fails if an unknown or repeated format reached the VideoJob instead of a 422.
    with pytest.raises(InvalidRequest) as err:
        parse_options(options, fields)
    assert err.value.code == ErrorCode.VALIDATION_FAILED
    if detail is not None:
        assert err.value.details == detail
