"""The local providers' image operations, on small images: deterministic, and each does what its stage says."""

import io

import numpy as np
import pytest
from PIL import Image
from skimage import data

from services.router.providers import image_stages


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def pixels_of(encoded: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(encoded)))


ASTRONAUT = png(data.astronaut())


def test_crop_centres_a_square_on_the_face_at_the_asked_size():
    out = image_stages.crop_to_subject(ASTRONAUT, {"margin": 0.9, "size": 160}, seed=1)
    assert (out.width, out.height) == (160, 160)
    box = image_stages.subject_box(pixels_of(out.data))
    assert box is not None
    centre = (box[0] + box[2] / 2, box[1] + box[3] / 2)
    assert abs(centre[0] - 80) < 24 and abs(centre[1] - 80) < 24


def test_a_crop_without_dlib_says_once_that_the_haar_cascade_finds_its_faces(monkeypatch, caplog):
    from services.common import face_models

    monkeypatch.setattr(face_models, "dlib", None)
    image_stages.say_which_detector.cache_clear()
    for _ in range(2):
        image_stages.crop_to_subject(ASTRONAUT, {"size": 64}, seed=1)
    image_stages.say_which_detector.cache_clear()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "OpenCV Haar cascade" in warnings[0] and "dlib is not installed" in warnings[0]


def test_without_a_face_the_crop_is_the_central_square():
    assert image_stages.square_around(None, (100, 300, 3), margin=0.5) == (100, 0, 100)


def test_stylize_is_deterministic_per_seed_and_differs_between_seeds():
    small = png(data.astronaut()[::4, ::4])
    first, again = (image_stages.stylize(small, {"style": "studio"}, seed=3) for _ in range(2))
    other = image_stages.stylize(small, {"style": "studio"}, seed=4)
    assert first.data == again.data != other.data
    with pytest.raises(image_stages.StageInputError):
        image_stages.stylize(small, {"style": "vaporwave"}, seed=3)


def test_upscale_doubles_the_size_and_keeps_alpha():
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[5:15, 10:20] = (255, 0, 0, 255)
    for method in ("lanczos", "nearest"):
        out = pixels_of(image_stages.upscale(png(rgba), {"factor": 2, "method": method}, seed=0).data)
        assert out.shape == (40, 60, 4) and out[0, 0, 3] == 0 and out[20, 30, 3] == 255


def test_background_removal_leaves_the_border_transparent_and_the_subject_opaque():
    pixels = np.full((80, 80, 3), 235, np.uint8)
    pixels[20:60, 25:55] = (30, 60, 160)
    cut = pixels_of(image_stages.remove_background(png(pixels), {"border": 0.1}, seed=1).data)
    assert cut.shape == (80, 80, 4)
    assert cut[2, 2, 3] == 0 and cut[40, 40, 3] == 255


def test_animate_writes_a_webp_clip_of_the_declared_frames_and_size():
    out = image_stages.animate(png(data.astronaut()[::4, ::4]), {"frames": 5, "frame_ms": 100, "width": 64,
                                                                   "height": 48}, seed=2)
    clip = Image.open(io.BytesIO(out.data))
    assert (clip.format, clip.n_frames, clip.size, out.duration_ms) == ("WEBP", 5, (64, 48), 500)
    clip.seek(0)
    first = np.asarray(clip.convert("RGB")).copy()
    clip.seek(4)
    assert np.abs(first.astype(int) - np.asarray(clip.convert("RGB"))).mean() > 1  # it moves


def test_a_file_that_is_not_an_image_is_refused():
    with pytest.raises(image_stages.StageInputError):
        image_stages.upscale(b"<html></html>", {}, seed=0)
