"""What an image (or a clip) from a provider must be before it counts as a candidate.

It decodes completely (a truncated or corrupt file is refused, not stored), its size is
the size the model was asked for within the model's tolerance, and it is not one flat
colour (a blank from a failed safety filter or a broken decoder), unless the provider's
configuration lets blanks through. A refusal is `bad_output`: the provider's defect, which
counts against its breaker. Stages other than generate are held to decoding only: their
output size is the stage's business (an upscaler doubles it). A clip is read as a file
(`checked_clip`): a container with a video stream of more than one frame, at the size asked,
whose frames decode and are what its index and header declare (a file cut short is damaged,
not a short clip); its length and rate are the scorer's to judge against the job.
"""

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageStat

from services.common import video
from services.router.providers.base import ProviderError
from services.router.providers.inputs import within

# Below this spread of grey levels (0-255) an image is one flat colour.
_BLANK_SPREAD = 2.0
_THUMBNAIL = (64, 64)


@dataclass(frozen=True, slots=True, kw_only=True)
class Expectation:
    """What an output of `provider` is held to: the size asked (None: any) within the model's
    tolerance, and whether one flat colour is refused."""

    provider: str
    size: tuple[int, int] | None
    tolerance: float
    reject_blank: bool = False

    def refuses_size(self, size: tuple[int, int]) -> bool:
        return self.size is not None and not within(size, self.size, tolerance=self.tolerance)

    def size_asked(self) -> str:
        assert self.size is not None
        return f"{self.size[0]}×{self.size[1]} (±{self.tolerance:.0%})"


def checked_image(data: bytes, expected: Expectation, *, declared: str | None = None) -> str:
    """The image's media type, if it passes; else raises `bad_output`. `declared`: the media
    type the provider gave it, for the message."""
    provider = expected.provider
    media_type, size, spread = _decoded(provider, data, declared=declared)
    if expected.refuses_size(size):
        raise ProviderError(kind="bad_output", message=f"{provider}: image is {size[0]}×{size[1]}, asked for "
                                          f"{expected.size_asked()}")
    if expected.reject_blank and spread < _BLANK_SPREAD:
        raise ProviderError(kind="bad_output", message=f"{provider}: image is blank (one flat colour)")
    return media_type


def checked_clip(data: bytes, expected: Expectation, *, declared: str | None = None) -> str:
    """A clip's media type, if it is one: its container and video stream read (`video.probe`:
    size and frames from the file, never from the provider), more than one frame, the size
    asked within the model's tolerance, and every frame decodes. Else `bad_output`."""
    provider = expected.provider
    try:
        info = video.probe(data)
    except video.ClipError as error:
        raise ProviderError(kind="bad_output", message=f"{provider}: output ({declared or 'no media type'}, {len(data)} bytes)"
                                          f" is not a clip: {error}") from None
    if (damaged := video.damage(info)) is not None:
        raise ProviderError(kind="bad_output", message=f"{provider}: the clip is damaged: {damaged}")
    if info.frames >= 2 and (decoded := video.decoded_count(data)) < info.frames:
        raise ProviderError(kind="bad_output", message=f"{provider}: the clip is damaged: {decoded} of its {info.frames} frames"
                                          " decode")
    if info.frames < 2:
        raise ProviderError(kind="bad_output", message=f"{provider}: the clip has {info.frames} frame(s): a still, not a clip")
    if expected.refuses_size((info.width, info.height)):
        raise ProviderError(kind="bad_output", message=f"{provider}: clip is {info.width}×{info.height}, asked for "
                                          f"{expected.size_asked()}")
    return info.media_type


def _decoded(provider: str, data: bytes, *, declared: str | None) -> tuple[str, tuple[int, int], float]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()  # decodes every byte: a truncated file fails here, not in the scorer
                media_type = image.get_format_mimetype() or "application/octet-stream"
                thumbnail = image.convert("L")
                thumbnail.thumbnail(_THUMBNAIL)
                return media_type, image.size, ImageStat.Stat(thumbnail).stddev[0]
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ProviderError(kind="bad_output", message=f"{provider}: output ({declared or 'no media type'}, {len(data)} bytes)"
                                          " is not an image the scorer and delivery can read") from None
