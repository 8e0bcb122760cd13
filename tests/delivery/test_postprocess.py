"""Post-processing of delivered images (pure): format and quality, transparency, the
watermark where the template places it, the invisible one in the image and its thumbnail,
thumbnails, and clips that stay animated."""

import io

import numpy as np
import pytest
from PIL import Image, ImageSequence

from services.common import watermark
from services.common.templates import Delivery, Thumbnail, Watermark, load_catalogue
from services.delivery import domain
from services.delivery.postprocess import UnpublishableImage, postprocess
from tests.common.test_watermark import photograph


def encoded(image: Image.Image, pil_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=pil_format, **options)
    return buffer.getvalue()


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def textured(width: int = 320, height: int = 240) -> Image.Image:
    """Mid-grey with a gentle gradient, so a watermark shows as a change of pixels."""
    ramp = np.linspace(90, 150, width, dtype=np.uint8)
    return Image.fromarray(np.repeat(np.tile(ramp, (height, 1))[:, :, None], 3, axis=2), "RGB")


def cut_out(width: int = 200, height: int = 200) -> Image.Image:
    """A red disc on a fully transparent background."""
    pixels = np.zeros((height, width, 4), dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    disc = (yy - height / 2) ** 2 + (xx - width / 2) ** 2 < (min(width, height) / 4) ** 2
    pixels[disc] = (200, 30, 30, 255)
    return Image.fromarray(pixels, "RGBA")


def clip(frames: int = 5, size: tuple[int, int] = (160, 120)) -> bytes:
    images = [Image.new("RGB", size, (40 * i, 100, 160)) for i in range(frames)]
    return encoded(images[0], "WEBP", save_all=True, append_images=images[1:], duration=80, loop=0, quality=90)


def changed(before: Image.Image, after: Image.Image, box: tuple[int, int, int, int]) -> float:
    """Mean absolute RGB change inside `box` (left, top, right, bottom)."""
    a = np.asarray(before.convert("RGB").crop(box), dtype=np.int16)
    b = np.asarray(after.convert("RGB").crop(box), dtype=np.int16)
    return float(np.abs(a - b).mean())


@pytest.mark.parametrize(("fmt", "pil_format", "media_type"),
                         [("webp", "WEBP", "image/webp"), ("jpeg", "JPEG", "image/jpeg"), ("png", "PNG", "image/png")])
def test_the_template_format_is_what_is_delivered(fmt, pil_format, media_type):
    source = encoded(textured(), "PNG" if fmt != "png" else "JPEG")

    done = postprocess(source, Delivery(format=fmt, quality=80))

    assert done.image.media_type == media_type and opened(done.image.data).format == pil_format
    assert (done.image.width, done.image.height, done.image.frames) == (320, 240, 1)


def test_quality_sets_the_encoder_quality():
    source = encoded(textured(), "PNG")
    small, large = (postprocess(source, Delivery(format="jpeg", quality=q)).image.data for q in (10, 95))
    assert len(small) < len(large)


def test_an_image_already_in_the_format_without_a_watermark_is_delivered_byte_for_byte():
    source = encoded(textured(), "PNG")
    assert postprocess(source, Delivery()).image.data == source
    assert postprocess(source, Delivery(format="png")).image.data == source
    assert postprocess(source, Delivery(format="webp")).image.data != source


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_transparency_is_kept_where_the_format_has_it(fmt):
    source = encoded(cut_out(), "PNG")

    done = postprocess(source, Delivery(format=fmt, watermark=Watermark(text="mark", position="top-left")))

    image = opened(done.image.data).convert("RGBA")
    assert image.getpixel((199, 199))[3] == 0  # background corner, away from the mark
    assert image.getpixel((100, 100))[3] == 255  # the subject
    assert opened(done.thumbnail.data).convert("RGBA").getpixel((195, 195))[3] == 0


def test_jpeg_lays_transparency_on_white():
    done = postprocess(encoded(cut_out(), "PNG"), Delivery(format="jpeg", quality=95))

    image = opened(done.image.data)
    assert image.mode == "RGB"
    assert all(channel > 245 for channel in image.getpixel((5, 5)))  # was transparent (black underneath)
    red, green, _ = image.getpixel((100, 100))
    assert red > 180 and green < 60


@pytest.mark.parametrize(("position", "marked_box", "clear_box"), [
    ("bottom-right", (220, 190, 320, 240), (0, 0, 100, 50)),
    ("top-left", (0, 0, 100, 50), (220, 190, 320, 240)),
    ("center", (110, 100, 210, 140), (0, 0, 100, 50)),
])
def test_the_watermark_shows_where_it_is_placed_and_nowhere_else(position, marked_box, clear_box):
    source = textured()
    delivery = Delivery(format="png", watermark=Watermark(text="Genline", opacity=0.8, position=position))

    done = postprocess(encoded(source, "PNG"), delivery)

    marked = opened(done.image.data)
    assert changed(source, marked, marked_box) > 5
    assert changed(source, marked, clear_box) == 0


def test_the_thumbnail_fits_max_side_and_keeps_the_aspect():
    done = postprocess(encoded(textured(1024, 512), "PNG"), Delivery(thumbnail=Thumbnail(max_side=256)))

    thumbnail = opened(done.thumbnail.data)
    assert done.thumbnail.media_type == "image/webp" and thumbnail.format == "WEBP"
    assert thumbnail.size == (256, 128) == (done.thumbnail.width, done.thumbnail.height)


def test_a_small_image_is_not_enlarged_for_its_thumbnail():
    done = postprocess(encoded(textured(100, 80), "PNG"), Delivery(thumbnail=Thumbnail(max_side=256, format="jpeg")))
    assert opened(done.thumbnail.data).size == (100, 80) and done.thumbnail.media_type == "image/jpeg"


@pytest.mark.parametrize("fmt", ["webp", "jpeg", "original"])
def test_a_clip_stays_animated_with_its_timing_and_its_thumbnail_is_the_first_frame(fmt):
    delivery = Delivery(format=fmt, watermark=Watermark(text="Genline"), thumbnail=Thumbnail(max_side=64))

    done = postprocess(clip(frames=5), delivery)

    image = opened(done.image.data)
    assert done.image.media_type == "image/webp" and done.image.frames == 5
    assert getattr(image, "n_frames", 1) == 5 and image.is_animated
    assert [frame.copy().info["duration"] for frame in ImageSequence.Iterator(image)] == [80] * 5
    thumbnail = opened(done.thumbnail.data)
    assert getattr(thumbnail, "n_frames", 1) == 1 and max(thumbnail.size) == 64
    assert thumbnail.convert("RGB").getpixel((2, 2))[0] < 20  # frame 0 has no red; frame 4 has 160


def test_a_clip_without_a_watermark_is_delivered_as_it_is():
    source = clip()
    assert postprocess(source, Delivery(format="webp")).image.data == source


def test_what_is_not_an_image_cannot_be_published():
    with pytest.raises(UnpublishableImage):
        postprocess(b"<html>not an image</html>", Delivery())
    with pytest.raises(UnpublishableImage):
        postprocess(encoded(textured(), "PNG")[:200], Delivery())


def test_the_thumbnail_lies_beside_its_image():
    key = "acme/2026/11/5b0c/2.webp"
    assert domain.thumbnail_key(key, "image/webp") == "acme/2026/11/5b0c/2.thumb.webp"
    assert domain.folder_of(domain.thumbnail_key(key, "image/jpeg")) == domain.folder_of(key)


def test_templates_that_say_nothing_keep_their_format_and_get_a_thumbnail():
    catalogue = load_catalogue()
    assert catalogue.delivery("generic") == catalogue.delivery("no-such-template") == Delivery()
    assert Delivery().format == "original" and Delivery().watermark is None
    assert catalogue.delivery("headshot").format == "webp" and catalogue.delivery("headshot").watermark


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "png"])
def test_the_image_and_its_thumbnail_both_carry_the_invisible_watermark(fmt):
    source = encoded(Image.fromarray(photograph("coffee", side=768)), "PNG")
    done = postprocess(source, Delivery(format=fmt, quality=85), watermark.Embedding(0x00C0FFEE0042))

    assert done.watermark_id == "00c0ffee0042"
    assert watermark.detect(np.asarray(opened(done.image.data).convert("RGB"))).mark_id == 0x00C0FFEE0042
    small = opened(done.thumbnail.data)
    assert max(small.size) == 256 and watermark.detect(np.asarray(small.convert("RGB"))).mark_id == 0x00C0FFEE0042


def test_a_transparent_image_keeps_its_transparency_under_the_invisible_watermark():
    source = encoded(cut_out(320, 320), "PNG")
    done = postprocess(source, Delivery(format="png"), watermark.Embedding(7))
    assert opened(done.image.data).getchannel("A").getextrema() == (0, 255) and done.watermark_id == watermark.mark_hex(7)


def test_an_image_too_small_for_the_mark_is_delivered_without_one():
    source = encoded(textured(80, 60), "PNG")
    done = postprocess(source, Delivery(format="png"), watermark.Embedding(7))
    assert done.image.data == source and done.watermark_id is None
