"""Post-processing of a delivered image, without I/O: the template's format and quality, its
visible watermark, the invisible one, and the thumbnail stored beside the image.

* The invisible watermark (`services.common.watermark`) carries the delivery's mark id: drawn
  into every frame after the visible one, and into the thumbnail (made from the unmarked frame,
  then marked at its own size), before anything is encoded, so each file is encoded once. An
  image too small to carry it (under 96 pixels a side) goes without.
* An image already in the asked format, with no mark to draw (neither watermark), is delivered
  byte for byte: re-encoding a lossy image only loses more.
* Transparency is kept wherever the format has it (PNG, WebP); JPEG has none, so a
  transparent image is laid on white rather than on the black its hidden pixels may hold.
* A clip (an animated image, more than one frame) stays an animated WebP whatever format
  the template names, each frame watermarked, with its frame timings (100 ms if unsaid); its thumbnail is its
  first frame.
* The thumbnail is made from the delivered image (watermark included), its longer side at
  most `max_side`; an image smaller than that is not enlarged.

A video clip (MP4, WebM) is post-processed by `clips`, which uses the watermarks and
thumbnail drawing here.

Pillow does the work; callers run it in a thread, off the event loop.
"""

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageSequence

from services.common import watermark
from services.common.contracts import ManifestClaims
from services.common.templates import Delivery, Thumbnail, Watermark

MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
WHITE = (255, 255, 255)
THUMBNAIL_QUALITY = 80
# zlib's level for PNG: 3 wrote a megapixel photograph in a quarter of the time of the
# default 6 (0.14 s against 0.5 s), 8 % larger; a painting 25 % larger. Delivery's CPU is what
# other tenants wait on.
PNG_COMPRESS_LEVEL = 3
# libwebp's effort (0-6; Pillow's default 4): from 3 on it adds a rate-distortion search that,
# on a painted megapixel at quality 90, took 46 ms against 20 at 2, for a file 2 % smaller and
# the same PSNR (37.2 dB); a 256-pixel thumbnail 3.8 -> 1.7 ms. Thumbnails, WebP deliveries
# and animations alike.
WEBP_METHOD = 2
# A thumbnail or poster is small and its encoder coarse: WebP 80 wiped the invisible watermark
# from the flat parts of painted images' thumbnails. A marked one is written at 90, its mark
# half again as strong (a small copy shows no grain at the size it is seen).
MARKED_THUMBNAIL_QUALITY, THUMBNAIL_BOOST = 90, 1.5


@dataclass(frozen=True, kw_only=True)
class Rendered:
    """Encoded bytes and what they show; a video clip also its length, rate and codec."""

    data: bytes
    media_type: str
    width: int
    height: int
    frames: int = 1
    duration_ms: int = 0
    fps: float = 0.0
    codec: str | None = None


@dataclass(frozen=True, kw_only=True)
class RenderedFiles:
    image: Rendered
    thumbnail: Rendered
    # The id the invisible watermark carries (hex), when the image carries one; the label of its
    # C2PA manifest and what the manifest claims, set by provenance, the last step.
    watermark_id: str | None = None
    manifest_label: str | None = None
    claims: ManifestClaims | None = None


@dataclass(frozen=True)
class Animation:
    """An animated image's frames, how long each is shown (ms), and how often it loops (0: for ever)."""

    frames: list[Image.Image]
    durations: list[int]
    loop: int


class UnpublishableImage(ValueError):
    """The candidate is not an image delivery can decode and publish."""


def postprocess(data: bytes, delivery: Delivery, *, mark: watermark.Embedding | None = None) -> RenderedFiles:
    """The image to deliver and its thumbnail, as the template's delivery says, each carrying
    the invisible watermark `mark` embeds, where it is given and the image can hold one."""
    try:
        with Image.open(io.BytesIO(data)) as source:
            frames = [frame.copy() for frame in ImageSequence.Iterator(source)]
            source_format, loop = source.format, source.info.get("loop", 0)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise UnpublishableImage(f"{type(error).__name__}: {error}") from error
    target = target_format(source_format, len(frames), delivery=delivery)
    durations = [frame.info.get("duration") or 100 for frame in frames]
    if delivery.watermark is not None:
        frames = [watermarked(frame, delivery.watermark) for frame in frames]
    small = thumbnail(frames[0], delivery.thumbnail, mark=mark)
    carried = mark is not None and watermark.can_carry(*frames[0].size)
    if carried:
        frames = [marked(frame, mark) for frame in frames]
    if target == source_format and delivery.watermark is None and not carried:
        width, height = frames[0].size
        image = Rendered(data=data, media_type=MEDIA_TYPES[target], width=width, height=height, frames=len(frames))
    elif len(frames) > 1:
        image = encoded_clip(Animation(frames, durations, loop), delivery.quality)
    else:
        image = encoded(frames[0], target, quality=delivery.quality)
    mark_hex = watermark.mark_hex(mark.mark_id) if carried and mark is not None else None
    return RenderedFiles(image=image, thumbnail=small, watermark_id=mark_hex)


def target_format(source_format: str | None, frames: int, *, delivery: Delivery) -> str:
    if source_format not in MEDIA_TYPES:
        raise UnpublishableImage(f"not an image delivery can publish: {source_format or 'unknown format'}")
    if frames > 1:
        return "WEBP"
    # `original`, or a clip's format (mp4) on a template whose output here is a still
    return PIL_FORMATS.get(delivery.format, source_format)


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def encoded(image: Image.Image, pil_format: str, *, quality: int) -> Rendered:
    """One still image in `pil_format`, keeping transparency where the format has it."""
    alpha = has_alpha(image)
    if pil_format == "JPEG":
        pixels = on_white(image) if alpha else image.convert("RGB")
    else:
        pixels = image.convert("RGBA" if alpha else "RGB")
    buffer = io.BytesIO()
    options = {"JPEG": {"quality": quality}, "WEBP": {"quality": quality, "method": WEBP_METHOD}}.get(
        pil_format, {"compress_level": PNG_COMPRESS_LEVEL})
    pixels.save(buffer, format=pil_format, **options)
    width, height = pixels.size
    return Rendered(data=buffer.getvalue(), media_type=MEDIA_TYPES[pil_format], width=width, height=height)


def encoded_clip(animation: Animation, quality: int) -> Rendered:
    """An animated WebP of the animation's frames, each shown for its duration."""
    pixels = [frame.convert("RGBA") for frame in animation.frames]
    buffer = io.BytesIO()
    pixels[0].save(buffer, format="WEBP", save_all=True, append_images=pixels[1:], duration=animation.durations,
                   loop=animation.loop, quality=quality, method=WEBP_METHOD)
    width, height = pixels[0].size
    return Rendered(data=buffer.getvalue(), media_type="image/webp", width=width, height=height, frames=len(pixels))


def on_white(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, WHITE)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


def thumbnail_of(image: Image.Image, spec: Thumbnail) -> Image.Image:
    small = image.copy()
    small.thumbnail((spec.max_side, spec.max_side), Image.Resampling.BICUBIC)
    return small


def thumbnail(image: Image.Image, spec: Thumbnail, *, mark: watermark.Embedding | None = None) -> Rendered:
    """The thumbnail of `image`, carrying the invisible watermark `mark` embeds, where given."""
    small = thumbnail_of(image, spec)
    if mark is None or not watermark.can_carry(*small.size):
        return encoded(small, PIL_FORMATS[spec.format], quality=THUMBNAIL_QUALITY)
    return encoded(marked(small, mark, boost=THUMBNAIL_BOOST), PIL_FORMATS[spec.format], quality=MARKED_THUMBNAIL_QUALITY)


def marked(image: Image.Image, mark: watermark.Embedding | None, *, boost: float = 1.0) -> Image.Image:
    """`image` with the invisible watermark `mark` embeds (transparency kept); as it is when
    there is no mark to draw or the image is too small to hold one."""
    if mark is None or not watermark.can_carry(*image.size):
        return image
    if not has_alpha(image):
        return Image.fromarray(mark(np.asarray(image.convert("RGB")), boost))
    rgba = image.convert("RGBA")
    pixels = Image.fromarray(mark(np.asarray(rgba.convert("RGB")), boost))
    pixels.putalpha(rgba.getchannel("A"))
    return pixels


def watermarked(image: Image.Image, mark: Watermark) -> Image.Image:
    """`image` with the mark's text drawn at its position: white with a dark outline, so it
    shows on light and dark images alike, at the mark's opacity. The text scales with the
    image (a sixteenth of its shorter side). Transparency is kept."""
    alpha = has_alpha(image)
    base = image.convert("RGBA")
    size = text_size(base.size)
    font = ImageFont.load_default(size=size)
    stroke = max(1, size // 12)
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    # Whole pixels from a font at (0, 0); Pillow's types allow fractions.
    left, top, right, bottom = (int(edge) for edge in draw.textbbox((0, 0), mark.text, font=font, stroke_width=stroke))
    x, y = placed(base.size, (right - left, bottom - top), position=mark.position)
    opacity = round(255 * mark.opacity)
    draw.text((x - left, y - top), mark.text, font=font, fill=(*WHITE, opacity), stroke_width=stroke,
              stroke_fill=(0, 0, 0, opacity))
    marked = Image.alpha_composite(base, overlay)
    return marked if alpha else marked.convert("RGB")


def text_size(size: tuple[int, int]) -> int:
    """The mark's font size in an image of `size`: a sixteenth of its shorter side, 10 at least."""
    return max(10, min(size) // 16)


def placed(size: tuple[int, int], box: tuple[int, int], *, position: str) -> tuple[int, int]:
    """Top-left corner of a `box` at `position` in an image of `size`, half the mark's font
    size from its edges."""
    margin = text_size(size) // 2
    (width, height), (box_width, box_height) = size, box
    x = {"left": margin, "right": width - box_width - margin}
    y = {"top": margin, "bottom": height - box_height - margin}
    if position == "center":
        return (width - box_width) // 2, (height - box_height) // 2
    vertical, horizontal = position.split("-")
    return max(0, x[horizontal]), max(0, y[vertical])
