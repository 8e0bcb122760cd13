"""Screening on crafted files, without servers: what is refused and why, and what is kept."""

import asyncio
import io
import struct
import unittest.mock
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from services.common.problems import Problem
from services.ingest.inputs.screening import (
    BYTES_PER_PIXEL,
    ScreeningGate,
    ScreeningLimits,
    decoded_clean,
    screen_image,
)

LIMITS = ScreeningLimits(max_bytes=2 * 1024 * 1024, max_pixels=4_000_000)


def encoded(image_format: str, size=(64, 48), mode="RGB", **options) -> bytes:
    image = Image.new(mode, size)
    image.putdata([((x * 7) % 256, (x * 3) % 256, 90)[: len(mode)] for x in range(size[0] * size[1])])
    out = io.BytesIO()
    image.save(out, format=image_format, **options)
    return out.getvalue()


def refused(data: bytes, limits: ScreeningLimits = LIMITS) -> Problem:
    with pytest.raises(Problem) as caught:
        screen_image(data, limits)
    return caught.value


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width: int, height: int) -> bytes:
    """A small PNG whose header declares width×height pixels of one grey level."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * (width + 1) * 64, 9)  # only the first rows; the rest never comes
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", pixels) + png_chunk(b"IEND", b"")


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("payload.txt", "hello")
    return out.getvalue()


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
def test_each_accepted_type_is_kept_with_its_properties(image_format):
    screened = screen_image(encoded(image_format), LIMITS)
    assert (screened.width, screened.height) == (64, 48)
    assert Image.open(io.BytesIO(screened.data)).format == image_format
    assert screened.media_type == f"image/{image_format.lower()}"
    assert len(screened.sha256) == 64


def test_a_png_with_an_alpha_channel_keeps_it():
    screened = screen_image(encoded("PNG", mode="RGBA"), LIMITS)
    assert Image.open(io.BytesIO(screened.data)).mode == "RGBA"


@pytest.mark.parametrize(("data", "says"), [
    (b"<!DOCTYPE html><html><script>alert(1)</script></html>", "HTML"),
    (b"GIF89a" + bytes(64), "GIF"),
    (b"%PDF-1.7\n" + bytes(64), "PDF"),
    (b"just some text", "not a JPEG, PNG or WebP"),
])
def test_the_type_is_read_from_the_content(data, says):
    problem = refused(data)
    assert (problem.status, problem.slug) == (415, "unsupported-image-type")
    assert says in problem.detail


def test_too_many_bytes_is_refused_before_anything_else():
    problem = refused(b"\x89PNG" + bytes(LIMITS.max_bytes))
    assert (problem.status, problem.slug, problem.extra["reason"]) == (413, "image-too-large", "bytes")


def test_a_decompression_bomb_is_refused_from_its_header():
    data = bomb_png(50_000, 50_000)  # 2.5 gigapixels declared in a few kilobytes
    assert len(data) < 8000
    problem = refused(data)
    assert (problem.status, problem.slug) == (413, "too-many-pixels")


def test_more_pixels_than_the_limit_is_refused():
    problem = refused(bomb_png(2001, 2000))
    assert (problem.status, problem.slug) == (413, "too-many-pixels") and "4002000" in problem.detail


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
def test_a_truncated_file_is_refused(image_format):
    data = encoded(image_format, size=(256, 256))
    problem = refused(data[: len(data) * 2 // 3])
    assert problem.status == 422 and problem.slug in ("truncated-image", "corrupt-image")


def test_corrupt_pixel_data_is_refused():
    data = bytearray(encoded("PNG", size=(128, 128)))
    start = data.index(b"IDAT") + 4
    data[start:start + 40] = bytes(40)  # the zlib stream, zeroed: structure intact, pixels not
    problem = refused(bytes(data))
    assert (problem.status, problem.slug) == (422, "corrupt-image")


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
def test_data_after_the_end_of_the_image_is_refused(image_format):
    problem = refused(encoded(image_format) + zip_bytes())
    assert (problem.status, problem.slug, problem.extra["reason"]) == (422, "polyglot-image", "trailing-data")


def test_a_script_in_a_png_text_chunk_is_refused():
    data = encoded("PNG")
    iend = data.index(b"IEND") - 4
    data = data[:iend] + png_chunk(b"tEXt", b"Comment\x00<script>fetch('//x')</script>") + data[iend:]
    problem = refused(data)
    assert (problem.status, problem.extra["reason"]) == (422, "embedded-payload")


def test_an_archive_in_a_jpeg_comment_is_refused():
    data = encoded("JPEG")
    payload = zip_bytes()
    comment = b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload
    problem = refused(data[:2] + comment + data[2:])
    assert (problem.status, problem.extra["reason"]) == (422, "embedded-payload")


def test_exif_orientation_is_applied_and_metadata_stripped():
    image = Image.new("RGB", (80, 40), (200, 30, 30))
    image.paste((30, 30, 200), (0, 0, 40, 40))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to show
    exif[0x010F] = "CameraMaker"
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 0.0), 3: "E", 4: (13.0, 24.0, 0.0)}  # GPS
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, quality=95, comment=b"taken at home")
    screened = screen_image(out.getvalue(), LIMITS)
    clean = Image.open(io.BytesIO(screened.data))
    assert (screened.width, screened.height) == clean.size == (40, 80)
    assert not clean.getexif() and "exif" not in clean.info and "comment" not in clean.info
    assert b"CameraMaker" not in screened.data and b"taken at home" not in screened.data
    red, green, blue = clean.getpixel((20, 10))  # rotated clockwise: the blue half is on top
    assert blue > 150 and red < 100


# ---- the gate: memory budget and threads ------------------------------------------------

LARGE = ScreeningLimits(max_bytes=64 * 1024 * 1024, max_pixels=100_000_000)


def noisy_png(width: int, height: int) -> bytes:
    """A PNG that compresses as a photograph does (noise in 8×8 blocks)."""
    rng = np.random.default_rng(7)
    blocks = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(blocks.repeat(8, 0).repeat(8, 1)).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def test_megapixels_in_a_few_kilobytes_are_a_decompression_bomb():
    problem = refused(bomb_png(6000, 6000), LARGE)
    assert (problem.status, problem.slug) == (413, "decompression-bomb")
    assert screen_image(noisy_png(4000, 3000), LARGE).width == 4000  # a photograph as large passes


async def test_an_image_whose_decode_would_not_fit_the_budget_is_refused_before_decoding():
    gate = ScreeningGate(budget_bytes=50 * 1024 * 1024, threads=2, wait_s=1)
    with pytest.raises(Problem) as caught:
        await gate.screen(noisy_png(4000, 3000), LARGE, name="the upload")  # 12 MP × 10 bytes > 50 MiB
    assert (caught.value.status, caught.value.slug) == (413, "too-many-pixels")
    assert caught.value.extra["limit"] == 50 * 1024 * 1024 // BYTES_PER_PIXEL["PNG"]
    assert gate.held_bytes == 0 and gate.running == 0


async def test_screenings_beyond_the_budget_wait_for_room_then_are_asked_to_come_back():
    photo = noisy_png(2000, 1500)  # 3 MP: 30 MB to decode
    gate = ScreeningGate(budget_bytes=40 * 1024 * 1024, threads=4, wait_s=0.3)
    async with gate._holding(35 * 1024 * 1024, "another photo"):
        with pytest.raises(Problem) as caught:
            await gate.screen(photo, LARGE, name="the upload")
    assert (caught.value.status, caught.value.slug) == (503, "screening-busy")
    assert caught.value.headers == {"Retry-After": "1"}

    async def release_soon() -> None:
        async with gate._holding(35 * 1024 * 1024, "another photo"):
            await asyncio.sleep(0.1)

    holder = asyncio.create_task(release_soon())
    await asyncio.sleep(0.01)
    screened = await gate.screen(photo, LARGE, name="the upload")  # waited for the room, then went through
    await holder
    assert screened.width == 2000 and gate.held_bytes == 0


async def test_no_more_screenings_run_at_once_than_the_gate_has_threads():
    gate = ScreeningGate(budget_bytes=1 << 34, threads=2, wait_s=10)
    most = 0

    def watched(*args, **kwargs):
        nonlocal most
        most = max(most, gate.running)
        return decoded_clean(*args, **kwargs)

    photo = encoded("PNG", size=(640, 480))
    with unittest.mock.patch("services.ingest.inputs.screening.decoded_clean", watched):
        await asyncio.gather(*(gate.screen(photo, LARGE, name=f"photo {i}") for i in range(8)))
    assert most == 2
