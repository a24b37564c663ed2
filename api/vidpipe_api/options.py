"""Processing options from a JSON document, form fields or query parameters, as one `JobOptions`.

Clients either send the full `options` JSON (the VideoJob `spec.outputs` shape, camelCase), the
shorthand fields `renditions=480p,720p`, `formats=hls,mp4`, `poster=false`, `storyboard=false`,
or name a `preset` (resolved by vidpipe_api.presets; never combined with the other two: a preset
is the platform team's whole choice of outputs). `priority` (low, normal, high) goes with any.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import ValidationError

from vidpipe.models import (
    METADATA_MAX_KEY_LENGTH,
    METADATA_MAX_KEYS,
    METADATA_MAX_VALUE_LENGTH,
    PRESET_NAME_PATTERN,
    OutputFormat,
    Outputs,
    PresetRef,
    Priority,
    Rendition,
)
from vidpipe_api.errors import Forbidden, InvalidRequest

# The packagings a client may name (the VideoJob's spec.outputs.formats).
FORMATS: tuple[str, ...] = get_args(OutputFormat)

SHORTHAND_FIELDS = frozenset({"renditions", "formats", "poster", "storyboard"})
_RENDITION = re.compile(r"^(\d{3,4})p?$")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
# No '.' or '$': MongoDB (and FerretDB) refuse them in stored field names.
_METADATA_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class JobOptions:
    """What a client chose for its job: the VideoJob's `outputs`, `priority` and `preset`.

    `preset_name` is a preset asked for and not yet resolved (`outputs` are then the defaults,
    a placeholder); resolving it fills `outputs` and `preset` and clears it."""

    outputs: Outputs
    priority: Priority = Priority.NORMAL
    preset: PresetRef | None = None
    preset_name: str | None = None


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidRequest(f"`{name}` must be true or false", {"field": name})


def _renditions(value: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in (v.strip().lower() for v in value.split(",")):
        if not item:
            continue
        match = _RENDITION.match(item)
        if not match:
            raise InvalidRequest(
                "`renditions` is a comma-separated list of heights like 480p,720p",
                {"field": "renditions", "value": item[:32]},
            )
        height = int(match.group(1))
        out.append({"name": f"{height}p", "height": height})
    return out


def _formats(value: str) -> list[str]:
    names = [v.strip().lower() for v in value.split(",") if v.strip()]
    for name in names:
        if name not in FORMATS:
            raise InvalidRequest(
                "`formats` is a comma-separated list of " + ", ".join(FORMATS),
                {"field": "formats", "value": name[:32]},
            )
    return names


def _validated(doc: Mapping[str, Any]) -> Outputs:
    try:
        return Outputs.model_validate(doc)
    except ValidationError as exc:
        errors = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"]}
            for e in exc.errors(include_input=False, include_url=False)
        ]
        raise InvalidRequest("invalid processing options", {"errors": errors}) from exc


def parse_options(options_json: str | None, fields: Mapping[str, str]) -> Outputs:
    """Build the outputs spec; the JSON document and the shorthand fields are exclusive."""
    shorthand = {k: v for k, v in fields.items() if k in SHORTHAND_FIELDS}
    if options_json is not None and options_json.strip():
        if shorthand:
            raise InvalidRequest("send either `options` or the shorthand fields, not both")
        try:
            doc = json.loads(options_json)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested thousands deep
            raise InvalidRequest("`options` is not valid JSON", {"field": "options"}) from exc
        if not isinstance(doc, dict):
            raise InvalidRequest("`options` must be a JSON object", {"field": "options"})
        return _validated(doc)
    doc_: dict[str, Any] = {}
    if "renditions" in shorthand:
        renditions = _renditions(shorthand["renditions"])
        if renditions:
            doc_["renditions"] = renditions
    if "formats" in shorthand:
        formats = _formats(shorthand["formats"])
        if formats:
            doc_["formats"] = formats
    if "poster" in shorthand:
        doc_["poster"] = _bool("poster", shorthand["poster"])
    if "storyboard" in shorthand:
        doc_["storyboard"] = {"enabled": _bool("storyboard", shorthand["storyboard"])}
    return _validated(doc_)


def parse_priority(value: str | None) -> Priority:
    """`priority`: low, normal (the default) or high, in any case."""
    if value is None or not value.strip():
        return Priority.NORMAL
    try:
        return Priority(value.strip().lower())
    except ValueError:
        raise InvalidRequest(
            "`priority` must be one of " + ", ".join(p.value for p in Priority),
            {"field": "priority", "value": value[:32]},
        ) from None


_PRESET_NAME = re.compile(PRESET_NAME_PATTERN)


def parse_job_options(options_json: str | None, fields: Mapping[str, str]) -> JobOptions:
    """The outputs (`parse_options`) or a `preset` name, and the `priority` field."""
    priority = parse_priority(fields.get("priority"))
    name = (fields.get("preset") or "").strip()
    if not name:
        return JobOptions(parse_options(options_json, fields), priority)
    if (options_json or "").strip() or SHORTHAND_FIELDS & set(fields):
        raise InvalidRequest(
            "send either `preset` or `options` / the shorthand fields, not both",
            {"field": "preset"},
        )
    if len(name) > 253 or not _PRESET_NAME.match(name):
        raise InvalidRequest(
            "`preset` is a preset's name: lowercase letters, digits, '-' and '.'",
            {"field": "preset", "value": name[:64]},
        )
    return JobOptions(Outputs(), priority, preset_name=name)


def permitted(options: JobOptions, *, admin: bool, high_admins_only: bool) -> JobOptions:
    """`options` if the caller may ask for them: `high` outranks other tenants' jobs (in Kueue
    mode it preempts their running ones), so unless the platform allows it to everyone, only
    an admin key may ask for it. Refused before a byte of the upload is stored."""
    if options.priority is Priority.HIGH and high_admins_only and not admin:
        raise Forbidden("priority `high` needs an admin key on this platform")
    return options


def parse_metadata(value: str | Mapping[str, Any] | None) -> dict[str, str]:
    """The client's `metadata`: a JSON object (or the parsed one) of at most 16 string values
    of up to 512 characters, under keys of letters, digits, `_` and `-` (at most 64)."""
    if value is None or value == "":
        return {}
    doc: Any = value
    if isinstance(value, str):
        try:
            doc = json.loads(value)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested thousands deep
            raise InvalidRequest("`metadata` is not valid JSON", {"field": "metadata"}) from exc
    if not isinstance(doc, Mapping):
        raise InvalidRequest("`metadata` must be a JSON object", {"field": "metadata"})
    if len(doc) > METADATA_MAX_KEYS:
        raise InvalidRequest(
            f"`metadata` has at most {METADATA_MAX_KEYS} keys", {"field": "metadata"}
        )
    for key, item in doc.items():
        if not (
            isinstance(key, str)
            and len(key) <= METADATA_MAX_KEY_LENGTH
            and _METADATA_KEY.match(key)
        ):
            raise InvalidRequest(
                f"`metadata` keys are 1-{METADATA_MAX_KEY_LENGTH} letters, digits, '_' or '-'",
                {"field": "metadata", "key": str(key)[:METADATA_MAX_KEY_LENGTH]},
            )
        if not isinstance(item, str) or len(item) > METADATA_MAX_VALUE_LENGTH:
            raise InvalidRequest(
                f"`metadata` values are strings of at most {METADATA_MAX_VALUE_LENGTH} characters",
                {"field": "metadata", "key": key},
            )
    return dict(doc)


def outputs_document(outputs: Outputs) -> dict[str, Any]:
    """The camelCase form stored in MongoDB and sent in the VideoJob spec."""
    return outputs.model_dump(mode="json", by_alias=True)


__all__ = [
    "JobOptions",
    "Outputs",
    "Rendition",
    "outputs_document",
    "parse_job_options",
    "parse_metadata",
    "parse_options",
    "parse_priority",
    "permitted",
]
