"""A multipart/form-data body read as it streams: each part's headers, then its data in
pieces, so a large file part goes on (to a line reader) without the body being held whole
or written anywhere first."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.parser import HeaderParser

from services.common.problems import Problem

MAX_HEADERS_BYTES = 16 * 1024


@dataclass(frozen=True)
class PartStart:
    name: str | None
    filename: str | None


@dataclass(frozen=True)
class PartData:
    data: bytes


@dataclass(frozen=True)
class PartEnd:
    pass


Event = PartStart | PartData | PartEnd


def boundary_of(content_type: str) -> bytes:
    message = HeaderParser().parsestr(f"Content-Type: {content_type}\r\n\r\n")
    boundary = message.get_param("boundary") if message.get_content_type() == "multipart/form-data" else None
    if not isinstance(boundary, str) or not boundary:
        raise Problem(status=400, slug="invalid-content-type", detail="send the file as multipart/form-data", extra={"param": "file"})
    return boundary.encode("latin-1")


def part_start(headers: bytes) -> PartStart:
    message = HeaderParser().parsestr(headers.decode("latin-1") + "\r\n\r\n")
    name = message.get_param("name", header="content-disposition")
    filename = message.get_param("filename", header="content-disposition")
    return PartStart(name if isinstance(name, str) else None, filename if isinstance(filename, str) else None)


async def form_events(chunks: AsyncIterator[bytes], boundary: bytes) -> AsyncIterator[Event]:
    """The body's parts, as they arrive; a body that ends before its closing boundary is refused."""
    delimiter = b"\r\n--" + boundary
    keep = len(delimiter) + 2  # what may be the start of a delimiter split between two chunks
    buffer, state = b"\r\n", "preamble"  # the leading CRLF lets the first boundary read as a delimiter
    async for chunk in chunks:
        buffer += chunk
        while True:
            if state in ("preamble", "data"):
                at = buffer.find(delimiter)
                if at < 0:
                    if len(buffer) > keep:
                        if state == "data":
                            yield PartData(buffer[:-keep])
                        buffer = buffer[-keep:]
                    break
                if state == "data":
                    if at:
                        yield PartData(buffer[:at])
                    yield PartEnd()
                buffer, state = buffer[at + len(delimiter):], "delimiter"
            if state == "delimiter":
                if buffer.startswith(b"--"):
                    return
                line_end = buffer.find(b"\r\n")
                if line_end < 0:
                    break
                buffer, state = buffer[line_end + 2:], "headers"
            if state == "headers":
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(buffer) > MAX_HEADERS_BYTES:
                        raise Problem(status=400, slug="invalid-form", detail="a part's headers are too long", extra={"param": "file"})
                    break
                yield part_start(buffer[:end])
                buffer, state = buffer[end + 4:], "data"
    raise Problem(status=400, slug="invalid-form", detail="the multipart body ended before its closing boundary", extra={"param": "file"})


@dataclass(kw_only=True)
class FileForm:
    """The text fields of a form whose one file part streams on (`file_pieces`)."""

    file_field: str
    fields: dict[str, str]
    filename: str | None = None
    has_file: bool = False


MAX_FIELD_BYTES = 4096


async def file_pieces(events: AsyncIterator[Event], form: FileForm) -> AsyncIterator[bytes]:
    """The file part's data as it arrives; the other parts' text kept in `form.fields` (each
    bounded) on the way, to the body's end."""
    current: PartStart | None = None
    async for event in events:
        if isinstance(event, PartStart):
            current = event
            if event.name == form.file_field:
                form.filename, form.has_file = event.filename, True
        elif isinstance(event, PartData) and current is not None:
            if current.name == form.file_field:
                yield event.data
            elif current.name is not None:
                text = form.fields.get(current.name, "") + event.data.decode("utf-8", errors="replace")
                if len(text) > MAX_FIELD_BYTES:
                    raise Problem(status=400, slug="invalid-form", detail=f"field {current.name!r} is too long",
                                  extra={"param": current.name})
                form.fields[current.name] = text
        else:
            current = None


async def capped(chunks: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """The body's chunks, refused (413) as soon as they pass `limit` bytes."""
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise Problem(status=413, slug="batch-file-too-large", detail=f"the upload is larger than {limit} bytes",
                          extra={"param": "file"})
        yield chunk
