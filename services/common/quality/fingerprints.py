"""Perceptual fingerprints: two pictures that look alike have fingerprints a few bits apart.

A fingerprint is the 64-bit DCT hash of a picture's luma shrunk to 32×32: the signs of the
8×8 lowest frequencies (the DC term left out) against their median. Recompression, a resize
or a small colour shift move a handful of bits; a different framing, pose or backdrop moves
dozens. Subjects use it to refuse a photo that repeats another, and the selection of an order
across styles to keep two near-duplicates from both shipping.
"""

import io
from collections.abc import Iterable
from functools import lru_cache

import numpy as np
from PIL import Image

SIDE = 32
LOW = 8
BITS = LOW * LOW
# At most this many differing bits: the same picture, give or take an encoder or a resize.
NEAR_DUPLICATE_BITS = 10


@lru_cache(maxsize=1)
def _dct_basis() -> np.ndarray:
    """The first LOW rows of the orthonormal DCT-II matrix of size SIDE."""
    k = np.arange(LOW)[:, None]
    n = np.arange(SIDE)[None, :]
    basis: np.ndarray = np.cos(np.pi * (2 * n + 1) * k / (2 * SIDE)) * np.sqrt(2 / SIDE)
    basis[0] /= np.sqrt(2)
    return basis


def fingerprint_of(image: Image.Image) -> str:
    """The picture's fingerprint, 16 hex digits."""
    luma = np.asarray(image.convert("L").resize((SIDE, SIDE), Image.Resampling.LANCZOS), dtype=np.float64)
    basis = _dct_basis()
    low = basis @ luma @ basis.T
    values = low.flatten()[1:]
    bits = np.concatenate([[False], values > np.median(values)])
    return f"{int(''.join('1' if bit else '0' for bit in bits), 2):016x}"


def fingerprint(data: bytes) -> str:
    """The fingerprint of an encoded image (any format Pillow opens; a clip's first frame)."""
    with Image.open(io.BytesIO(data)) as image:
        return fingerprint_of(image)


def distance(a: str, b: str) -> int:
    """How many of the 64 bits differ."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def near_duplicates(a: str, b: str) -> bool:
    return distance(a, b) <= NEAR_DUPLICATE_BITS


def alike_any(fingerprint: str, others: Iterable[str]) -> bool:
    """Whether the picture is a near-duplicate of one of `others`."""
    return any(near_duplicates(fingerprint, other) for other in others)
