"""Every kind of file delivery makes carries a mark that outlives what bench/watermark.py does
to pictures (its very transformations: JPEG 90/75/50, WebP 80, resizes to a half and a quarter
left so, crops, a 2° turn, brighter, a social network's pipeline, and their combinations), read
as `POST /v1/verify` reads it: a still in each output format, its thumbnail, an animated WebP,
an MP4 clip and its poster, each made by delivery's own post-processing from the platform's own
painting (flat colour and gradients, what `make run` delivers), a product shot on a white sweep
and a photograph.

An animation's or a clip's frames are each transformed, then written back into a file of the
same kind (an animated WebP without loss; an MP4 at CRF 18), so that what is measured is the
transformation. Not asked of any file: a resize to a quarter followed by JPEG 50 (a 512-pixel
file becomes 128 pixels at quality 50, the bench's stated limit), nor of a thumbnail or poster
(256 pixels) a resize to a half followed by JPEG 75 of a product on white."""

import io

import av
import numpy as np
import pytest
from PIL import Image, ImageSequence

from bench.watermark import ATTACKS
from bench.watermark_set import picture
from services.common import watermark
from services.common.templates import Delivery
from services.delivery import clips
from services.delivery.postprocess import postprocess
from services.ingest.receipts.provenance import detected_marks
from tests.delivery.test_clips import decoded, written

MARK = 0x0A1B2C3D4E5F
BEYOND = {"resize25+jpeg50"}  # the bench's stated limit for a file of 512 pixels
Pixels = np.ndarray


def png(pixels: Pixels) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def pixels_of(data: bytes) -> Pixels:
    with Image.open(io.BytesIO(data)) as opened:
        return np.asarray(opened.convert("RGB"))


def animated(frames: list[Pixels], *, lossless: bool) -> bytes:
    images = [Image.fromarray(frame) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="WEBP", save_all=True, append_images=images[1:], duration=100, loop=0,
                   lossless=lossless, quality=100 if lossless else 90)
    return buffer.getvalue()


def frames_of_animation(data: bytes) -> list[Pixels]:
    with Image.open(io.BytesIO(data)) as opened:
        return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(opened)]


def mp4(frames: list[Pixels]) -> bytes:
    height, width = (side - side % 2 for side in frames[0].shape[:2])
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt, stream.options = width, height, "yuv420p", {"crf": "18"}
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:height, :width]), format="rgb24")))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def unread(copies: dict[str, bytes | Pixels], media_type: str | None = None) -> list[str]:
    """The transformations whose copy does not name the mark, read as verify reads it."""
    missed = []
    for name, copy in copies.items():
        found = watermark.detect(copy) if media_type is None else detected_marks(copy, media_type)[0]
        if found.mark_id != MARK:
            missed.append(name)
    return missed


def stills(pixels: Pixels, *, skipped: set[str] = BEYOND) -> dict[str, Pixels]:
    """Each transformation of a still that leaves a copy able to carry a mark."""
    copies = {name: attack(pixels) for name, attack in ATTACKS.items() if name not in skipped}
    return {name: copy for name, copy in copies.items() if watermark.can_carry(copy.shape[1], copy.shape[0])}


def frame_copies(frames: list[Pixels], remade) -> dict[str, bytes]:
    copies = {}
    for name, attack in ATTACKS.items():
        changed = [attack(frame) for frame in frames]
        if name not in BEYOND and watermark.can_carry(changed[0].shape[1], changed[0].shape[0]):
            copies[name] = remade(changed)
    return copies


def moving(kind: str, count: int) -> list[Pixels]:
    """A clip's frames: the picture panning a few pixels a frame, the mark drawn still on each."""
    still = picture(kind, 640, 1)
    height, width = (side - side % 2 for side in still.shape[:2])
    return [np.ascontiguousarray(np.roll(still, 6 * k, axis=1)[:height, :width]) for k in range(count)]


@pytest.mark.parametrize("kind", ["flat", "white", "photo"])
@pytest.mark.parametrize("output_format", ["png", "jpeg", "webp"])
def test_a_delivered_still_outlives_the_bench_transformations(kind, output_format):
    done = postprocess(png(picture(kind, 512, 1)), Delivery(format=output_format), mark=watermark.Embedding(MARK))
    assert unread(stills(pixels_of(done.image.data))) == []


@pytest.mark.parametrize("kind", ["flat", "photo"])
def test_a_delivered_thumbnail_outlives_them_too(kind):
    done = postprocess(png(picture(kind, 512, 1)), Delivery(), mark=watermark.Embedding(MARK))
    thumbnail = pixels_of(done.thumbnail.data)
    assert max(thumbnail.shape[:2]) == 256 and unread(stills(thumbnail)) == []


def test_a_product_on_white_s_thumbnail_outlives_all_but_a_half_then_jpeg_75():
    done = postprocess(png(picture("white", 512, 1)), Delivery(), mark=watermark.Embedding(MARK))
    assert unread(stills(pixels_of(done.thumbnail.data), skipped=BEYOND | {"resize50+jpeg75"})) == []


@pytest.mark.parametrize("kind", ["flat", "white", "photo"])
def test_a_delivered_animation_outlives_them_frame_by_frame(kind):
    done = postprocess(animated(moving(kind, 6), lossless=False), Delivery(), mark=watermark.Embedding(MARK))
    assert done.image.frames == 6
    copies = frame_copies(frames_of_animation(done.image.data), lambda frames: animated(frames, lossless=True))
    assert unread(copies, "image/webp") == []


@pytest.mark.parametrize("kind", ["flat", "white", "photo"])
def test_a_delivered_clip_and_its_poster_outlive_them(kind):
    done = clips.postprocess(written(moving(kind, 12)), Delivery(), mark=watermark.Embedding(MARK))
    assert unread(frame_copies(decoded(done.image.data), mp4), "video/mp4") == []
    skipped = BEYOND | ({"resize50+jpeg75"} if kind == "white" else set())
    assert unread(stills(pixels_of(done.thumbnail.data), skipped=skipped)) == []
