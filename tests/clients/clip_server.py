"""A small HTTP server that serves one real MP4 clip as an object store serves a signed link:
`Range: bytes=N-` answered 206 with its Content-Range, an ETag honoured by If-Range, and a
fault to plant: the first answer's connection dropped part-way through the body, a server
that ignores ranges and sends the whole content again (200), or an object written again
after the first answer (a new ETag, so If-Range gets the whole new content)."""

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from services.common.video import encode


def real_clip(seconds: float = 2, fps: int = 12, size: tuple[int, int] = (160, 96)) -> bytes:
    """An H.264 MP4 of a bright square moving across a gradient, made by services.common.video."""
    width, height = size
    gradient = np.linspace(30, 200, width, dtype=np.uint8)[None, :, None].repeat(height, 0).repeat(3, 2)
    frames = []
    for n in range(round(seconds * fps)):
        frame = gradient.copy()
        x = (n * 6) % (width - 24)
        frame[30:54, x:x + 24] = (240, 200, 40)
        frames.append(frame)
    return encode(frames, fps)


@dataclass
class ClipServer:
    content: bytes
    drop_first_after: int | None = None  # the first answer's connection breaks after this many body bytes
    ranges: bool = True  # False: Range is ignored, every answer is the whole content (200)
    replaced_by: bytes | None = None  # the content after the first answer (the object was written again)
    answers: list[tuple[str | None, int, int]] = field(default_factory=list)  # (Range asked, status, bytes sent)
    url: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def etag(self) -> str:
        return f'"{self.sha256[:16]}"'


def handler_for(clip: ClipServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
            asked = self.headers.get("Range")
            start = self.first_byte(asked)
            body = clip.content[start:]
            self.send_response(206 if start else 200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Accept-Ranges", "bytes" if clip.ranges else "none")
            self.send_header("ETag", clip.etag)
            self.send_header("Content-Length", str(len(body)))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(clip.content) - 1}/{len(clip.content)}")
            self.end_headers()
            if clip.drop_first_after is not None and not clip.answers:
                body = body[:clip.drop_first_after]  # then the connection closes, short of Content-Length
            clip.answers.append((asked, 206 if start else 200, len(body)))
            self.wfile.write(body)
            self.wfile.flush()
            if clip.replaced_by is not None:
                clip.content, clip.replaced_by = clip.replaced_by, None

        def first_byte(self, asked: str | None) -> int:
            if not (clip.ranges and asked and asked.startswith("bytes=") and asked.endswith("-")):
                return 0
            if self.headers.get("If-Range") not in (None, clip.etag):
                return 0
            return int(asked[len("bytes="):-1])

        def log_message(self, *args) -> None:
            pass

    return Handler


@contextmanager
def serving(clip: ClipServer) -> Iterator[ClipServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(clip))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    clip.url = f"http://127.0.0.1:{server.server_address[1]}/acme/2026/11/job/1.mp4?X-Amz-Signature=abc"
    try:
        yield clip
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
