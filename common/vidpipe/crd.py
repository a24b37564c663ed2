"""Build the VideoJob CustomResourceDefinition from the pydantic models.

The models are the one source of truth; this module translates pydantic's JSON schema into a
Kubernetes *structural* schema (no `$ref`, no `anyOf` for nullables, no `additionalProperties`
next to `properties`) and adds what JSON schema cannot say: CEL rules (spec immutable except a
one-way `cancel`), the status subresource and printer columns. `hack/gen_crd.py` writes the result.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from pydantic import BaseModel

from vidpipe import constants
from vidpipe.keys import HLS_RESERVED_NAMES
from vidpipe.models import (
    CANCEL_IS_ONE_WAY,
    IMMUTABLE,
    IMMUTABLE_FIELDS,
    MAX_NAME_LENGTH,
    NAME_TOO_LONG,
    OPTIONAL_IMMUTABLE_FIELDS,
    RESERVED_RENDITION_NAMES,
    RESOURCES_NEED_ONE,
    SPEC_IMMUTABLE,
    UNIQUE_FORMATS,
    UNIQUE_RENDITION_NAMES,
    Outputs,
    Storyboard,
    VideoJobSpec,
    VideoJobStatus,
    VideoPresetSpec,
)

# JSON-schema keywords that mean the same in Kubernetes OpenAPI v3; everything else is dropped
# (title is noise in `kubectl explain`, additionalProperties=false is implied by pruning).
_KEPT = (
    "description",
    "type",
    "format",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "maxProperties",
    "default",
)

# CEL rules keyed by a dotted path into the spec schema ("" is spec itself). Per-field rules give
# precise messages; transition rules only run on updates, so creation is unaffected. Every rule's
# message comes from vidpipe.models, where its twin check lives.
SPEC_RULES: dict[str, list[dict[str, str]]] = {
    "": [
        {
            "rule": " && ".join(
                f"has(oldSelf.{name}) == has(self.{name})" for name in OPTIONAL_IMMUTABLE_FIELDS
            ),
            "message": SPEC_IMMUTABLE,
        },
    ],
    **{
        name: [{"rule": "self == oldSelf", "message": f"{name} {IMMUTABLE}"}]
        for name in IMMUTABLE_FIELDS
    },
    "cancel": [{"rule": "self || !oldSelf", "message": CANCEL_IS_ONE_WAY}],
    "outputs.renditions": [
        {
            "rule": "self.all(r, self.exists_one(o, o.name == r.name))",
            "message": UNIQUE_RENDITION_NAMES,
        },
        {
            "rule": "self.all(r, !(r.name in ["
            + ", ".join(f"'{name}'" for name in HLS_RESERVED_NAMES)
            + "]))",
            "message": RESERVED_RENDITION_NAMES,
        },
    ],
    "outputs.formats": [
        {"rule": "self.all(f, self.exists_one(o, o == f))", "message": UNIQUE_FORMATS},
    ],
}
SPEC_RULES["resources"].append(
    {"rule": "has(self.cpu) || has(self.memory)", "message": RESOURCES_NEED_ONE}
)

# Rules on the whole object, where metadata.name is visible. optionalOldSelf makes the name rule
# apply at creation only: a VideoJob created before it (0.2.0) can still be updated, its status
# written and its deletion finished (Kubernetes >= 1.30, the chart's kubeVersion).
ROOT_RULES: list[dict[str, Any]] = [
    {
        "rule": f"oldSelf.hasValue() || size(self.metadata.name) <= {MAX_NAME_LENGTH}",
        "optionalOldSelf": True,
        "message": NAME_TOO_LONG,
    },
]

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Progress", "type": "integer", "jsonPath": ".status.progress"},
    # Kueue mode: the LocalQueue and the place in it while Queued (empty otherwise).
    {"name": "Queue", "type": "string", "jsonPath": ".status.queue"},
    {"name": "Position", "type": "integer", "jsonPath": ".status.queuePosition"},
    {"name": "Owner", "type": "string", "jsonPath": ".spec.owner"},
    {"name": "Priority", "type": "string", "jsonPath": ".spec.priority", "priority": 1},
    {"name": "Source", "type": "string", "jsonPath": ".spec.source.key", "priority": 1},
    {"name": "Attempts", "type": "integer", "jsonPath": ".status.attempts", "priority": 1},
    {"name": "Job", "type": "string", "jsonPath": ".status.jobName", "priority": 1},
    {"name": "Duration", "type": "string", "jsonPath": ".status.duration"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Return `node` with `$ref`s inlined, nullable unions collapsed and unknown keys dropped."""
    node = dict(node)
    if "$ref" in node:
        ref = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**ref, **node}  # the field's own default/description win over the definition's
    if "anyOf" in node:
        variants = [v for v in node.pop("anyOf") if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"only `T | None` unions map to a structural schema: {variants}")
        node = {**_resolve(variants[0], defs), **node}
    if "const" in node:
        node["enum"] = [node.pop("const")]
    out: dict[str, Any] = {k: node[k] for k in _KEPT if k in node}
    if out.get("default", 0) is None:
        del out["default"]  # nullable means "may be omitted"; a null default is not structural
    if "properties" in node:
        out["type"] = "object"
        out["properties"] = {k: _resolve(v, defs) for k, v in node["properties"].items()}
        if node.get("required"):
            out["required"] = list(node["required"])
    if "items" in node:
        out["items"] = _resolve(node["items"], defs)
    if isinstance(node.get("additionalProperties"), dict) and "properties" not in node:
        # A map (dict[str, T]): structural when it has no `properties` beside it.
        out["additionalProperties"] = _resolve(node["additionalProperties"], defs)
    if "type" not in out:
        raise ValueError(f"schema node without a type cannot be structural: {node}")
    return out


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema, by alias, as a Kubernetes structural schema."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _resolve(raw, raw.get("$defs", {}))


def _at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node = schema
    for part in filter(None, path.split(".")):
        node = node["properties"][part]
    return node


def _outputs_defaults(schema: dict[str, Any]) -> None:
    """pydantic leaves default_factory values out of the JSON schema; the API server should
    still fill them so that `kubectl get -o yaml` shows what will be produced."""
    _at(schema, "outputs")["default"] = Outputs().model_dump(by_alias=True, exclude_none=True)
    _at(schema, "outputs.storyboard")["default"] = Storyboard().model_dump(by_alias=True)
    _at(schema, "outputs.formats")["default"] = Outputs().formats
    _at(schema, "outputs.renditions")["default"] = _at(schema, "outputs")["default"]["renditions"]


def spec_schema() -> dict[str, Any]:
    schema = structural_schema(VideoJobSpec)
    _outputs_defaults(schema)
    # Always present, so its immutability rule (which runs only when old and new both have it)
    # also refuses removing it.
    _at(schema, "userMetadata")["default"] = {}
    for path, rules in SPEC_RULES.items():
        _at(schema, path)["x-kubernetes-validations"] = copy.deepcopy(rules)
    return schema


def status_schema() -> dict[str, Any]:
    schema = structural_schema(VideoJobStatus)
    conditions = _at(schema, "conditions")
    # Conditions are a map keyed by type, as metav1.Condition lists are, so that server-side
    # apply and strategic merges treat each type as one entry.
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return schema


def _definition(
    kind: str,
    plural: str,
    singular: str,
    short_names: tuple[str, ...],
    scope: str,
    columns: list[dict[str, Any]],
    root: dict[str, Any],
) -> dict[str, Any]:
    """A CustomResourceDefinition of our group, one version, `root` its object schema."""
    version: dict[str, Any] = {"name": constants.VERSION, "served": True, "storage": True}
    if "status" in root["properties"]:
        version["subresources"] = {"status": {}}
    version["additionalPrinterColumns"] = copy.deepcopy(columns)
    version["schema"] = {"openAPIV3Schema": root}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{constants.GROUP}",
            "labels": {constants.LABEL_PART_OF: constants.PART_OF},
        },
        "spec": {
            "group": constants.GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": list(short_names),
                "categories": [constants.PART_OF],
            },
            "versions": [version],
        },
    }


def _object(
    description: str, rules: list[dict[str, Any]], **properties: dict[str, Any]
) -> dict[str, Any]:
    """A resource's object schema: `spec` required, `rules` on the whole object."""
    root: dict[str, Any] = {"description": description, "type": "object", "required": ["spec"]}
    if rules:
        root["x-kubernetes-validations"] = copy.deepcopy(rules)
    root["properties"] = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        **properties,
    }
    return root


def build_crd() -> dict[str, Any]:
    root = _object(
        "A request to process one uploaded video.",
        ROOT_RULES,
        spec=spec_schema(),
        status=status_schema(),
    )
    names = (constants.KIND, constants.PLURAL, constants.SINGULAR, constants.SHORT_NAMES)
    return _definition(*names, "Namespaced", PRINTER_COLUMNS, root)


# -- presets (issue 16) ---------------------------------------------------------------------

# The API server prints only the first match of a column's JSONPath, so a list of rendition
# names cannot be a column: the whole list (as JSON) is one, in -o wide.
PRESET_PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Formats", "type": "string", "jsonPath": ".spec.outputs.formats"},
    {"name": "Description", "type": "string", "jsonPath": ".spec.description"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Renditions",
        "type": "string",
        "jsonPath": ".spec.outputs.renditions",
        "priority": 1,
    },
]


def preset_spec_schema() -> dict[str, Any]:
    """The VideoJob's outputs schema, defaults and CEL rules (one source: `Outputs`); presets are
    editable, so none of the VideoJob's immutability rules."""
    schema = structural_schema(VideoPresetSpec)
    _outputs_defaults(schema)
    for path, rules in SPEC_RULES.items():
        if path.startswith("outputs."):
            _at(schema, path)["x-kubernetes-validations"] = copy.deepcopy(rules)
    return schema


def build_preset_crd(*, cluster: bool) -> dict[str, Any]:
    """VideoPreset (namespaced) or ClusterVideoPreset: the same schema, another scope."""
    where = "the whole cluster" if cluster else "its namespace"
    root = _object(
        f"Named outputs that clients choose with preset=<name>, for {where}.",
        [],
        spec=preset_spec_schema(),
    )
    if cluster:
        kind, plural = constants.CLUSTER_PRESET_KIND, constants.CLUSTER_PRESET_PLURAL
        short, scope = constants.CLUSTER_PRESET_SHORT_NAMES, "Cluster"
    else:
        kind, plural = constants.PRESET_KIND, constants.PRESET_PLURAL
        short, scope = constants.PRESET_SHORT_NAMES, "Namespaced"
    return _definition(kind, plural, kind.lower(), short, scope, PRESET_PRINTER_COLUMNS, root)


HEADER = (
    "# Generated by hack/gen_crd.py from common/vidpipe/models.py (`make manifests`).\n"
    "# Do not edit: change the models and regenerate; a unit test keeps this file in sync.\n"
)


class _NoAliasDumper(yaml.SafeDumper):
    # Shared default objects would otherwise become &id001 anchors: valid YAML, hard to review.
    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_crd(crd: dict[str, Any] | None = None) -> str:
    """A CRD (the VideoJob's by default) as the YAML text committed to crds/ and the chart."""
    body = yaml.dump(
        crd or build_crd(),
        Dumper=_NoAliasDumper,
        sort_keys=False,
        width=100,
        default_flow_style=False,
    )
    return HEADER + body


def rendered_crds() -> dict[str, str]:
    """Every CRD by file name (`<plural>.<group>.yaml`): what hack/gen_crd.py writes."""
    presets = [build_preset_crd(cluster=False), build_preset_crd(cluster=True)]
    return {
        f"{constants.CRD_NAME}.yaml": render_crd(),
        **{f"{crd['metadata']['name']}.yaml": render_crd(crd) for crd in presets},
    }
