"""One version: vidpipe.__version__ is the code's, and the chart and pyproject.toml say the same."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

import vidpipe
import vidpipe_api

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]


def test_the_chart_ships_the_code_version() -> None:
    # Fails if Chart.yaml's version or appVersion (the default image tag) drifts from the code's.
    chart = yaml.safe_load((REPO / "deploy" / "helm" / "vidpipe" / "Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == vidpipe.__version__


def test_the_project_and_the_api_report_the_same_version() -> None:
    # Fails if pyproject.toml or the API (`GET /`, OpenAPI, the compat system view) keep their own.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["version"] == vidpipe_api.__version__ == vidpipe.__version__
