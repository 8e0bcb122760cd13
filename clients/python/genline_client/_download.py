"""Writing a delivered image or clip to disk, checked against the sha256 the job names.

The file appears under its final name only once its whole content has arrived and its hash
matches, so a partial or corrupted download never looks like a good image. A download whose
connection breaks part-way goes on from the bytes it has (`Range: bytes=N-`, answered 206),
so a long clip on a poor connection is not fetched again from its first byte.
"""

import hashlib
import mimetypes
import os
import tempfile
from pathlib import Path, PurePosixPath

import httpx

from genline_client.errors import APIConnectionError, ChecksumMismatch
from genline_client.models import Output


def output_path(directory: Path, job_id: str, *, output: Output) -> Path:
    extension = PurePosixPath(output.key).suffix or mimetypes.guess_extension(output.media_type) or ""
    return directory / f"{job_id}-{output.n}{extension}"


class OutputFile:
    """The partial file of one download, its hash so far, and what the server said the
    content was (its ETag), so that a resumed request continues the same content."""

    def __init__(self, directory: Path, job_id: str, *, output: Output) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.output, self.path = output, output_path(directory, job_id, output=output)
        self.received, self.validator = 0, None
        self._hash = hashlib.sha256()
        descriptor, self._partial = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".part")
        self._file = os.fdopen(descriptor, "wb")

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self._file.write(chunk)
        self.received += len(chunk)

    def restart(self) -> None:
        """Drop what was received: the server sends the content again from its first byte."""
        self._file.seek(0)
        self._file.truncate()
        self._hash, self.received = hashlib.sha256(), 0

    def finish(self) -> Path:
        self._file.close()
        if self._hash.hexdigest() != self.output.sha256:
            self.discard()
            raise ChecksumMismatch(f"{self._noun()} {self.output.n}: sha256 {self._hash.hexdigest()}, the job says"
                                   f" {self.output.sha256}")
        os.replace(self._partial, self.path)
        return self.path

    def discard(self) -> None:
        self._file.close()
        Path(self._partial).unlink(missing_ok=True)

    def _noun(self) -> str:
        return "clip" if self.output.is_video else "image"


def download_request(http: httpx.Client | httpx.AsyncClient, url: str, *, file: OutputFile) -> httpx.Request:
    """The GET of a signed link, asking for the bytes after those `file` has, if it has any.
    If-Range makes a server whose content changed since send it whole (200) instead."""
    headers = {"Accept-Encoding": "identity"}  # ranges count the bytes as stored, none compressed on the way
    if file.received:
        headers["Range"] = f"bytes={file.received}-"
        if file.validator:
            headers["If-Range"] = file.validator
    request = http.build_request("GET", url, headers=headers)
    # A signed link carries its own authorisation; a bearer token beside it is refused by S3.
    del request.headers["Authorization"]
    return request


def take_up(response: httpx.Response, file: OutputFile) -> None:
    """Fit an answer to what `file` has: a 206 from its next byte continues it, a 200 (a
    server without ranges, or content changed since) starts it over; anything else is an
    answer that cannot be continued."""
    if response.status_code == 206 and file.received and range_start(response) == file.received:
        return
    if response.status_code == 200:
        file.restart()
        file.validator = response.headers.get("etag")
        return
    raise APIConnectionError(f"GET {response.request.url}: asked for bytes from {file.received}, the server answered"
                             f" {response.status_code} {response.headers.get('content-range', '')}".rstrip())


def range_start(response: httpx.Response) -> int | None:
    """The first byte a 206 carries, from `Content-Range: bytes 100-199/200`."""
    unit, _, span = response.headers.get("content-range", "").partition(" ")
    start = span.partition("-")[0]
    return int(start) if unit == "bytes" and start.isdigit() else None
