"""The stream's resume point: a hostile Last-Event-ID starts afresh instead of breaking it."""

from __future__ import annotations

import pytest

from vidpipe_api.streams import Position, parse_event_id

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "value",
    ["", "123", "_vj-1", "12a_vj-1", "9" * 14 + "_vj-1", "99999999999999999_vj-1", "x" * 81,
     "\u00b2_vj-1"],
)  # fmt: skip
def test_foreign_or_oversized_event_ids_start_afresh(value: str) -> None:
    # Fails if a 14-digit or longer time were accepted (datetime overflows on it after the
    # response began, and EventSource retries the same id forever), or if a non-ASCII digit
    # ("²", a digit to str.isdigit) reached int() and raised.
    assert parse_event_id(value) is None


def test_an_event_id_names_its_time_and_job() -> None:
    # Fails if a valid id were misread (a resume would skip or repeat changes).
    assert parse_event_id("1764547200000_vj-abc") == Position(1764547200000, "vj-abc")
