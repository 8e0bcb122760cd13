"""What the verifier reads of a file's watermark: the tiled mark of a still, of an animation's
frames and of a clip's, and, in a still that carries no tiled mark, the earlier method's, so
files delivered before still lead to their delivery."""

import io

import numpy as np
from PIL import Image

from services.common import video, watermark, watermark_dwt
from services.ingest.receipts.provenance import detected_marks
from tests.common.test_watermark import photograph


def saved(frames: list[np.ndarray], pil_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(buffer, format=pil_format, save_all=len(images) > 1, append_images=images[1:], **options)
    return buffer.getvalue()


def test_a_still_an_animation_and_a_clip_are_read_for_the_tiled_mark():
    pixels = photograph("coffee", side=512)
    frames = [watermark.embed(np.roll(pixels, 8 * k, axis=1), 0x0BADC0FFEE11) for k in range(4)]
    clip = video.encode([frame[:340, :512] for frame in frames] * 3, 12)
    for data, media_type in ((saved(frames[:1], "JPEG", quality=80), "image/jpeg"),
                             (saved(frames, "WEBP", duration=100, quality=80), "image/webp"),
                             (clip, "video/mp4")):
        [found] = detected_marks(data, media_type)
        assert found.mark_id == 0x0BADC0FFEE11, media_type


def test_a_still_marked_by_the_earlier_method_is_read_by_it_too():
    old = watermark_dwt.embed(photograph("astronaut", side=512), 0x0A1B2C3D4E5F)
    tiled, earlier = detected_marks(saved([old], "PNG"), "image/png")
    assert tiled.mark_id is None and earlier.mark_id == 0x0A1B2C3D4E5F


def test_what_is_no_image_is_not_searched():
    assert detected_marks(b"\x89PNG not really", "image/png") == []
