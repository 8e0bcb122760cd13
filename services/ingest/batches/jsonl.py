"""A batch's input file as it arrives: read line by line from the spooled upload, each line
checked (a JSON object with a unique `custom_id`, `method` POST, a `url` batches take and a
`body`), and written to the object store in chunks of whole lines as they fill, so the file is
never held whole in memory. The first bad line refuses the file (400, naming it)."""

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from services.common.problems import Problem
from services.common.storage import Blob, ObjectStore
from services.ingest.batches.store import Chunk

ENDPOINTS = ("/v1/images/generations", "/v1/jobs")
CUSTOM_ID_LENGTH = 64
JSONL = "application/jsonl"


@dataclass(frozen=True, kw_only=True)
class FileLimits:
    """How large a file may be: bytes in all, lines, bytes a line, and bytes a chunk holds."""

    max_bytes: int
    max_lines: int
    max_line_bytes: int
    chunk_bytes: int


def chunk_key(tenant_id: str, file_id: UUID, *, chunk: int) -> str:
    return f"{tenant_id}/batch-files/{file_id}/{chunk:06d}.jsonl"


def bad_line(number: int, why: str) -> Problem:
    return Problem(status=400, slug="invalid-batch-file", detail=f"line {number + 1}: {why}", extra={"param": "file", "line": number + 1})


def checked_line(raw: bytes, number: int, *, limits: FileLimits) -> dict[str, Any]:
    """A line as a request of the batch, or the 400 naming what is wrong with it."""
    if len(raw) > limits.max_line_bytes:
        raise bad_line(number, f"a line may hold at most {limits.max_line_bytes} bytes")
    try:
        request = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise bad_line(number, "not a JSON object") from None
    if not isinstance(request, dict):
        raise bad_line(number, "not a JSON object")
    custom_id = request.get("custom_id")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= CUSTOM_ID_LENGTH or "\x00" in custom_id:
        raise bad_line(number, f"custom_id must be a string of 1 to {CUSTOM_ID_LENGTH} characters")
    if request.get("method") != "POST":
        raise bad_line(number, "method must be POST")
    if request.get("url") not in ENDPOINTS:
        raise bad_line(number, f"url must be one of {list(ENDPOINTS)}")
    if not isinstance(request.get("body"), dict):
        raise bad_line(number, "body must be a JSON object")
    return request


@dataclass(kw_only=True)
class Spooler:
    """Writes checked lines to the object store a chunk at a time."""

    objects: ObjectStore
    tenant_id: str
    file_id: UUID
    chunk_bytes: int
    chunks: list[Chunk] = field(default_factory=list)
    pending: list[bytes] = field(default_factory=list)
    pending_bytes: int = 0
    lines: int = 0

    async def add(self, line: bytes) -> None:
        self.pending.append(line + b"\n")
        self.pending_bytes += len(line) + 1
        self.lines += 1
        if self.pending_bytes >= self.chunk_bytes:
            await self.flush()

    async def flush(self) -> None:
        if not self.pending:
            return
        data = b"".join(self.pending)
        chunk = Chunk(chunk=len(self.chunks), first_line=self.lines - len(self.pending), lines=len(self.pending), bytes=len(data))
        await self.objects.put(self.objects.internal_bucket, chunk_key(self.tenant_id, self.file_id, chunk=chunk.chunk),
                               content=Blob(data, JSONL))
        self.chunks.append(chunk)
        self.pending, self.pending_bytes = [], 0

    async def discard(self) -> None:
        for chunk in self.chunks:
            await self.objects.delete(self.objects.internal_bucket, chunk_key(self.tenant_id, self.file_id, chunk=chunk.chunk))


async def raw_lines(pieces: AsyncIterator[bytes], max_line_bytes: int) -> AsyncIterator[bytes]:
    """The lines of data arriving in pieces, without their ends; a line past the bound is
    given as soon as it passes it (and refused by its check), never kept growing."""
    pending = b""
    async for piece in pieces:
        pending += piece
        while True:
            end = pending.find(b"\n")
            if end < 0:
                if len(pending) > max_line_bytes:
                    yield pending
                    pending = b""
                break
            yield pending[:end].rstrip(b"\r")
            pending = pending[end + 1:]
    if pending:
        yield pending.rstrip(b"\r")


@dataclass(frozen=True, kw_only=True)
class Received:
    lines: int
    bytes: int
    endpoint: str | None
    chunks: list[Chunk]


async def spool_file(pieces: AsyncIterator[bytes], spooler: Spooler, *, limits: FileLimits) -> Received:
    """Every line checked and stored; the file's one endpoint (None when it names several)."""
    seen: set[bytes] = set()  # 8-byte digests of custom_ids, bounded by the line limit
    endpoints: set[str] = set()
    size = 0
    try:
        number = -1
        async for raw in raw_lines(pieces, limits.max_line_bytes):
            number += 1
            size += len(raw) + 1
            if size > limits.max_bytes:
                raise Problem(status=400, slug="batch-file-too-large", detail=f"a batch file may hold at most {limits.max_bytes} bytes",
                              extra={"param": "file"})
            if number >= limits.max_lines:
                raise bad_line(number, f"a batch file may hold at most {limits.max_lines} lines")
            if not raw.strip():
                raise bad_line(number, "empty line")
            request = checked_line(raw, number, limits=limits)
            digest = hashlib.blake2b(request["custom_id"].encode(), digest_size=8).digest()
            if digest in seen:
                raise bad_line(number, f"custom_id {request['custom_id']!r} was used by an earlier line")
            seen.add(digest)
            endpoints.add(request["url"])
            await spooler.add(raw)
        if spooler.lines == 0:
            raise Problem(status=400, slug="invalid-batch-file", detail="the file has no lines", extra={"param": "file"})
        await spooler.flush()
    except BaseException:
        await spooler.discard()
        raise
    return Received(lines=spooler.lines, bytes=size, endpoint=endpoints.pop() if len(endpoints) == 1 else None, chunks=spooler.chunks)


@dataclass(frozen=True)
class StoredChunk:
    """Where a chunk of a tenant's file lies."""

    tenant_id: str
    file_id: UUID
    chunk: int

    @property
    def key(self) -> str:
        return chunk_key(self.tenant_id, self.file_id, chunk=self.chunk)


async def read_chunk(objects: ObjectStore, stored: StoredChunk) -> list[bytes]:
    """The chunk's lines, without their ends."""
    data = await objects.get(objects.internal_bucket, stored.key)
    return data.split(b"\n")[:-1]
