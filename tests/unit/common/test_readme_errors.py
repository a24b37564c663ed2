"""The README's error table is the catalogue users read: it must list every code, no more, with
the HTTP status the API really sends."""

import re
from pathlib import Path

import pytest

from vidpipe.errors import CATALOGUE, ErrorCode

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[3] / "README.md"
ROW = re.compile(r"^\| `(?P<code>[a-z_]+)` \| (?P<status>\d{3}) \|", re.MULTILINE)


def test_readme_error_table_matches_the_catalogue() -> None:
    section = README.read_text().split("## Errors", 1)[1].split("\n## ", 1)[0]
    table = {m["code"]: int(m["status"]) for m in ROW.finditer(section)}
    assert table == {code.value: spec.http_status for code, spec in CATALOGUE.items()}


def test_every_code_has_a_catalogue_entry() -> None:
    assert set(CATALOGUE) == set(ErrorCode)
