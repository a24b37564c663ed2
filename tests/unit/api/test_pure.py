"""Pure parts of the API: cursors, filenames, options, errors, rate windows, keys, manifests."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from tests.utils.records import job_record
from vidpipe.errors import CATALOGUE, BadInput, ErrorCode
from vidpipe.models import VideoJobSpec
from vidpipe_api import auth
from vidpipe_api.cluster import build_videojob
from vidpipe_api.errors import InvalidRequest, RateLimited, install_error_handlers
from vidpipe_api.filenames import sanitize_filename
from vidpipe_api.formstream import read_form
from vidpipe_api.jobs import downloads, job_view, new_job_id, spec_for
from vidpipe_api.options import parse_job_options, parse_metadata, parse_options
from vidpipe_api.pagination import Cursor, decode_cursor, encode_cursor
from vidpipe_api.ratelimit import Limit, limits_for, slot
from vidpipe_api.routers.uploads import part_size_for
from vidpipe_api.settings import Settings

pytestmark = pytest.mark.unit
MiB = 1024 * 1024


def test_cursor_round_trip_and_opaque() -> None:
    c = Cursor(1_700_000_000_123, "vj-abc")
    token = encode_cursor(c)
    assert "vj-abc" not in token and "=" not in token
    assert decode_cursor(token) == c


def _raw_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    ["", "!!!", "bm90IGpzb24", encode_cursor(Cursor(1, "x" * 64)),
     # Valid JSON, impossible times: datetime overflows (OSError, OverflowError: a 500).
     _raw_cursor('[100000000000000000000,"x"]'), _raw_cursor('[-1,"x"]'),
     _raw_cursor('[10000000000000,"x"]'), _raw_cursor('[true,"x"]'),
     # Nested thousands deep: RecursionError in the JSON decoder (a 500).
     _raw_cursor("[" * 5000 + "]" * 5000)],
)  # fmt: skip
def test_bad_cursor_is_validation_error(token: str) -> None:
    # Fails if a cursor the listings cannot use gets past decoding: it would fail later with
    # an error that is not the catalogue's 400.
    with pytest.raises(InvalidRequest):
        decode_cursor(token)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("clip.mp4", "clip.mp4"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\film.mov", "film.mov"),
        ("a\x00b\nc.mp4", "a_b_c.mp4"),
        ("..", None),
        ("", None),
        (None, None),
        (".hidden.mp4", "hidden.mp4"),
        ("e\u0301te\u0301.mp4", "\u00e9t\u00e9.mp4"),  # NFC
        ("x" * 300 + ".mp4", "x" * 251 + ".mp4"),
        ("a\u202eb.mp4", "ab.mp4"),  # bidi override removed
    ],
)
def test_sanitize_filename(raw: str | None, clean: str | None) -> None:
    assert sanitize_filename(raw) == clean


def test_options_shorthand_and_json() -> None:
    out = parse_options(None, {"renditions": "480p, 720", "poster": "no", "storyboard": "off"})
    assert [(r.name, r.height) for r in out.renditions] == [("480p", 480), ("720p", 720)]
    assert out.poster is False and out.storyboard.enabled is False
    default = parse_options(None, {})
    assert [r.name for r in default.renditions] == ["720p"]
    doc = {"renditions": [{"name": "hd", "height": 1080, "videoBitrateKbps": 4000}]}
    out = parse_options(json.dumps(doc), {})
    assert out.renditions[0].video_bitrate_kbps == 4000


@pytest.mark.parametrize(
    ("options", "fields"),
    [
        ("{bad", {}),
        ("[1]", {}),
        ('{"unknown": 1}', {}),
        ('{"renditions": []}', {}),
        (None, {"renditions": "big"}),
        (None, {"poster": "maybe"}),
        (None, {"renditions": "99999p"}),
        ("{}", {"poster": "true"}),
        ("[" * 5000 + "]" * 5000, {}),
    ],
)
def test_options_rejected(options: str | None, fields: dict[str, str]) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_options(options, fields)
    assert err.value.code == ErrorCode.VALIDATION_FAILED


def test_metadata_accepts_a_small_map_of_strings() -> None:
    # Fails if a valid map were refused or altered, or an absent one were not empty.
    assert parse_metadata('{"order": "42", "team_a-b": ""}') == {"order": "42", "team_a-b": ""}
    assert parse_metadata({"k": "v"}) == {"k": "v"}
    assert parse_metadata(None) == {} and parse_metadata("") == {}


@pytest.mark.parametrize(
    "metadata",
    [
        "not json",
        "[1]",
        '{"n": 1}',
        '{"k": null}',
        json.dumps({f"k{i}": "v" for i in range(17)}),
        json.dumps({"k" * 65: "v"}),
        json.dumps({"": "v"}),
        json.dumps({"sp ace": "v"}),
        json.dumps({"customer.id": "v"}),
        json.dumps({"$where": "v"}),
        json.dumps({"k": "v" * 513}),
        "[" * 5000 + "]" * 5000,
    ],
)
def test_metadata_refused(metadata: str) -> None:
    # Fails if metadata a webhook payload could not carry safely (non-strings, too many keys,
    # long or odd keys, long values) got into a job, or if JSON nested thousands deep raises
    # RecursionError (a 500 and a traceback in the log) instead of the catalogue's refusal.
    with pytest.raises(InvalidRequest) as err:
        parse_metadata(metadata)
    assert err.value.code == ErrorCode.VALIDATION_FAILED


class _Client:
    """In-process ASGI calls (starlette's TestClient warns with this httpx version)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return await c.get(path, params=params)

        return asyncio.run(go())

    def close(self) -> None:
        return None


def _app_raising(exc: Exception) -> _Client:
    app = FastAPI()
    seen: list[ErrorCode] = []
    install_error_handlers(app, on_error=seen.append)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    @app.get("/typed")
    async def typed(n: int) -> int:
        return n

    return _Client(app)


def test_error_mapping_shapes() -> None:
    c = _app_raising(BadInput(ErrorCode.UNSUPPORTED_FORMAT, "an HLS playlist"))
    r = c.get("/boom")
    assert r.status_code == 415 and r.json() == {
        "code": "unsupported_format",
        "message": "an HLS playlist",
    }
    r = c.get("/typed", params={"n": "x"})
    assert r.status_code == 422 and r.json()["code"] == "validation_failed"
    assert "input" not in json.dumps(r.json()["details"])
    r = c.get("/nowhere")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    c.close()


def test_unexpected_errors_hide_details() -> None:
    c = _app_raising(RuntimeError("secret path /etc/x"))
    r = c.get("/boom")
    assert r.status_code == 500
    assert r.json() == {"code": "internal_error", "message": "unexpected server error"}
    c.close()


def test_rate_limited_sets_retry_after() -> None:
    c = _app_raising(RateLimited("owner", "minute", 10, 17))
    r = c.get("/boom")
    assert r.status_code == 429 and r.headers["retry-after"] == "17"
    assert r.json()["details"]["limit"] == 10
    c.close()


def test_every_code_has_a_status() -> None:
    assert set(CATALOGUE) == set(ErrorCode)


def test_rate_windows() -> None:
    minute = Limit("owner", "alice", "minute", 5)
    at = 60 * 28_333_334 + 30.5  # 30.5 s into a minute
    s = slot(minute, at)
    assert s.counter_id == f"owner:alice:minute:{int(at // 60)}"
    assert s.retry_after == 30
    assert slot(minute, at + 29.4).counter_id == s.counter_id
    assert slot(minute, at + 29.5).counter_id != s.counter_id
    day = slot(Limit("global", "*", "day", 5), 86_400 * 3)
    assert day.retry_after == 86_400 and day.counter_id == "global:*:day:3"
    assert day.expire_at > datetime.fromtimestamp(86_400 * 4, UTC)


def test_limits_for_skips_disabled() -> None:
    s = Settings(rate_owner_per_minute=0, rate_global_per_day=0)
    assert [(x.scope, x.window) for x in limits_for("bob", s)] == [
        ("owner", "day"),
        ("global", "minute"),
    ]


def test_api_keys() -> None:
    key, doc = auth.key_document("alice", False, datetime.now(UTC))
    assert key.startswith("vpk_") and key not in json.dumps(doc, default=str)
    assert auth.key_id_of(key) == doc["_id"]
    assert auth.verify(key, doc["hash"])
    assert not auth.verify(key + "x", doc["hash"])
    assert auth.key_id_of("vpk_short") is None
    assert auth.credential_from_headers("Bearer abc", None) == "abc"
    assert auth.credential_from_headers("Basic abc", None) is None
    assert auth.credential_from_headers("Bearer abc", "xyz") == "xyz"
    with pytest.raises(ValueError):
        auth.key_document("Not Valid", False, datetime.now(UTC))


def test_placeholder_secrets_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(s3_secret_access_key="changeme")
    with pytest.raises(ValidationError):
        Settings(mongo_url="mongodb://admin:password@db/")


def test_job_ids_are_dns_labels() -> None:
    ids = {new_job_id() for _ in range(100)}
    assert len(ids) == 100
    for job_id in ids:
        VideoJobSpec.model_validate(
            {"jobId": job_id, "owner": "a", "source": {"bucket": "bkt", "key": "k"}}
        )


def test_videojob_manifest() -> None:
    spec = VideoJobSpec.model_validate(
        {
            "jobId": "vj-1",
            "owner": "alice",
            "source": {"bucket": "bkt", "key": "sources/vj-1/source"},
        }
    )
    manifest = build_videojob(spec, "jobs")
    assert manifest["metadata"]["name"] == "vj-1"
    assert manifest["metadata"]["namespace"] == "jobs"
    assert manifest["metadata"]["labels"]["media.vidpipe.io/owner"] == "alice"
    assert manifest["spec"]["jobId"] == "vj-1"
    assert manifest["spec"]["outputs"]["renditions"][0]["height"] == 720


def test_downloads_come_from_the_recorded_outputs_of_a_succeeded_job() -> None:
    # Fails if links are offered before the job succeeded, for a key the record does not list,
    # or for another job's key.
    names = ("poster.jpg", "480p.mp4", "metadata.json", "storyboard.vtt", "x/y")
    keys = [f"outputs/vj-1/{n}" for n in names] + ["outputs/vj-2/720p.mp4"]

    def sign(key: str) -> str:
        return "signed:" + key

    assert downloads(job_record(outputs=keys), sign) is None  # Pending
    for phase in ("Running", "Failed", "Cancelled"):
        assert downloads(job_record(phase=phase, outputs=keys), sign) == {"renditions": {}}
    assert downloads(job_record(phase="Succeeded"), sign) == {"renditions": {}}
    assert downloads(job_record(phase="Succeeded", outputs=keys), sign) == {
        "poster": "signed:outputs/vj-1/poster.jpg",
        "metadata": "signed:outputs/vj-1/metadata.json",
        "storyboard": {"vtt": "signed:outputs/vj-1/storyboard.vtt"},
        "manifest": "signed:outputs/vj-1/manifest.json",
        "renditions": {"480p": "signed:outputs/vj-1/480p.mp4"},
    }
    failed = job_record(phase="Failed", error={"code": "not_a_video", "message": "no"})
    view = job_view(failed)
    assert view["seedStatus"] == "Failed" and view["url"] == "/v1/jobs/vj-1"
    assert view["error"] == {"code": "not_a_video", "message": "no"}


def test_part_size_grows_for_huge_files() -> None:
    assert part_size_for(100 * MiB, 8 * MiB) == 8 * MiB
    assert part_size_for(200_000 * MiB, 8 * MiB) == 20 * MiB


async def _chunks(body: bytes, size: int) -> object:
    for i in range(0, len(body), size):
        yield body[i : i + size]


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_streaming_form_parser(chunk: int) -> None:
    boundary = "XyZ"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="renditions"\r\n\r\n480p\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="v\u00eddeo.mp4"\r\nContent-Type: video/mp4\r\n\r\n'
        ).encode()
        + b"\x00\x01DATA\r\n--notboundary"
        + f"\r\n--{boundary}--\r\n".encode()
    )
    received = bytearray()

    async def sink(_: object, data: bytes) -> None:
        received.extend(data)

    form = asyncio.run(
        read_form(f"multipart/form-data; boundary={boundary}", _chunks(body, chunk), sink)  # type: ignore[arg-type]
    )
    assert form.fields == {"renditions": "480p"}
    assert form.file is not None and form.file.filename == "v\u00eddeo.mp4"
    assert bytes(received) == b"\x00\x01DATA\r\n--notboundary"


def test_streaming_form_rejects_second_file_and_bad_type() -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nA\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="b"\r\n\r\nB\r\n--b--\r\n'
    )

    async def sink(_: object, data: bytes) -> None:
        return None

    with pytest.raises(InvalidRequest):
        asyncio.run(read_form("multipart/form-data; boundary=b", _chunks(body, 10), sink))  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        asyncio.run(read_form("application/json", _chunks(b"{}", 10), sink))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "normal"), ("", "normal"), ("high", "high"), (" LOW ", "low"), ("normal", "normal")],
)
def test_priority_is_parsed_with_normal_as_default(value: str | None, expected: str) -> None:
    # Fails if a missing priority were not normal or a valid one (any case) were refused.
    fields = {} if value is None else {"priority": value}
    assert parse_job_options(None, fields).priority.value == expected


@pytest.mark.parametrize("value", ["urgent", "1", "higher"])
def test_unknown_priority_is_a_validation_error_naming_the_field(value: str) -> None:
    # Fails if an unknown priority were accepted, or refused without naming the field.
    with pytest.raises(InvalidRequest) as err:
        parse_job_options(None, {"priority": value})
    assert err.value.code == ErrorCode.VALIDATION_FAILED
    assert err.value.details["field"] == "priority"
    assert "low, normal, high" in err.value.message


def test_the_spec_carries_the_record_priority() -> None:
    # Fails if the VideoJob (first creation or the reconciler's) lost the job's priority.
    record = job_record("vj-1").updated({"priority": "high"})
    assert spec_for(record).priority.value == "high"
    assert build_videojob(spec_for(record), "ns")["spec"]["priority"] == "high"
    assert job_view(record)["priority"] == "high"
