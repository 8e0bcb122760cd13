"""Perceptual fingerprints: the same picture re-encoded or resized stays within a few bits,
another framing or another picture does not."""

import io

import pytest
from PIL import Image
from skimage import data

from services.common.quality.fingerprints import distance, fingerprint, fingerprint_of, near_duplicates


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_a_recompressed_or_resized_copy_is_a_near_duplicate(astronaut):
    original = fingerprint_of(astronaut)
    assert near_duplicates(original, fingerprint(encoded(astronaut, "JPEG", quality=50)))
    assert near_duplicates(original, fingerprint_of(astronaut.resize((160, 160))))
    assert near_duplicates(original, fingerprint(encoded(astronaut, "WEBP", quality=70)))


def test_another_framing_or_another_picture_is_not(astronaut):
    original = fingerprint_of(astronaut)
    assert not near_duplicates(original, fingerprint_of(astronaut.crop((60, 40, 420, 400))))
    assert not near_duplicates(original, fingerprint_of(Image.fromarray(data.coffee())))
    assert not near_duplicates(original, fingerprint_of(astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))


def test_a_fingerprint_is_64_bits_and_its_distance_counts_them(astronaut):
    value = fingerprint_of(astronaut)
    assert len(value) == 16 and int(value, 16) >= 0
    assert distance(value, value) == 0
    assert distance("0" * 16, "f" * 16) == 64
