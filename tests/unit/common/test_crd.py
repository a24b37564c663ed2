"""The CRD is generated from the models: committed copies are current and the schema structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from vidpipe import constants
from vidpipe.crd import PRINTER_COLUMNS, SPEC_RULES, build_crd, render_crd, spec_schema

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
COMMITTED = REPO / "crds" / f"{constants.CRD_NAME}.yaml"
CHART_COPY = REPO / "deploy" / "helm" / "vidpipe" / "crds" / f"{constants.CRD_NAME}.yaml"


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = [(path, node)]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _walk(value, f"{path}/{i}")
    return found


def test_committed_crd_is_generated_from_the_models() -> None:
    assert COMMITTED.read_text() == render_crd(), "stale: run `make manifests`"


def test_chart_copy_is_byte_identical() -> None:
    assert CHART_COPY.read_bytes() == COMMITTED.read_bytes(), "stale chart copy: `make manifests`"


def test_names_match_the_shared_constants() -> None:
    crd = yaml.safe_load(COMMITTED.read_text())
    assert crd["metadata"]["name"] == "videojobs.media.vidpipe.io"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "VideoJob",
        "videojobs",
        ["vj"],
    )
    assert crd["spec"]["scope"] == "Namespaced"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}


def test_schema_is_structural() -> None:
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        if not isinstance(node, dict) or path.endswith("/default"):
            continue
        assert not {"$ref", "anyOf", "oneOf", "allOf", "title"} & set(node)
        if "additionalProperties" in node:  # a map: structural only as a typed schema, alone
            assert "properties" not in node, path
            assert isinstance(node["additionalProperties"], dict), path
            assert "type" in node["additionalProperties"], path
        if path.endswith("/properties"):
            for name, child in node.items():
                assert "type" in child, f"{path}/{name} has no type"
        if "default" in node:
            assert node["default"] is not None, f"{path}: null default"


def test_nullable_fields_become_plain_optional_types() -> None:
    spec = spec_schema()
    assert spec["properties"]["activeDeadlineSeconds"]["type"] == "integer"
    assert spec["properties"]["activeDeadlineSeconds"]["minimum"] == 30
    rendition = spec["properties"]["outputs"]["properties"]["renditions"]["items"]
    assert rendition["properties"]["videoBitrateKbps"] == {
        "description": "Target video bitrate; CRF quality mode when omitted",
        "type": "integer",
        "minimum": 100,
        "maximum": 100000,
    }
    assert rendition["required"] == ["name", "height"]
    assert spec["required"] == ["jobId", "owner", "source"]


def test_default_factories_become_schema_defaults() -> None:
    outputs = spec_schema()["properties"]["outputs"]
    assert outputs["default"]["renditions"] == [
        {"name": "720p", "height": 720, "audioBitrateKbps": 128}
    ]
    assert outputs["properties"]["storyboard"]["default"]["intervalSeconds"] == 10.0


def test_every_cel_rule_sits_on_an_existing_field() -> None:
    spec = spec_schema()
    for path in SPEC_RULES:
        node = spec
        for part in filter(None, path.split(".")):
            node = node["properties"][part]
        assert node["x-kubernetes-validations"] == SPEC_RULES[path]
    # every spec field except cancel is immutable
    immutable = {
        p for p, rules in SPEC_RULES.items() if any(r["rule"] == "self == oldSelf" for r in rules)
    }
    assert immutable == set(spec["properties"]) - {"cancel"}


def test_printer_columns_read_well() -> None:
    names = [c["name"] for c in PRINTER_COLUMNS if "priority" not in c]
    assert names == ["Phase", "Progress", "Queue", "Position", "Owner", "Duration", "Age"]
    status = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    for column in PRINTER_COLUMNS:
        root, field, *_rest = column["jsonPath"].lstrip(".").split(".")
        if root == "status":
            assert field in status["properties"], column


def test_conditions_are_a_map_keyed_by_type() -> None:
    status = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert conditions["items"]["required"] == ["type", "status", "reason", "lastTransitionTime"]
