"""The content of a batch's files, streamed: an input file chunk by chunk from the object
store; an output or error file made from the batch's recorded lines a page at a time, with
links signed as it is read (so they have not expired, however late it is read)."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from services.common.runtime import ServiceRuntime
from services.ingest.batches import jsonl
from services.ingest.batches import store as batch_store
from services.ingest.batches.lines import UNFINISHED, delivered, error_line, never_run_line, output_line
from services.ingest.compat import Pictures, images_response
from services.ingest.jobs import JobView

PAGE = 200


@dataclass(frozen=True)
class Contents:
    """Where a file's content comes from: the database, and the object store its images are in."""

    runtime: ServiceRuntime
    pictures: Pictures

    async def input(self, file: dict[str, Any]) -> AsyncIterator[bytes]:
        async with self.runtime.pool.connection() as conn:
            chunks = await batch_store.chunks_of(conn, file["id"])
        for chunk in chunks:
            stored = jsonl.StoredChunk(file["tenant_id"], file["id"], chunk.chunk)
            for line in await jsonl.read_chunk(self.pictures.objects, stored):
                yield line + b"\n"

    async def results(self, file: dict[str, Any]) -> AsyncIterator[bytes]:
        """The output file's lines (each delivered job's answer) or the error file's (each line
        refused, or whose job ended without images), in the order of the input's lines."""
        async with self.runtime.pool.connection() as conn:
            batch = await batch_store.read_batch(conn, file["batch_id"])
        assert batch is not None
        after = -1
        while True:
            async with self.runtime.pool.connection() as conn:
                rows = await batch_store.lines_page(conn, batch["id"], after=after, limit=PAGE)
            for row in rows:
                view = delivered(row)
                if file["kind"] == "output" and view is not None:
                    yield output_line(row, await self.answer(row, view, endpoint=batch["endpoint"]))
                elif file["kind"] == "error" and view is None:
                    yield error_line(row, batch["status"])
            if len(rows) < PAGE:
                break
            after = rows[-1]["line"]
        if file["kind"] == "error" and batch["status"] in UNFINISHED:
            async for line in self.never_run(batch):
                yield line

    async def never_run(self, batch: dict[str, Any]) -> AsyncIterator[bytes]:
        """The error file's lines of the input lines the batch ended before submitting (from
        its `next_line` on), read from the input a chunk at a time."""
        first = batch["next_line"]
        async with self.runtime.pool.connection() as conn:
            chunks = [c for c in await batch_store.chunks_of(conn, batch["input_file_id"])
                      if c.first_line + c.lines > first]
        for chunk in chunks:
            stored = jsonl.StoredChunk(batch["tenant_id"], batch["input_file_id"], chunk.chunk)
            for line, raw in enumerate(await jsonl.read_chunk(self.pictures.objects, stored), chunk.first_line):
                if line >= first:
                    yield never_run_line(line, raw, batch_status=batch["status"])

    async def answer(self, row: dict[str, Any], view: JobView, *, endpoint: str) -> Any:
        """What the line's request would have answered: OpenAI's images answer, or the job."""
        if endpoint == "/v1/jobs":
            objects, ttl_s = self.pictures.objects, self.pictures.link_ttl_s
            outputs = [o.model_copy(update=objects.signed_links(o.key, o.thumbnail_key, ttl_s=ttl_s)) for o in view.outputs]
            return view.model_copy(update={"outputs": outputs})
        asked = row["asked"] or {"response_format": "url", "quality": "high"}
        data = await self.pictures.data(view, asked["response_format"])
        return images_response(view, data, quality=asked["quality"])
