"""A streaming `multipart/form-data` reader fed from the ASGI request stream.

Starlette's `request.form()` spools file parts to temporary files before the route runs; here the
file part's bytes are handed to a sink as they arrive, so the upload reaches S3 while the client is
still sending and memory stays bounded by one request chunk plus the sink's buffer.

Everything outside the file part is bounded (`FormLimits`): the number of parts, and the bytes of
their values and part headers together. A field name may appear once (a repeated name would be
ambiguous and costs the sender nothing). The `file` part must be the last part: option fields
come before it, so the route validates them (`on_file_start`) before a byte is stored. We chose
this over buffering the file until the options arrive because the buffer would have to hold the
whole file, which is exactly the memory a streamed upload must not hold. A caller may name
`trailing_fields` that are still accepted after the file (the compatibility upload's `user_id`,
which old clients send in either order); it then checks them once the form has been read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from vidpipe_api.errors import FormLimitExceeded, InvalidRequest

FILE_FIELD = "file"


@dataclass(frozen=True)
class FormLimits:
    max_fields: int = 16  # non-file parts
    max_field_bytes: int = 64 * 1024  # their values plus every part's headers


@dataclass
class FilePart:
    filename: str | None
    content_type: str | None


@dataclass
class ParsedForm:
    fields: dict[str, str] = field(default_factory=dict)
    file: FilePart | None = None
    field_parts: int = 0  # non-file parts seen, repeated names included


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    is_file: bool = False
    value: bytearray = field(default_factory=bytearray)


def boundary_of(content_type: str) -> bytes:
    ctype, params = parse_options_header(content_type)
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise InvalidRequest("expected a multipart/form-data body with a boundary")
    return params[b"boundary"]


async def read_form(
    content_type: str,
    stream: AsyncIterator[bytes],
    on_file_data: Callable[[FilePart, bytes], Awaitable[None]],
    *,
    limits: FormLimits | None = None,
    on_file_start: Callable[[ParsedForm], Awaitable[None]] | None = None,
    file_field: str = FILE_FIELD,
    trailing_fields: frozenset[str] = frozenset(),
) -> ParsedForm:
    """Parse the form; the `file_field` part goes to `on_file_data`, text fields are collected.

    `on_file_start(form)` runs once the file part's headers are read, with every field sent
    before it and before any of its bytes reach `on_file_data`. Only `trailing_fields` may
    follow the file part.
    """
    limits = limits or FormLimits()
    # The parser is synchronous and calls back; events are queued per chunk and then replayed
    # here so the async sink can apply backpressure between chunks.
    events: list[tuple[str, bytes]] = []
    header_field = bytearray()
    header_value = bytearray()
    # Bytes outside the file's content: part headers (counted as they arrive, so one endless
    # header cannot grow a buffer) and field values.
    budget = {"bytes": 0}

    def spend(n: int) -> None:
        budget["bytes"] += n
        if budget["bytes"] > limits.max_field_bytes:
            raise FormLimitExceeded("fieldBytes", limits.max_field_bytes)

    def on_header_field(data: bytes, start: int, end: int) -> None:
        spend(end - start)
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        spend(end - start)
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        events.append(("header", bytes(header_field) + b"\x00" + bytes(header_value)))
        header_field.clear()
        header_value.clear()

    callbacks = {
        "on_part_begin": lambda: events.append(("begin", b"")),
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": lambda: events.append(("headers_done", b"")),
        "on_part_data": lambda data, start, end: events.append(("data", data[start:end])),
        "on_part_end": lambda: events.append(("end", b"")),
    }
    parser = MultipartParser(boundary_of(content_type), callbacks)  # type: ignore[arg-type]
    form = ParsedForm()
    part = _Part()
    seen_end = False

    async def replay() -> None:
        nonlocal part, seen_end
        for kind, payload in events:
            if kind == "begin":
                part = _Part()
            elif kind == "header":
                name, _, value = payload.partition(b"\x00")
                part.headers[name.decode("latin-1").lower()] = value.decode("latin-1")
            elif kind == "headers_done":
                _start_part(part, form, limits, file_field, trailing_fields)
                if part.is_file and on_file_start is not None:
                    await on_file_start(form)
            elif kind == "data":
                if part.is_file:
                    assert form.file is not None
                    await on_file_data(form.file, payload)
                else:
                    spend(len(payload))
                    part.value.extend(payload)
            elif kind == "end":
                if not part.is_file:
                    form.fields[part.name] = part.value.decode("utf-8", errors="replace")
                    form.field_parts += 1
                seen_end = True
        events.clear()

    try:
        async for chunk in stream:
            if chunk:
                parser.write(chunk)
                await replay()
        parser.finalize()
        await replay()
    except MultipartParseError as exc:
        raise InvalidRequest("malformed multipart body") from exc
    if not seen_end and form.file is None and not form.fields:
        raise InvalidRequest("empty multipart body")
    return form


def _start_part(
    part: _Part,
    form: ParsedForm,
    limits: FormLimits,
    file_field: str,
    trailing_fields: frozenset[str],
) -> None:
    disposition = part.headers.get("content-disposition", "")
    _, params = parse_options_header(disposition)
    part.name = params.get(b"name", b"").decode("utf-8", errors="replace")
    raw_filename = params.get(b"filename")
    if raw_filename is not None:
        part.filename = raw_filename.decode("utf-8", errors="replace")
    if form.file is not None and not (part.name in trailing_fields and raw_filename is None):
        if part.name == file_field:
            raise InvalidRequest(f"only one `{file_field}` part is accepted")
        raise InvalidRequest(
            f"form field `{part.name}` comes after the file; send option fields before "
            f"`{file_field}`",
            {"field": part.name},
        )
    if part.name == file_field:
        part.is_file = True
        ctype = part.headers.get("content-type")
        form.file = FilePart(part.filename, ctype.strip() if ctype else None)
    elif raw_filename is not None:
        raise InvalidRequest(
            f"unexpected file part `{part.name}`; send the video as `{file_field}`"
        )
    elif form.field_parts >= limits.max_fields:
        raise FormLimitExceeded("fields", limits.max_fields)
    elif part.name in form.fields:
        raise InvalidRequest(f"form field `{part.name}` is repeated", {"field": part.name})
