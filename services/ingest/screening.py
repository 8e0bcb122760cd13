"""Screening of uploaded photos: type by content, size, pixel count, decompression bombs.

A reference photo arrives base64-encoded in the job request. It is accepted only when its
bytes are a JPEG, PNG or WebP image that decodes completely within the pixel budget.
"""

import base64
import binascii
import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image

from services.common.problems import Problem

MAX_REFERENCE_BYTES = 8 * 1024 * 1024
MAX_REFERENCE_BASE64 = (MAX_REFERENCE_BYTES + 2) // 3 * 4
FORMATS = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png"), "WEBP": ("image/webp", "webp")}


@dataclass(frozen=True)
class ScreenedPhoto:
    data: bytes
    media_type: str
    extension: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def screened_photo(encoded: str, max_pixels: int) -> ScreenedPhoto:
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Problem(422, "invalid-reference-image", "reference_image is not valid base64") from None
    if len(data) > MAX_REFERENCE_BYTES:
        raise Problem(413, "reference-image-too-large",
                      f"reference_image is {len(data)} bytes; at most {MAX_REFERENCE_BYTES} are accepted")
    image_format = _decoded_format(data, max_pixels)
    media_type, extension = FORMATS[image_format]
    return ScreenedPhoto(data, media_type, extension)


def _decoded_format(data: bytes, max_pixels: int) -> str:
    """The format read from the bytes themselves, after decoding every pixel once."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(FORMATS)) as image:
                if image.width * image.height > max_pixels:
                    raise Problem(422, "reference-image-too-large",
                                  f"reference_image has {image.width}×{image.height} pixels; at most {max_pixels}")
                image.load()
                return image.format
    except Problem:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise Problem(422, "invalid-reference-image",
                      f"reference_image is not a complete JPEG, PNG or WebP image ({error})") from None
