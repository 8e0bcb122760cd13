"""Screening of uploaded photos: what a client sends is stored only as a clean image.

Every input photo (an upload, or a job's base64 reference photo) goes through
`screen_image`, in this order, each step refusing with a problem that names the reason:

1. size in bytes (413);
2. type by content, from the magic bytes, never from a name or a header (415);
3. structure: the container is walked to its end marker (JPEG EOI, PNG IEND, the WebP
   RIFF size); a missing end is a truncated file, bytes after it a polyglot, and an
   archive, HTML or script signature inside a metadata segment an embedded payload (422);
4. pixel count from the declared dimensions, before anything is decoded, so a
   decompression bomb costs nothing (413): too many pixels, or far more pixels than the
   file could hold (a photograph large enough to matter never compresses beyond
   MAX_COMPRESSION_RATIO; a few kilobytes that declare a canvas of megapixels do);
5. a full decode (`load()`): corrupt or truncated pixel data (422);
6. EXIF orientation applied, then the image re-encoded without any metadata (EXIF, GPS,
   XMP, ICC, text chunks).

Steps 1-4 read headers only (`declared`); 5 and 6 (`decoded_clean`) cost memory in
proportion to the pixels. The service screens through one `ScreeningGate`, which holds
the decodes in flight to a memory budget (from the pod's memory limit) and to a number of
threads: an image whose decode alone would not fit is refused (413), and one that would
not fit beside those in flight within a few seconds is asked to come back (503 with
Retry-After), so a burst of bombs costs ingest no more than its budget.
"""

import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import hashlib
import io
import re
import struct
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated

from fastapi import Depends, Request
from PIL import Image, ImageOps

from services.common.problems import Problem

MAX_REFERENCE_BYTES = 8 * 1024 * 1024
MAX_REFERENCE_BASE64 = (MAX_REFERENCE_BYTES + 2) // 3 * 4
FORMATS = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png"), "WEBP": ("image/webp", "webp")}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# What is not an image but tells what it is instead, for a 415 that says so.
OTHER_KINDS = [(b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive"), (b"GIF8", "a GIF image"),
               (b"BM", "a BMP image"), (b"\x1f\x8b", "a gzip archive"), (b"II*\x00", "a TIFF image"),
               (b"MM\x00*", "a TIFF image")]
TEXT_KINDS = re.compile(rb"^\s*<(!doctype html|html|svg|\?xml|script)", re.IGNORECASE)

# Signatures of archives, documents and scripts that have no business inside an image's
# metadata. Only metadata and trailing bytes are searched: compressed pixel data is
# random-looking, and a four-byte signature would turn up in it by chance.
EMBEDDED = re.compile(rb"PK\x03\x04|PK\x05\x06|Rar!\x1a\x07|7z\xbc\xaf\x27\x1c|%PDF-|<script|<html|<!doctype html"
                      rb"|<\?php|<svg|<iframe|javascript:", re.IGNORECASE)


@dataclass(frozen=True)
class ScreeningLimits:
    max_bytes: int = MAX_REFERENCE_BYTES
    max_pixels: int = 40_000_000

    def check_pixels(self, width: int, height: int, *, name: str) -> None:
        if width * height > self.max_pixels:
            raise Problem(status=413, slug="too-many-pixels",
                          detail=f"{name} declares {width}×{height} = {width * height} pixels; at most {self.max_pixels} "
                          "are accepted", extra={"reason": "pixels", "limit": self.max_pixels})


@dataclass(frozen=True)
class Sent:
    """A photo as a client sent it, and what a problem calls it ("the upload", "reference_image")."""

    data: bytes = field(repr=False)
    name: str = "the image"


@dataclass(frozen=True, kw_only=True)
class ScreenedImage:
    """A screened image, re-encoded upright and without metadata."""

    data: bytes
    media_type: str
    extension: str
    width: int
    height: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


# Peak memory of screening one image, in bytes per pixel, as measured on 12-megapixel
# photographs with a margin: the decode, the upright copy and the encoder's buffers
# (libwebp's encoder needs about three times what PNG's and JPEG's do).
BYTES_PER_PIXEL = {"JPEG": 10, "PNG": 10, "WEBP": 40}
# Decoded bytes per file byte beyond which a large image is a bomb, not a photograph: photos
# compress 2-15 times, a product shot on a white ground a few dozen; a bomb hundreds or
# thousands of times. Images that decode to less than BOMB_FLOOR_BYTES may be flat.
MAX_COMPRESSION_RATIO = 250
BOMB_FLOOR_BYTES = 24 * 1024 * 1024


@dataclass(frozen=True)
class Declared:
    """What an image's headers say, before a pixel is decoded."""

    image_format: str
    width: int
    height: int

    @property
    def decode_bytes(self) -> int:
        return self.width * self.height * BYTES_PER_PIXEL[self.image_format]


def screen_image(data: bytes, limits: ScreeningLimits, *, name: str = "the image") -> ScreenedImage:
    """`data` screened and cleaned; a Problem naming the reason when it is refused."""
    sent = Sent(data, name)
    return decoded_clean(sent, declared(sent, limits), limits=limits)


def declared(sent: Sent, limits: ScreeningLimits) -> Declared:
    """Steps 1-4: bytes, type by content, structure and declared pixels, from headers only."""
    data, name = sent.data, sent.name
    if len(data) > limits.max_bytes:
        raise Problem(status=413, slug="image-too-large", detail=f"{name} is {len(data)} bytes; at most {limits.max_bytes} are accepted",
                      extra={"reason": "bytes", "limit": limits.max_bytes})
    image_format = format_by_content(data, name)
    check_structure(image_format, data, name=name)
    with opened(sent, image_format, limits=limits) as image:
        check_compression(image.width * image.height * len(image.getbands()), len(data), name=name)
        return Declared(image_format, image.width, image.height)


def check_compression(decoded_bytes: int, file_bytes: int, *, name: str) -> None:
    if decoded_bytes > BOMB_FLOOR_BYTES and decoded_bytes > file_bytes * MAX_COMPRESSION_RATIO:
        raise Problem(status=413, slug="decompression-bomb",
                      detail=f"{name} is {file_bytes} bytes but declares {decoded_bytes} bytes of pixels, more than"
                      f" {MAX_COMPRESSION_RATIO} times its size: a decompression bomb, not a photograph",
                      extra={"reason": "compression-ratio", "limit": MAX_COMPRESSION_RATIO})


def decoded_clean(sent: Sent, found: Declared, *, limits: ScreeningLimits) -> ScreenedImage:
    """Steps 5-6: every pixel decoded once, then an upright copy without metadata."""
    return clean_copy(decoded(sent, found.image_format, limits=limits), found.image_format)


def format_by_content(data: bytes, name: str) -> str:
    """JPEG, PNG or WEBP from the magic bytes; 415 for anything else, saying what it looks like."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(PNG_SIGNATURE):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    kind = next((label for magic, label in OTHER_KINDS if data.startswith(magic)), None)
    if kind is None and TEXT_KINDS.match(data[:512]):
        kind = "HTML, SVG or XML text"
    looks = f"; its content is {kind}" if kind else ""
    raise Problem(status=415, slug="unsupported-image-type",
                  detail=f"{name} is not a JPEG, PNG or WebP image{looks} (the type is read from the content, "
                  "not from the file name or Content-Type)", extra={"reason": "type"})


def check_structure(image_format: str, data: bytes, *, name: str) -> None:
    """Truncation, trailing data and embedded payloads, from the container's own structure."""
    walk = {"JPEG": jpeg_layout, "PNG": png_layout, "WEBP": webp_layout}[image_format]
    try:
        end, metadata = walk(data)
    except (IndexError, struct.error, ValueError) as error:
        raise Problem(status=422, slug="truncated-image", detail=f"{name} is truncated or corrupt: {error}",
                      extra={"reason": "truncated"}) from None
    if len(data) > end:
        raise Problem(status=422, slug="polyglot-image",
                      detail=f"{name} has {len(data) - end} bytes after the end of its {image_format} data; a file that "
                      "is an image and something else is refused", extra={"reason": "trailing-data"})
    found = next((m for m in (EMBEDDED.search(segment) for segment in metadata) if m), None)
    if found:
        raise Problem(status=422, slug="polyglot-image",
                      detail=f"{name} carries {found.group().decode('latin-1')!r} in its metadata, the signature of an "
                      "archive, document or script; such files are refused", extra={"reason": "embedded-payload"})


def jpeg_layout(data: bytes) -> tuple[int, list[bytes]]:
    """(offset just after EOI, payloads of APPn and COM segments)."""
    position = 2
    metadata: list[bytes] = []
    while True:
        if data[position] != 0xFF:
            raise ValueError(f"no JPEG marker at byte {position}")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0xD9:
            return position + 2, metadata
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2:position + 4])
        segment = data[position + 4:position + 2 + length]
        if len(segment) != length - 2:
            raise ValueError("a JPEG segment runs past the end of the file")
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            metadata.append(segment)
        position += 2 + length
        if marker == 0xDA:
            position = _after_scan(data, position)


def _after_scan(data: bytes, position: int) -> int:
    """The offset of the first marker after entropy-coded data (FF 00 and restarts are data)."""
    while True:
        position = data.index(b"\xff", position)
        following = data[position + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            position += 1
            continue
        return position


def png_layout(data: bytes) -> tuple[int, list[bytes]]:
    """(offset just after IEND's CRC, payloads of every chunk but the pixel data)."""
    position = len(PNG_SIGNATURE)
    metadata: list[bytes] = []
    while True:
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        end = position + 12 + length
        if end > len(data):
            raise ValueError(f"the {kind.decode('latin-1')} chunk runs past the end of the file")
        if kind == b"IEND":
            return end, metadata
        if kind not in (b"IDAT", b"IHDR", b"PLTE"):
            metadata.append(data[position + 8:position + 8 + length])
        position = end


def webp_layout(data: bytes) -> tuple[int, list[bytes]]:
    """(8 + the RIFF size, payloads of every chunk but the image data)."""
    (size,) = struct.unpack("<I", data[4:8])
    end = 8 + size + (size & 1)
    if end > len(data):
        raise ValueError(f"the RIFF container declares {end} bytes but the file has {len(data)}")
    position, metadata = 12, []
    while position < end:
        kind, length = struct.unpack("<4sI", data[position:position + 8])
        if position + 8 + length > end:
            raise ValueError(f"the {kind.decode('latin-1')} chunk runs past the RIFF container")
        if kind not in (b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF"):
            metadata.append(data[position + 8:position + 8 + length])
        position += 8 + length + (length & 1)
    return end, metadata


@contextlib.contextmanager
def opened(sent: Sent, image_format: str, *, limits: ScreeningLimits) -> Iterator[Image.Image]:
    """The image opened (headers read, nothing decoded), its declared pixels checked; the
    errors of opening and of decoding inside the block become problems."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(sent.data), formats=[image_format])
            limits.check_pixels(image.width, image.height, name=sent.name)
            yield image
    except Problem:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise Problem(status=413, slug="too-many-pixels", detail=f"{sent.name} declares more pixels than are accepted ({error})",
                      extra={"reason": "pixels", "limit": limits.max_pixels}) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise Problem(status=422, slug="corrupt-image", detail=f"{sent.name} could not be decoded completely ({error})",
                      extra={"reason": "corrupt"}) from None


def decoded(sent: Sent, image_format: str, *, limits: ScreeningLimits) -> Image.Image:
    """Every pixel decoded once, after the declared size was checked against the limits."""
    with opened(sent, image_format, limits=limits) as image:
        image.load()
        return image


def clean_copy(image: Image.Image, image_format: str) -> ScreenedImage:
    """Upright (EXIF orientation applied) and re-encoded without any metadata."""
    upright = ImageOps.exif_transpose(image)
    upright.info = {key: value for key, value in upright.info.items() if key == "transparency"}
    out = io.BytesIO()
    options = {"JPEG": {"quality": 95}, "PNG": {}, "WEBP": {"quality": 95}}[image_format]
    upright.save(out, format=image_format, exif=b"", **options)
    media_type, extension = FORMATS[image_format]
    return ScreenedImage(data=out.getvalue(), media_type=media_type, extension=extension, width=upright.width, height=upright.height)


def reference_photo_bytes(encoded: str) -> bytes:
    """A job's base64 reference photo, as bytes to screen like an upload."""
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Problem(status=422, slug="invalid-reference-image", detail="reference_image is not valid base64") from None


class ScreeningGate:
    """Screenings in flight hold the memory their decode needs (`Declared.decode_bytes`)
    out of `budget_bytes`, and one of `threads` threads; a screening that cannot get both
    within `wait_s` is refused for now (503, Retry-After).

    Decodes run on threads of the gate's own, `threads` of them: the allocator keeps what a
    thread freed in that thread's arena for its next use, so decodes spread over a larger
    pool (asyncio's default has cpu + 4 threads) would leave up to one decode's memory
    resident per thread, well past the budget."""

    def __init__(self, budget_bytes: int, threads: int, *, wait_s: float) -> None:
        self.budget_bytes, self.threads, self.wait_s = budget_bytes, threads, wait_s
        self.held_bytes, self.running = 0, 0
        self._changed = asyncio.Condition()
        self._decoders = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="screening")

    async def screen(self, data: bytes, limits: ScreeningLimits, *, name: str) -> ScreenedImage:
        sent = Sent(data, name)
        found = await asyncio.to_thread(declared, sent, limits)
        if found.decode_bytes > self.budget_bytes:
            most = self.budget_bytes // BYTES_PER_PIXEL[found.image_format]
            raise Problem(status=413, slug="too-many-pixels",
                          detail=f"{name} declares {found.width}×{found.height} = {found.width * found.height} pixels; this"
                          f" service screens at most {most} pixels of {found.image_format}", extra={"reason": "pixels",
                                                                                                    "limit": most})
        async with self._holding(found.decode_bytes, name):
            return await asyncio.get_running_loop().run_in_executor(
                self._decoders, partial(decoded_clean, sent, found, limits=limits))

    @contextlib.asynccontextmanager
    async def _holding(self, need: int, name: str) -> AsyncIterator[None]:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self._fits(need)), self.wait_s)
            except TimeoutError:
                retry = max(1, round(self.wait_s))
                raise Problem(status=503, slug="screening-busy", detail=f"{name} cannot be screened right now: other photos are being"
                              " screened; try again shortly", headers={"Retry-After": str(retry)},
                              extra={"retry_after": retry}) from None
            self.held_bytes += need
            self.running += 1
        try:
            yield
        finally:
            async with self._changed:
                self.held_bytes -= need
                self.running -= 1
                self._changed.notify_all()

    def _fits(self, need: int) -> bool:
        return self.running < self.threads and self.held_bytes + need <= self.budget_bytes


async def get_screening(request: Request) -> ScreeningGate:
    screening: ScreeningGate = request.app.state.screening
    return screening


# The app's gate, as a route's dependency: every photo a route takes is screened through it.
Screening = Annotated[ScreeningGate, Depends(get_screening)]
