"""The preset CRDs (issue 16) come from the same `Outputs` model as the VideoJob's outputs: the
same schema, defaults and CEL rules, committed copies current, names as the constants say."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from vidpipe import constants
from vidpipe.crd import (
    PRESET_PRINTER_COLUMNS,
    build_preset_crd,
    preset_spec_schema,
    rendered_crds,
    spec_schema,
)
from vidpipe.models import PresetRef

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
FOLDERS = (REPO / "crds", REPO / "deploy" / "helm" / "vidpipe" / "crds")


def _rules(node: dict[str, Any], path: str = "") -> dict[str, Any]:
    """The CEL rules of a schema by dotted path."""
    found: dict[str, Any] = {}
    if "x-kubernetes-validations" in node:
        found[path] = node["x-kubernetes-validations"]
    for name, child in (node.get("properties") or {}).items():
        found.update(_rules(child, f"{path}.{name}"))
    return found


@pytest.mark.parametrize("folder", FOLDERS, ids=["crds", "chart"])
def test_every_generated_crd_is_committed_and_current(folder: Path) -> None:
    # Fails if a preset CRD is missing or stale in crds/ or the chart (`make manifests`).
    for name, text in rendered_crds().items():
        assert (folder / name).read_text() == text, f"stale {folder / name}: make manifests"
    assert set(rendered_crds()) == {
        f"{constants.CRD_NAME}.yaml",
        f"{constants.PRESET_PLURAL}.{constants.GROUP}.yaml",
        f"{constants.CLUSTER_PRESET_PLURAL}.{constants.GROUP}.yaml",
    }


def test_preset_outputs_are_the_videojob_outputs_schema() -> None:
    # Fails if the presets' outputs drift from the VideoJob's (one source of truth): another
    # type, default or validation rule on any field of outputs.
    job = dict(spec_schema()["properties"]["outputs"])
    assert job.pop("x-kubernetes-validations")[0]["rule"] == "self == oldSelf"  # jobs only
    assert preset_spec_schema()["properties"]["outputs"] == job


def test_presets_are_editable_and_carry_only_the_outputs_rules() -> None:
    # Fails if a VideoJob immutability rule leaked into the presets (editing a preset is the
    # point of its generation) or an outputs rule was lost.
    rules = _rules(preset_spec_schema())
    assert set(rules) == {".outputs.renditions", ".outputs.formats"}
    assert all("oldSelf" not in str(r) for r in rules.values())


@pytest.mark.parametrize(
    ("cluster", "scope", "kind", "plural"),
    [
        (False, "Namespaced", constants.PRESET_KIND, constants.PRESET_PLURAL),
        (True, "Cluster", constants.CLUSTER_PRESET_KIND, constants.CLUSTER_PRESET_PLURAL),
    ],
)
def test_preset_crd_names_scope_and_columns(
    cluster: bool, scope: str, kind: str, plural: str
) -> None:
    # Fails if a preset CRD's scope, names or printer columns change, or it gained a status.
    crd = build_preset_crd(cluster=cluster)
    assert crd["metadata"]["name"] == f"{plural}.{constants.GROUP}"
    assert crd["spec"]["scope"] == scope
    assert (crd["spec"]["names"]["kind"], crd["spec"]["names"]["plural"]) == (kind, plural)
    (version,) = crd["spec"]["versions"]
    assert "subresources" not in version
    assert "status" not in version["schema"]["openAPIV3Schema"]["properties"]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        c["name"] for c in PRESET_PRINTER_COLUMNS
    ]
    yaml.safe_dump(crd)  # plain data, no Python objects


def test_preset_ref_kinds_are_the_crd_kinds() -> None:
    # Fails if PresetRef.kind's allowed values drift from the preset CRDs' kinds.
    kinds = get_args(PresetRef.model_fields["kind"].annotation)
    assert set(kinds) == {constants.PRESET_KIND, constants.CLUSTER_PRESET_KIND}
