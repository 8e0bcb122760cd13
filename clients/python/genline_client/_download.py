"""Writing a delivered image to disk, checked against the sha256 the job names.

The file appears under its final name only once its whole content has arrived and its hash
matches, so a partial or corrupted download never looks like a good image.
"""

import hashlib
import mimetypes
import os
import tempfile
from pathlib import Path, PurePosixPath

from genline_client.errors import ChecksumMismatch
from genline_client.models import Output


def output_path(directory: Path, job_id: str, output: Output) -> Path:
    extension = PurePosixPath(output.key).suffix or mimetypes.guess_extension(output.media_type) or ""
    return directory / f"{job_id}-{output.n}{extension}"


class OutputFile:
    def __init__(self, directory: Path, job_id: str, output: Output) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.output, self.path = output, output_path(directory, job_id, output)
        self._hash = hashlib.sha256()
        descriptor, self._partial = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".part")
        self._file = os.fdopen(descriptor, "wb")

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self._file.write(chunk)

    def finish(self) -> Path:
        self._file.close()
        if self._hash.hexdigest() != self.output.sha256:
            self.discard()
            raise ChecksumMismatch(f"image {self.output.n}: sha256 {self._hash.hexdigest()}, the job says"
                                   f" {self.output.sha256}")
        os.replace(self._partial, self.path)
        return self.path

    def discard(self) -> None:
        self._file.close()
        Path(self._partial).unlink(missing_ok=True)
