"""Pure parts of the abuse limits: slot table, body timeouts, form limits, part lengths, keys."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from tests.unit.api.test_pure import _app_raising
from vidpipe_api.errors import (
    FormLimitExceeded,
    InvalidRequest,
    TooManyConcurrentUploads,
    UploadTimeout,
)
from vidpipe_api.formstream import FormLimits, ParsedForm, read_form
from vidpipe_api.limits import UploadSlots, guarded
from vidpipe_api.reaper import job_id_of
from vidpipe_api.routers.uploads import part_lengths
from vidpipe_api.settings import Settings

pytestmark = pytest.mark.unit
MiB = 1024 * 1024


def test_slots_cap_owner_then_instance_and_give_back() -> None:
    table = UploadSlots(total=3, per_owner=2)
    with table.hold("a"), table.hold("a"):
        with pytest.raises(TooManyConcurrentUploads) as owner_full, table.hold("a"):
            pass
        assert owner_full.value.details["scope"] == "owner"
        with table.hold("b"):
            with pytest.raises(TooManyConcurrentUploads) as full, table.hold("c"):
                pass
            assert full.value.details["scope"] == "instance"
            assert table.active == 3
    assert table.active == 0 and table.by_owner == {}


def test_slot_is_given_back_when_the_upload_fails() -> None:
    table = UploadSlots(total=1, per_owner=1)
    with pytest.raises(RuntimeError), table.hold("a"):
        raise RuntimeError("storage went away")
    with table.hold("a"):
        assert table.active == 1


def test_concurrency_refusal_is_429_with_retry_after() -> None:
    c = _app_raising(TooManyConcurrentUploads("owner", 4, 5))
    r = c.get("/boom")
    assert r.status_code == 429 and r.headers["retry-after"] == "5"
    assert r.json() == {
        "code": "too_many_concurrent_uploads",
        "message": r.json()["message"],
        "details": {"scope": "owner", "limit": 4, "retryAfterSeconds": 5},
    }
    c.close()


async def _paced(chunks: list[tuple[float, bytes]]) -> AsyncIterator[bytes]:
    for delay, chunk in chunks:
        await asyncio.sleep(delay)
        yield chunk


async def _collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in stream])


def test_guarded_passes_a_steady_body() -> None:
    body = asyncio.run(_collect(guarded(_paced([(0.01, b"a")] * 5), 1.0, 5.0)))
    assert body == b"aaaaa"


def test_guarded_idle_timeout() -> None:
    with pytest.raises(UploadTimeout) as err:
        asyncio.run(_collect(guarded(_paced([(0, b"a"), (1.0, b"b")]), 0.2, 5.0)))
    assert err.value.details == {"timeout": "idle", "seconds": 0.2}
    assert err.value.http_status == 408


def test_guarded_total_timeout_against_a_trickle() -> None:
    # Every chunk within the idle timeout, the whole body past the total.
    with pytest.raises(UploadTimeout) as err:
        asyncio.run(_collect(guarded(_paced([(0.1, b"a")] * 20), 0.5, 0.6)))
    assert err.value.details["timeout"] == "total"


async def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


def _form(*parts: tuple[str, bytes], boundary: str = "b") -> bytes:
    out = b""
    for name, value in parts:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'.encode()
        out += b'; filename="v.mp4"\r\n\r\n' if name == "file" else b"\r\n\r\n"
        out += value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _parse(body: bytes, limits: FormLimits, chunk: int = 64 * 1024) -> tuple[ParsedForm, bytes]:
    received = bytearray()

    async def sink(_: object, data: bytes) -> None:
        received.extend(data)

    form = asyncio.run(
        read_form("multipart/form-data; boundary=b", _chunks(body, chunk), sink, limits=limits)
    )
    return form, bytes(received)


@pytest.mark.parametrize("chunk", [1, 13, 65536])
def test_form_field_count_counts_parts_not_names(chunk: int) -> None:
    limits = FormLimits(max_fields=3, max_field_bytes=64 * 1024)
    form, data = _parse(_form(("a", b"1"), ("b", b"2"), ("c", b"3"), ("file", b"V")), limits, chunk)
    assert form.fields == {"a": "1", "b": "2", "c": "3"} and data == b"V"
    with pytest.raises(FormLimitExceeded) as err:
        _parse(_form(*[(f"f{i}", b"x") for i in range(4)], ("file", b"V")), limits, chunk)
    assert err.value.details == {"limit": "fields", "max": 3}


def test_form_repeated_name_is_refused() -> None:
    limits = FormLimits()
    with pytest.raises(InvalidRequest) as err:
        _parse(_form(*[("renditions", b"480p")] * 10_000, ("file", b"V")), limits)
    assert err.value.details == {"field": "renditions"}


@pytest.mark.parametrize(
    "parts",
    [
        (("options", b"x" * 5000),),
        (("a", b"x" * 900), ("b", b"x" * 900), ("c", b"x" * 900)),
        # python-multipart refuses a single header line over 4 KiB; under that, ours counts.
        (("n" * 4000, b"1"),),
    ],
    ids=["one-value", "values-together", "header"],
)
def test_form_bytes_outside_the_file_are_bounded(parts: tuple[tuple[str, bytes], ...]) -> None:
    limits = FormLimits(max_fields=16, max_field_bytes=2048)
    with pytest.raises(FormLimitExceeded) as err:
        _parse(_form(*parts, ("file", b"V")), limits, chunk=512)
    assert err.value.details["limit"] == "fieldBytes"
    # The file's own bytes never count.
    _, data = _parse(_form(("a", b"1"), ("file", b"V" * 100_000)), limits, chunk=512)
    assert len(data) == 100_000


def test_form_fields_after_the_file_are_refused_before_they_are_read() -> None:
    with pytest.raises(InvalidRequest) as err:
        _parse(_form(("file", b"V"), ("renditions", b"480p")), FormLimits())
    assert "before" in err.value.message and err.value.details == {"field": "renditions"}


def test_on_file_start_sees_the_fields_before_any_file_byte() -> None:
    order: list[str] = []

    async def on_start(form: ParsedForm) -> None:
        order.append(f"start:{sorted(form.fields)}")
        if form.fields.get("renditions") == "bad":
            raise InvalidRequest("bad options")

    async def sink(_: object, data: bytes) -> None:
        order.append("data")

    body = _form(("renditions", b"480p"), ("poster", b"false"), ("file", b"VIDEO"))
    asyncio.run(
        read_form("multipart/form-data; boundary=b", _chunks(body, 3), sink, on_file_start=on_start)
    )
    assert order[0] == "start:['poster', 'renditions']" and set(order[1:]) == {"data"}
    order.clear()
    bad = _form(("renditions", b"bad"), ("file", b"VIDEO"))
    with pytest.raises(InvalidRequest):
        asyncio.run(
            read_form(
                "multipart/form-data; boundary=b", _chunks(bad, 64), sink, on_file_start=on_start
            )
        )
    assert "data" not in order


@pytest.mark.parametrize(
    ("size", "part", "lengths"),
    [
        (1, 5 * MiB, [1]),
        (5 * MiB, 5 * MiB, [5 * MiB]),
        (12 * MiB + 3, 5 * MiB, [5 * MiB, 5 * MiB, 2 * MiB + 3]),
    ],
)
def test_part_lengths(size: int, part: int, lengths: list[int]) -> None:
    assert part_lengths(size, part) == lengths
    assert sum(part_lengths(size, part)) == size


def test_reaper_reads_only_keys_the_api_writes() -> None:
    assert job_id_of("sources/vj-abc/source") == "vj-abc"
    for key in (
        "sources/vj-abc/other",
        "sources/readme",
        "outputs/vj-abc/source",
        "sources//source",
    ):
        assert job_id_of(key) is None, key


def _rendered_api_env(*sets: str) -> dict[str, str]:
    repo = Path(__file__).resolve().parents[3]
    helm = repo / "bin" / "helm"
    if not helm.exists():
        raise FileNotFoundError(f"{helm} is missing: run `make tools` first")
    argv = [str(helm), "template", "rel", str(repo / "deploy" / "helm" / "vidpipe")]
    argv += ["--kube-version", "1.33.0", "--set", "s3.endpoint=http://10.88.0.1:9000"]
    for value in sets:
        argv += ["--set", value]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    (api,) = [
        d
        for d in yaml.safe_load_all(out.stdout)
        if d and d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-api")
    ]
    env = api["spec"]["template"]["spec"]["containers"][0]["env"]
    return {e["name"]: e["value"] for e in env if "value" in e}


def test_chart_limits_reach_the_api_settings() -> None:
    """Every `api.limits` value becomes a VIDPIPE_API_* variable the settings class reads, and
    the chart's defaults are the code's defaults."""
    env = _rendered_api_env("api.limits.maxConcurrentUploadsPerOwner=7")
    fields = set(Settings.model_fields)
    names = {k.removeprefix("VIDPIPE_API_").lower() for k in env if k.startswith("VIDPIPE_API_")}
    assert names <= fields, names - fields
    limit_fields = {
        "max_concurrent_uploads",
        "max_concurrent_uploads_per_owner",
        "max_parts_in_flight",
        "upload_idle_timeout_seconds",
        "upload_total_timeout_seconds",
        "form_max_fields",
        "form_max_field_bytes",
        "max_open_sessions_per_owner",
        "reaper_interval_seconds",
        "reaper_grace_seconds",
    }
    assert limit_fields <= names
    chosen = Settings.model_validate({n: env[f"VIDPIPE_API_{n.upper()}"] for n in limit_fields})
    defaults = Settings()
    for name in limit_fields - {"max_concurrent_uploads_per_owner"}:
        assert getattr(chosen, name) == getattr(defaults, name), name
    assert chosen.max_concurrent_uploads_per_owner == 7
