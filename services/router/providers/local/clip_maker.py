"""The local provider's clips: real MP4 files made offline, with labelled defects.

`ClipMaker` turns a still into a clip with real motion: the camera pans and zooms slowly
over the still (drawn a little larger than the frame) while a subject, a bright disc with a
shadow, crosses the scene. The still is the painter's for text-to-video, or the first frame
given for image-to-video (the previous stage's still, or the job's own). Frames are encoded
with `services.common.video.encode` (H.264, yuv420p, index first), so the file is what a
hosted model would send.

A defect is planted in the file itself, so the scorer has something real to find:

* `frozen`     the motion stops after the first third: the rest repeats one frame;
* `black`      a run of black frames in the middle;
* `flicker`    every other frame much darker: the luminance jumps frame to frame;
* `still`      one still with a little noise, no motion at all (a still passed off as a clip);
* `face_change` halfway, the subject at the centre (where a portrait's face is) becomes another
               (another painting's centre, or the first frame's upside down) while the scene
               around it goes on: the identity changes mid-clip;
* `short`      half the frames asked for: a clip shorter than asked;
* `corrupt`    a valid header over media whose second half is overwritten with noise.
"""

import io
import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from PIL import Image, ImageDraw

from services.common import video
from services.router.providers.local.painter import CandidateRange, LocalGenerator

ClipDefect = Literal["frozen", "black", "flicker", "still", "face_change", "short", "corrupt"]
CLIP_DEFECTS: tuple[ClipDefect, ...] = get_args(ClipDefect)
# The still is drawn this much larger than the frame, so the camera has room to move.
_MARGIN = 1.15
_FLICKER_DARKEN = 0.45


@dataclass(frozen=True)
class MadeClip:
    data: bytes
    defect: ClipDefect | None


@dataclass(frozen=True)
class ClipTake:
    """One clip of a shape: the seed its painting and noise come from, and the defect planted in it."""

    seed: int
    defect: ClipDefect | None = None


@dataclass(frozen=True)
class _Backdrop:
    """What the camera looks at: the canvas, and the canvas with its subject swapped (seen from
    halfway through a `face_change` clip)."""

    canvas: np.ndarray
    swapped: np.ndarray


@dataclass(frozen=True, kw_only=True)
class ClipShape:
    width: int
    height: int
    duration_s: float
    fps: int

    @property
    def frames(self) -> int:
        return max(2, round(self.duration_s * self.fps))


class ClipMaker:
    """Clips of one shape; `still` is an RGB array of any size (it is fitted to the frame)."""

    def __init__(self, shape: ClipShape) -> None:
        self.shape = shape

    def from_text(self, prompt: str, take: ClipTake) -> MadeClip:
        return self.from_still(self.painted(prompt, take.seed), take, other=self.painted(prompt, take.seed + 7919))

    def from_still(self, still: np.ndarray, take: ClipTake, *, other: np.ndarray | None = None) -> MadeClip:
        canvas = _fitted(still, self._canvas_size())
        backdrop = _Backdrop(canvas, _subject_swapped(canvas, _fitted(other, self._canvas_size())
                                                      if other is not None else canvas[::-1].copy()))
        frames = [self._frame(backdrop, n, take=take) for n in range(self._frame_count(take.defect))]
        data = video.encode(frames, self.shape.fps)
        return MadeClip(_corrupted(data) if take.defect == "corrupt" else data, take.defect)

    def painted(self, prompt: str, seed: int) -> np.ndarray:
        width, height = self._canvas_size()
        png = LocalGenerator(width, height, defect_rate=0).paint(CandidateRange(prompt=prompt or "clip", seed=seed, count=1))[0].png
        with Image.open(io.BytesIO(png)) as image:
            return np.asarray(image.convert("RGB"))

    # ---- frames ----------------------------------------------------------------------------

    def _canvas_size(self) -> tuple[int, int]:
        return _even(self.shape.width * _MARGIN), _even(self.shape.height * _MARGIN)

    def _frame_count(self, defect: ClipDefect | None) -> int:
        return max(2, self.shape.frames // 2) if defect == "short" else self.shape.frames

    def _frame(self, backdrop: _Backdrop, n: int, *, take: ClipTake) -> np.ndarray:
        total, defect = self.shape.frames, take.defect
        if defect == "still":
            return _noisy(self._view(backdrop.canvas, 0, total=total), take.seed, n=n)
        if defect == "frozen":
            n = min(n, total // 3)
        if defect == "black" and total // 3 <= n < total // 3 + max(3, total // 4):
            return np.zeros((self.shape.height, self.shape.width, 3), np.uint8)
        source = backdrop.swapped if defect == "face_change" and n >= total // 2 else backdrop.canvas
        frame = self._view(source, n, total=total)
        if defect == "flicker" and n % 2:
            frame = (frame * _FLICKER_DARKEN).astype(np.uint8)
        return frame

    def _view(self, canvas: np.ndarray, n: int, *, total: int) -> np.ndarray:
        """Frame `n`: the camera's window over the canvas, with the subject drawn where it is."""
        t = n / max(1, total - 1)
        width, height = self.shape.width, self.shape.height
        spare_x, spare_y = canvas.shape[1] - width, canvas.shape[0] - height
        left, top = round(spare_x * t), round(spare_y * (0.5 - 0.5 * math.cos(math.pi * t)))
        window = Image.fromarray(canvas[top:top + height, left:left + width])
        draw = ImageDraw.Draw(window)
        radius = max(4, height // 8)
        x = round(radius + (width - 2 * radius) * t)
        y = round(height * (0.62 - 0.18 * math.sin(math.pi * t)))
        draw.ellipse((x - radius + 4, y - radius + 6, x + radius + 4, y + radius + 6), fill=(20, 20, 20))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(250, 220, 90), outline=(90, 40, 10),
                     width=3)
        return np.asarray(window, dtype=np.uint8)


def clip_defect(kind: str) -> ClipDefect:
    if kind not in CLIP_DEFECTS:
        raise ValueError(f"unknown clip defect {kind!r}; known: {', '.join(CLIP_DEFECTS)}")
    return kind


def still_of(image: bytes) -> np.ndarray:
    """An image's pixels as RGB (a first frame, in whatever format it came)."""
    with Image.open(io.BytesIO(image)) as opened:
        return np.asarray(opened.convert("RGB"))


def _fitted(still: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The still scaled to cover `size` and cropped to it from the centre."""
    image = Image.fromarray(np.ascontiguousarray(still, dtype=np.uint8))
    scale = max(size[0] / image.width, size[1] / image.height)
    scaled = image.resize((max(size[0], round(image.width * scale)), max(size[1], round(image.height * scale))),
                          Image.Resampling.BILINEAR)
    left, top = (scaled.width - size[0]) // 2, (scaled.height - size[1]) // 2
    return np.asarray(scaled.crop((left, top, left + size[0], top + size[1])), dtype=np.uint8)


def _subject_swapped(canvas: np.ndarray, other: np.ndarray) -> np.ndarray:
    """The canvas with its centre (where a portrait's face is) taken from `other`, in an ellipse:
    the scene goes on around a subject that is someone else."""
    height, width = canvas.shape[:2]
    rows, cols = np.ogrid[:height, :width]
    inside = ((cols - width / 2) / (width * 0.22)) ** 2 + ((rows - height / 2) / (height * 0.34)) ** 2 <= 1
    swapped = canvas.copy()
    swapped[inside] = other[inside]
    return swapped


def _noisy(frame: np.ndarray, seed: int, *, n: int) -> np.ndarray:
    """The same frame with a little sensor noise: not identical frames, and still no motion."""
    noise = np.random.default_rng([seed % 2**32, n]).integers(-2, 3, frame.shape)
    noisy: np.ndarray = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return noisy


def _corrupted(data: bytes) -> bytes:
    """The file with the second half of its media overwritten: its header still reads, its
    frames past the middle do not decode."""
    start = data.find(b"mdat")
    start = start + 4 if start >= 0 else len(data) // 4
    middle = start + (len(data) - start) // 2
    noise = np.random.default_rng(len(data)).integers(0, 256, len(data) - middle, dtype=np.uint8).tobytes()
    return data[:middle] + noise


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)
