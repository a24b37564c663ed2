"""The terminal client's pure parts and its entry point (cli/vidpipe_cli)."""

from __future__ import annotations

import importlib
import io
import tomllib
from pathlib import Path

import pytest

from vidpipe_cli import main as cli

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]


def test_the_vidpipe_entry_point_is_the_clis_main() -> None:
    # Fails if pyproject's [project.scripts] names a function that does not exist (or the
    # admin CLI of the API instead of this one).
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, name = scripts["vidpipe"].partition(":")
    assert getattr(importlib.import_module(module), name) is cli.main


def test_the_cli_imports_nothing_of_the_server_packages() -> None:
    # Fails if the client starts depending on code only the server images have.
    source = (REPO / "cli" / "vidpipe_cli" / "main.py").read_text()
    for server in ("vidpipe_api", "from vidpipe.", "import vidpipe\n", "vidpipe_operator"):
        assert server not in source


def test_renditions_shorthand_becomes_the_options_document() -> None:
    # Fails if a presigned upload would send renditions the API's model refuses.
    assert cli.renditions_option("480p, 720") == [
        {"name": "480p", "height": 480},
        {"name": "720p", "height": 720},
    ]
    with pytest.raises(SystemExit):
        cli.renditions_option("hd")


def test_progress_off_a_terminal_prints_a_line_per_tenth() -> None:
    # Fails if a log file would get one line per chunk (or none at all).
    out = io.StringIO()
    progress = cli.Progress(out, "upload", 100 * 2**20)
    for _ in range(100):
        progress.advance(2**20)
    progress.finish("uploaded")
    lines = out.getvalue().splitlines()
    assert len(lines) == 12 and lines[-2].startswith("upload 100%")
    assert lines[-1] == "upload uploaded"


def test_no_api_key_exits_2_before_any_request() -> None:
    # Fails if the CLI would send requests without a credential.
    err = io.StringIO()
    assert cli.main(["--api-key", "", "jobs"], out=io.StringIO(), err=err) == 2
    assert "VIDPIPE_API_KEY" in err.getvalue()
