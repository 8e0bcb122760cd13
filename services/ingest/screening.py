"""Screening of uploaded photos: what a client sends is stored only as a clean image.

Every input photo (an upload, or a job's base64 reference photo) goes through
`screen_image`, in this order, each step refusing with a problem that names the reason:

1. size in bytes (413);
2. type by content, from the magic bytes, never from a name or a header (415);
3. structure: the container is walked to its end marker (JPEG EOI, PNG IEND, the WebP
   RIFF size); a missing end is a truncated file, bytes after it a polyglot, and an
   archive, HTML or script signature inside a metadata segment an embedded payload (422);
4. pixel count from the declared dimensions, before anything is decoded, so a
   decompression bomb costs nothing (413);
5. a full decode (`load()`): corrupt or truncated pixel data (422);
6. EXIF orientation applied, then the image re-encoded without any metadata (EXIF, GPS,
   XMP, ICC, text chunks).

It is CPU work: callers run it off the event loop (`asyncio.to_thread`).
"""

import base64
import binascii
import hashlib
import io
import re
import struct
import warnings
from dataclasses import dataclass

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


@dataclass(frozen=True)
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


def screen_image(data: bytes, limits: ScreeningLimits, name: str = "the image") -> ScreenedImage:
    """`data` screened and cleaned; a Problem naming the reason when it is refused."""
    if len(data) > limits.max_bytes:
        raise Problem(413, "image-too-large", f"{name} is {len(data)} bytes; at most {limits.max_bytes} are accepted",
                      reason="bytes", limit=limits.max_bytes)
    image_format = format_by_content(data, name)
    check_structure(image_format, data, name)
    image = decoded(data, image_format, limits, name)
    return clean_copy(image, image_format)


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
    raise Problem(415, "unsupported-image-type",
                  f"{name} is not a JPEG, PNG or WebP image{looks} (the type is read from the content, "
                  "not from the file name or Content-Type)", reason="type")


def check_structure(image_format: str, data: bytes, name: str) -> None:
    """Truncation, trailing data and embedded payloads, from the container's own structure."""
    walk = {"JPEG": jpeg_layout, "PNG": png_layout, "WEBP": webp_layout}[image_format]
    try:
        end, metadata = walk(data)
    except (IndexError, struct.error, ValueError) as error:
        raise Problem(422, "truncated-image", f"{name} is truncated or corrupt: {error}", reason="truncated") from None
    if len(data) > end:
        raise Problem(422, "polyglot-image",
                      f"{name} has {len(data) - end} bytes after the end of its {image_format} data; a file that "
                      "is an image and something else is refused", reason="trailing-data")
    found = next((m for m in (EMBEDDED.search(segment) for segment in metadata) if m), None)
    if found:
        raise Problem(422, "polyglot-image",
                      f"{name} carries {found.group().decode('latin-1')!r} in its metadata, the signature of an "
                      "archive, document or script; such files are refused", reason="embedded-payload")


def jpeg_layout(data: bytes) -> tuple[int, list[bytes]]:
    """(offset just after EOI, payloads of APPn and COM segments)."""
    position, metadata = 2, []
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
    position, metadata = len(PNG_SIGNATURE), []
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


def decoded(data: bytes, image_format: str, limits: ScreeningLimits, name: str) -> Image.Image:
    """Every pixel decoded once, after the declared size was checked against the budget."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[image_format])
            check_pixels(image.width, image.height, limits, name)
            image.load()
            return image
    except Problem:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise Problem(413, "too-many-pixels", f"{name} declares more pixels than are accepted ({error})",
                      reason="pixels", limit=limits.max_pixels) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise Problem(422, "corrupt-image", f"{name} could not be decoded completely ({error})",
                      reason="corrupt") from None


def check_pixels(width: int, height: int, limits: ScreeningLimits, name: str) -> None:
    if width * height > limits.max_pixels:
        raise Problem(413, "too-many-pixels",
                      f"{name} declares {width}×{height} = {width * height} pixels; at most {limits.max_pixels} "
                      "are accepted", reason="pixels", limit=limits.max_pixels)


def clean_copy(image: Image.Image, image_format: str) -> ScreenedImage:
    """Upright (EXIF orientation applied) and re-encoded without any metadata."""
    upright = ImageOps.exif_transpose(image)
    upright.info = {key: value for key, value in upright.info.items() if key == "transparency"}
    out = io.BytesIO()
    options = {"JPEG": {"quality": 95}, "PNG": {}, "WEBP": {"quality": 95}}[image_format]
    upright.save(out, format=image_format, exif=b"", **options)
    media_type, extension = FORMATS[image_format]
    return ScreenedImage(out.getvalue(), media_type, extension, upright.width, upright.height)


def screened_photo(encoded: str, limits: ScreeningLimits) -> ScreenedImage:
    """A job's base64 reference photo, screened like an upload."""
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Problem(422, "invalid-reference-image", "reference_image is not valid base64") from None
    return screen_image(data, limits, "reference_image")
