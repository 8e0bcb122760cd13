"""The built-in painter: seeded, deterministic PNG paintings made on the CPU (`provider.py`
puts it behind the provider interface).

`LocalGenerator` lets the whole pipeline run offline. Each candidate is a colour
gradient with a patch of fine pattern, filled shapes with crisp edges and thin lines,
coloured from a hash of the prompt and a per-candidate random generator. A labelled
share of every batch is deliberately defective ("blur" or "blank"), so that scoring
has something to reject.

Candidate `i` of a (prompt, seed) pair is painted from its own generator, so it comes
out identical whether it is painted in a batch starting at 0 or at `i`. Which
candidates of a batch are defective depends on the batch (seed, start_index, count).
"""

import colorsys
import hashlib
import io
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Defect = Literal["blur", "blank"]

MIN_SIDE = 16
MAX_SIDE = 4096
BLUR_RADIUS = 10
# ITU-R BT.601 luma weights, as in Pillow's "L" mode.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])
# Tags keep the candidate and defect generators on separate streams for equal inputs.
_CANDIDATE_STREAM = 1
_DEFECT_STREAM = 2


@dataclass(frozen=True)
class PaintedCandidate:
    index: int
    png: bytes
    defect: Defect | None


@dataclass(frozen=True, kw_only=True)
class CandidateRange:
    """Candidates `start_index … start_index+count-1` of one prompt and seed."""

    prompt: str
    seed: int
    count: int
    start_index: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise ValueError(f"prompt must be a string, got {type(self.prompt).__name__}")
        if not _is_int(self.seed):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not _is_int(self.count) or self.count < 0:
            raise ValueError(f"count must be an integer of at least 0, got {self.count!r}")
        if not _is_int(self.start_index) or self.start_index < 0:
            raise ValueError(f"start_index must be an integer of at least 0, got {self.start_index!r}")

    @property
    def indices(self) -> range:
        return range(self.start_index, self.start_index + self.count)

    @cached_property
    def prompt_words(self) -> list[int]:
        """Four stable 32-bit words of the prompt's SHA-256 (Python's hash() varies per run)."""
        digest = hashlib.sha256(self.prompt.encode("utf-8")).digest()
        return [int.from_bytes(digest[i : i + 4], "big") for i in range(0, 16, 4)]

    def candidate_rng(self, index: int) -> np.random.Generator:
        """Candidate `index`'s own generator: the same whichever batch it is painted in."""
        return np.random.default_rng([_CANDIDATE_STREAM, *self.prompt_words, _seed_word(self.seed), index])


@dataclass(frozen=True, kw_only=True)
class Canvas:
    """A painting under way: its random stream, the prompt's hue, and its size."""

    rng: np.random.Generator
    base_hue: float
    width: int
    height: int


class LocalGenerator:
    """Paints `width`×`height` PNG candidates; `defect_rate` of each batch is defective."""

    def __init__(self, width: int = 512, height: int = 512, *, defect_rate: float = 0.25) -> None:
        _check_side("width", width)
        _check_side("height", height)
        if not isinstance(defect_rate, (int, float)) or not 0 <= defect_rate < 1:
            raise ValueError(f"defect_rate must be at least 0 and below 1, got {defect_rate!r}")
        self.width = width
        self.height = height
        self.defect_rate = float(defect_rate)

    def paint(self, batch: CandidateRange) -> list[PaintedCandidate]:
        defects = self._choose_defects(batch)
        return [self._paint_one(batch, index, defect=defects.get(index)) for index in batch.indices]

    def _choose_defects(self, batch: CandidateRange) -> dict[int, Defect]:
        """Pick exactly floor(count * defect_rate) defective indices, kinds alternating."""
        count, start_index = batch.count, batch.start_index
        defective = math.floor(count * self.defect_rate)
        rng = np.random.default_rng([_DEFECT_STREAM, _seed_word(batch.seed), start_index, count])
        offsets = sorted(rng.choice(count, size=defective, replace=False).tolist())
        first_kind = int(rng.integers(2))
        kinds: tuple[Defect, Defect] = ("blur", "blank")
        return {
            start_index + offset: kinds[(first_kind + n) % 2] for n, offset in enumerate(offsets)
        }

    def _paint_one(self, batch: CandidateRange, index: int, *, defect: Defect | None) -> PaintedCandidate:
        rng = batch.candidate_rng(index)
        if defect == "blank":
            image = _blank_frame(rng, self.width, height=self.height)
        else:
            hue = (batch.prompt_words[0] % 360) / 360
            image = _paint_clean(Canvas(rng=rng, base_hue=hue, width=self.width, height=self.height))
        if defect == "blur":
            image = image.filter(ImageFilter.GaussianBlur(radius=BLUR_RADIUS))
        return PaintedCandidate(index=index, png=_encode_png(image), defect=defect)


def _check_side(name: str, value: int) -> None:
    if not _is_int(value) or not MIN_SIDE <= value <= MAX_SIDE:
        raise ValueError(f"{name} must be an integer from {MIN_SIDE} to {MAX_SIDE}, got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _seed_word(seed: int) -> int:
    # SeedSequence takes only non-negative entropy, so negative seeds wrap around.
    return seed % 2**64


def _paint_clean(canvas: Canvas) -> Image.Image:
    pixels = _gradient(canvas)
    _add_pattern_patch(canvas, pixels)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(canvas.rng.integers(6, 11))):
        _draw_shape(canvas, draw)
    for _ in range(int(canvas.rng.integers(3, 7))):
        _draw_line(canvas, draw)
    return image


def _colour(
    canvas: Canvas, luma: tuple[float, float], *, saturation: tuple[float, float] = (0.35, 0.9)
) -> np.ndarray:
    """An RGB colour (0..255) near the prompt's hue whose luminance lies in the `luma` band.

    Choosing by luminance rather than HSV value keeps exposure moderate for every hue:
    a fully bright blue is darker than a half bright yellow.
    """
    rng = canvas.rng
    hue = (canvas.base_hue + rng.uniform(-0.25, 0.25)) % 1.0
    target = rng.uniform(*luma)
    bright = np.array(colorsys.hsv_to_rgb(hue, float(rng.uniform(*saturation)), 1.0))
    rgb = bright * (target / float(bright @ LUMA_WEIGHTS))
    if rgb.max() > 1:
        # Out of gamut: move toward the grey of the same luminance until it fits.
        rgb = target + (rgb - target) * ((1 - target) / (rgb.max() - target))
    return rgb * 255


def _rgb_tuple(colour: np.ndarray) -> tuple[int, int, int]:
    red, green, blue = (int(round(c)) for c in colour)
    return red, green, blue


def _gradient(canvas: Canvas) -> np.ndarray:
    # A darker and a lighter end keep the luminance spread well clear of a blank frame.
    start, end = _colour(canvas, (0.3, 0.42)), _colour(canvas, (0.6, 0.75))
    angle = canvas.rng.uniform(0, 2 * math.pi)
    xs = np.linspace(0, 1, canvas.width, dtype=np.float32)[None, :]
    ys = np.linspace(0, 1, canvas.height, dtype=np.float32)[:, None]
    along = xs * math.cos(angle) + ys * math.sin(angle)
    along = (along - along.min()) / max(float(along.max() - along.min()), 1e-6)
    blend = along[:, :, None]
    gradient: np.ndarray = (start * (1 - blend) + end * blend).round().astype(np.uint8)
    return gradient


def _add_pattern_patch(canvas: Canvas, pixels: np.ndarray) -> None:
    """Fill one rectangle with a fine checkerboard or diagonal stripes, in place."""
    rng = canvas.rng
    height, width, _ = pixels.shape
    patch_h = int(height * rng.uniform(0.15, 0.3))
    patch_w = int(width * rng.uniform(0.15, 0.3))
    top = int(rng.integers(0, height - patch_h + 1))
    left = int(rng.integers(0, width - patch_w + 1))
    period = int(rng.integers(2, 6))
    ys, xs = np.mgrid[0:patch_h, 0:patch_w]
    cells = (ys // period + xs // period) if rng.random() < 0.5 else (ys + xs) // period
    # Pale against deep, so the pattern has contrast in luminance whatever the hue.
    light = _colour(canvas, (0.75, 0.88), saturation=(0.15, 0.4))
    dark = _colour(canvas, (0.12, 0.25), saturation=(0.5, 0.9))
    patch = np.where((cells % 2 == 0)[:, :, None], light, dark)
    pixels[top : top + patch_h, left : left + patch_w] = patch.round().astype(np.uint8)


def _draw_shape(canvas: Canvas, draw: ImageDraw.ImageDraw) -> None:
    rng = canvas.rng
    fill = _rgb_tuple(_colour(canvas, (0.25, 0.8)))
    outline = _rgb_tuple(_colour(canvas, (0.15, 0.85))) if rng.random() < 0.5 else None
    kind = int(rng.integers(3))
    if kind == 2:
        draw.polygon(_polygon(canvas), fill=fill, outline=outline)
        return
    box = _box(canvas)
    shape = draw.rectangle if kind == 0 else draw.ellipse
    shape(box, fill=fill, outline=outline, width=int(rng.integers(1, 4)))


def _box(canvas: Canvas) -> tuple[int, int, int, int]:
    rng, width, height = canvas.rng, canvas.width, canvas.height
    side = min(width, height)
    box_w, box_h = (int(side * rng.uniform(0.08, 0.4)) + 2 for _ in range(2))
    left = int(rng.integers(-box_w // 4, width - box_w // 2))
    top = int(rng.integers(-box_h // 4, height - box_h // 2))
    return left, top, left + box_w, top + box_h


def _polygon(canvas: Canvas) -> list[tuple[float, float]]:
    rng = canvas.rng
    centre_x, centre_y = rng.uniform(0, canvas.width), rng.uniform(0, canvas.height)
    radius = min(canvas.width, canvas.height) * rng.uniform(0.06, 0.22)
    corners = int(rng.integers(3, 7))
    angles = np.sort(rng.uniform(0, 2 * math.pi, corners))
    radii = radius * rng.uniform(0.6, 1.0, corners)
    return [
        (centre_x + r * math.cos(a), centre_y + r * math.sin(a)) for r, a in zip(radii, angles)
    ]


def _draw_line(canvas: Canvas, draw: ImageDraw.ImageDraw) -> None:
    rng = canvas.rng
    ends = [(rng.uniform(0, canvas.width), rng.uniform(0, canvas.height)) for _ in range(2)]
    colour = _rgb_tuple(_colour(canvas, (0.1, 0.9)))
    draw.line(ends, fill=colour, width=int(rng.integers(1, 4)))


def _blank_frame(rng: np.random.Generator, width: int, *, height: int) -> Image.Image:
    """A black frame or a frame of one random colour."""
    if rng.random() < 0.5:
        return Image.new("RGB", (width, height), (0, 0, 0))
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    return Image.new("RGB", (width, height), colour)


def _encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    # Light compression keeps a 512×512 painting well under 100 ms.
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
