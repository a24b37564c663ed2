"""The processor's access file: checked against the job, never echoed, agreeing with the plan."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.unit.operator.conftest import videojob
from tests.unit.processor.factories import info
from vidpipe import keys
from vidpipe.models import VideoJobSpec
from vidpipe_operator.access import access_document, output_names
from vidpipe_processor.errors import InvalidJob, StorageError
from vidpipe_processor.plan import plan_outputs
from vidpipe_processor.storage import (
    MAX_PUT_BYTES,
    JobAccess,
    OutputTooLarge,
    Storage,
    TransferConfig,
    Upload,
)

pytestmark = pytest.mark.unit

SIGNATURE = "X-Amz-Signature=0123456789abcdef"


def _spec(**spec: Any) -> VideoJobSpec:
    return VideoJobSpec.model_validate(videojob("j-1", **spec)["spec"])


def _document(spec: VideoJobSpec, port: int = 9) -> dict[str, Any]:
    def presign(method: str, bucket: str, key: str, seconds: int) -> str:
        return f"http://127.0.0.1:{port}/{bucket}/{key}?{SIGNATURE}"

    from datetime import UTC, datetime

    return access_document(spec, "out", presign, 60, datetime(2026, 1, 1, tzinfo=UTC))


def _write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "access.json"
    path.write_text(json.dumps(document))
    return path


def test_loads_what_the_operator_writes(tmp_path: Path) -> None:
    spec = _spec()
    access = JobAccess.load(_write(tmp_path, _document(spec)), spec)
    assert access.source.key == "sources/j-1/source"
    assert access.output("720p.mp4").key == "outputs/j-1/720p.mp4"
    assert SIGNATURE not in repr(access)  # URLs are credentials: not in a repr
    with pytest.raises(InvalidJob, match=r"no upload URL for output 1080p\.mp4"):
        access.output("1080p.mp4")


def test_missing_or_garbled_file_is_a_bad_job_without_its_content(tmp_path: Path) -> None:
    with pytest.raises(InvalidJob, match="Secret is missing"):
        JobAccess.load(tmp_path / "absent.json", _spec())
    garbled = tmp_path / "garbled.json"
    garbled.write_text('{"version": 1, "source": "' + SIGNATURE + '"}')
    with pytest.raises(InvalidJob) as caught:
        JobAccess.load(garbled, _spec())
    assert SIGNATURE not in str(caught.value)


def test_a_file_for_another_job_is_refused(tmp_path: Path) -> None:
    other = _document(_spec())
    other["source"]["key"] = "sources/j-2/source"
    with pytest.raises(InvalidJob, match="another source"):
        JobAccess.load(_write(tmp_path, other), _spec())
    wrong_prefix = _document(_spec())
    wrong_prefix["outputs"]["720p.mp4"]["key"] = "outputs/j-2/720p.mp4"
    with pytest.raises(InvalidJob, match=r"outputs/j-2/720p\.mp4"):
        JobAccess.load(_write(tmp_path, wrong_prefix), _spec())


@pytest.mark.parametrize(
    ("height", "outputs"),
    [
        (1080, {}),
        (240, {}),  # nothing fits: the smallest name at the source size
        (
            1080,
            {
                "renditions": [{"name": "1080p", "height": 1080}, {"name": "4k", "height": 2160}],
                "poster": False,
                "storyboard": {"enabled": False},
            },
        ),
    ],
)
def test_every_planned_file_has_an_upload_url(height: int, outputs: dict[str, Any]) -> None:
    spec = _spec(outputs=outputs) if outputs else _spec()
    plan = plan_outputs(info(width=height * 16 // 9, height=height), spec.outputs)
    planned = {*plan.file_names, keys.METADATA_NAME, keys.MANIFEST_NAME}
    assert planned <= set(output_names(spec))


def test_an_output_over_5_gib_fails_before_anything_is_sent(tmp_path: Path) -> None:
    # A listener that records whether anyone connects: nothing must, the check comes first.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.2)
        spec = _spec()
        storage = Storage(
            JobAccess.load(_write(tmp_path, _document(spec, listener.getsockname()[1])), spec)
        )
        small, huge = tmp_path / "metadata.json", tmp_path / "720p.mp4"
        small.write_text("{}")
        with huge.open("wb") as handle:  # sparse: no disk used
            handle.truncate(MAX_PUT_BYTES + 1)
        uploads = [
            Upload(small, keys.METADATA_NAME, "application/json"),
            Upload(huge, "720p.mp4", "video/mp4"),
        ]
        with pytest.raises(
            OutputTooLarge, match=r"720p\.mp4 is 5\.00 GiB; one upload takes at most 5 GiB"
        ):
            storage.upload_all(uploads)
        with pytest.raises(TimeoutError):
            listener.accept()


def test_unreachable_storage_is_retried_then_a_storage_error_without_the_url(
    tmp_path: Path,
) -> None:
    spec = _spec()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: connections are refused
        access = JobAccess.load(_write(tmp_path, _document(spec, port)), spec)
        delays: list[float] = []
        storage = Storage(access, TransferConfig(max_attempts=4), sleep=delays.append)
        with pytest.raises(StorageError) as caught:
            storage.download_source(tmp_path / "source")
    assert len(delays) == 3 and delays == sorted(delays)
    message = str(caught.value)
    assert "downloading sources/j-1/source failed after 4 attempts" in message
    assert SIGNATURE not in message and "127.0.0.1" not in message
