"""What the built-in local providers do to an image at each stage, on the CPU and offline.

Each operation takes encoded image bytes, the stage's parameters and a per-candidate seed,
and returns `StageOutput` (encoded bytes, media type, and frames for a clip). They are
deterministic: the same input, parameters and seed give the same bytes. OpenCV and Pillow
only; the one model used is the face detector the scorer uses (`services.common.face_models`:
dlib's HOG, else OpenCV's bundled Haar cascade, failing as it fails), so nothing is downloaded.

* crop_to_subject (preprocess): a square around the largest face (or the centre when
  there is none), grown by `margin` of the face box on every side, resized to `size`.
* remove_background: GrabCut seeded with the central box that leaves `border` of the
  frame on each side as background; the result is an RGBA PNG, background transparent.
* stylize: OpenCV's edge-preserving stylisation blended with the photo, plus a colour
  grade (`style`); a seed shifts the grade a little, so candidates differ.
* upscale: Lanczos by `factor`, then an unsharp mask (`method: lanczos`), or plain
  nearest-neighbour (`method: nearest`, the cheap one).
* animate: a pan-and-zoom clip over the still, `frames` frames of `frame_ms` each at
  `width`×`height`, written as an animated WebP with Pillow.
* postprocess: a mild denoise and contrast stretch.
"""

import functools
import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np
from PIL import Image

MAX_UPSCALED_SIDE = 4096
GRABCUT_SIDE = 512
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class StageOutput:
    data: bytes
    media_type: str
    width: int
    height: int
    frames: int = 1
    duration_ms: int = 0


class StageInputError(ValueError):
    """The input cannot go through this stage (not an image, or parameters out of range)."""


def decode(data: bytes, mode: str = "RGB") -> np.ndarray:
    """The image's pixels in `mode`; `keep_alpha`: RGBA when the image has transparency, else RGB."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if mode == "keep_alpha":
                mode = "RGBA" if image.mode in ("RGBA", "LA") or "transparency" in image.info else "RGB"
            return np.asarray(image.convert(mode))
    except Exception as error:  # noqa: BLE001 — Pillow raises many kinds for a bad image
        raise StageInputError(f"the stage's input is not an image Pillow can read: {error}") from None


def encode_png(pixels: np.ndarray) -> StageOutput:
    image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=3)
    return StageOutput(data=buffer.getvalue(), media_type="image/png", width=image.width, height=image.height)


# ---- preprocess ----------------------------------------------------------------------


def subject_box(rgb: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of the largest face, or None."""
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    smallest = max(24, int(min(luma.shape) * 0.08))
    from services.common import face_models  # on first crop: dlib loads only where a crop needs it

    say_which_detector(face_models.detector_name(), getattr(face_models, "dlib", None) is None)
    faces = face_models.detect_faces(np.ascontiguousarray(luma), smallest)
    return (faces[0].x, faces[0].y, faces[0].width, faces[0].height) if faces else None


@functools.cache
def say_which_detector(name: str, fallback: bool) -> None:
    """Once per process: which detector finds the subjects, and a warning where it is the fallback."""
    if fallback:
        log.warning("the crop stage finds faces with the %s: dlib is not installed, so it misses more "
                    "portraits and finds more false faces", name)
    else:
        log.info("the crop stage finds faces with %s", name)


def square_around(box: tuple[int, int, int, int] | None, shape: tuple[int, ...], *, margin: float) -> tuple[int, int, int]:
    """(left, top, side) of the square around `box` grown by `margin`, kept inside the frame."""
    height, width = shape[:2]
    if box is None:
        side = min(width, height)
        return (width - side) // 2, (height - side) // 2, side
    x, y, w, h = box
    side = min(int(max(w, h) * (1 + 2 * margin)), width, height)
    left = min(max(0, x + w // 2 - side // 2), width - side)
    top = min(max(0, y + h // 2 - side // 2), height - side)
    return left, top, side


def crop_to_subject(data: bytes, params: Mapping[str, Any], *, seed: int) -> StageOutput:
    rgb = decode(data)
    left, top, side = square_around(subject_box(rgb), rgb.shape, margin=float(params.get("margin", 0.8)))
    size = int(params.get("size", side))
    crop = rgb[top:top + side, left:left + side]
    return encode_png(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if size < side else cv2.INTER_CUBIC))


# ---- remove_background ---------------------------------------------------------------


def remove_background(data: bytes, params: Mapping[str, Any], *, seed: int) -> StageOutput:
    rgb = decode(data)
    height, width = rgb.shape[:2]
    border = float(params.get("border", 0.08))
    if not 0 < border < 0.5:
        raise StageInputError(f"border must be between 0 and 0.5, got {border}")
    # GrabCut's time grows fast with the pixel count: segment a copy at most
    # GRABCUT_SIDE a side and scale the mask back up.
    scale = min(1.0, GRABCUT_SIDE / max(width, height))
    small = cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    small_h, small_w = small.shape[:2]
    rect = (int(small_w * border), int(small_h * border), int(small_w * (1 - 2 * border)),
            int(small_h * (1 - 2 * border)))
    mask = np.zeros((small_h, small_w), np.uint8)
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(seed)  # GrabCut's GMM initialisation draws from OpenCV's generator
    cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), mask, rect, background, foreground,
                int(params.get("iterations", 3)), cv2.GC_INIT_WITH_RECT)
    subject: np.ndarray = np.where(np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)), 255, 0).astype(np.uint8)
    subject = cv2.medianBlur(subject, 5)  # closes pinholes and drops specks
    alpha = cv2.resize(subject, (width, height), interpolation=cv2.INTER_LINEAR)
    return encode_png(np.dstack([rgb, alpha]))


# ---- stylize -------------------------------------------------------------------------

# Per style: weight of the stylised image, and the colour grade (gain per R, G, B channel).
STYLES = {
    "studio": (0.45, (1.06, 1.0, 0.94)),
    "cool": (0.5, (0.94, 1.0, 1.08)),
    "mono": (0.6, (1.0, 1.0, 1.0)),
}


def stylize(data: bytes, params: Mapping[str, Any], *, seed: int) -> StageOutput:
    rgb = decode(data)
    style = str(params.get("style", "studio"))
    if style not in STYLES:
        raise StageInputError(f"unknown style {style!r}; known: {', '.join(STYLES)}")
    weight, gains = STYLES[style]
    painted = cv2.cvtColor(cv2.stylization(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), sigma_s=30, sigma_r=0.25),
                           cv2.COLOR_BGR2RGB)
    blended = cv2.addWeighted(painted, weight, rgb, 1 - weight, 0).astype(np.float32)
    if style == "mono":
        blended = np.repeat(blended.mean(axis=2, keepdims=True), 3, axis=2)
    # The seed warms or cools the grade by up to 2 %, so candidates are not all alike.
    shift = (np.random.default_rng(seed).random() - 0.5) * 0.04
    graded = blended * (np.array(gains, np.float32) + np.array([shift, 0, -shift], np.float32))
    return encode_png(np.clip(graded, 0, 255).astype(np.uint8))


# ---- upscale -------------------------------------------------------------------------


def upscale(data: bytes, params: Mapping[str, Any], *, seed: int) -> StageOutput:
    pixels = decode(data, "keep_alpha")
    factor = float(params.get("factor", 2))
    height, width = pixels.shape[:2]
    size = (round(width * factor), round(height * factor))
    if not 1 <= factor <= 4 or max(size) > MAX_UPSCALED_SIDE:
        raise StageInputError(f"cannot upscale {width}×{height} by {factor} (at most 4×, {MAX_UPSCALED_SIDE} a side)")
    if params.get("method", "lanczos") == "nearest":
        return encode_png(cv2.resize(pixels, size, interpolation=cv2.INTER_NEAREST))
    large = cv2.resize(pixels, size, interpolation=cv2.INTER_LANCZOS4)
    blurred = cv2.GaussianBlur(large, (0, 0), sigmaX=1.0 * factor)
    return encode_png(cv2.addWeighted(large, 1.5, blurred, -0.5, 0))


# ---- animate -------------------------------------------------------------------------


def animate(data: bytes, params: Mapping[str, Any], *, seed: int) -> StageOutput:
    rgb = decode(data)
    frames, frame_ms = int(params.get("frames", 8)), int(params.get("frame_ms", 120))
    width, height = int(params.get("width", rgb.shape[1])), int(params.get("height", rgb.shape[0]))
    zoom = float(params.get("zoom", 1.2))
    if not 2 <= frames <= 120 or not 20 <= frame_ms <= 5000 or not 1 <= zoom <= 3:
        raise StageInputError("animate needs 2-120 frames of 20-5000 ms and a zoom of 1-3")
    # The seed picks the direction of the pan.
    move = _PanAndZoom(zoom, np.random.default_rng(seed).choice([-1.0, 1.0], size=2), (width, height))
    stills = [Image.fromarray(move.view(rgb, i / (frames - 1))) for i in range(frames)]
    buffer = io.BytesIO()
    stills[0].save(buffer, format="WEBP", save_all=True, append_images=stills[1:], duration=frame_ms, loop=0,
                   quality=85, method=2)
    return StageOutput(data=buffer.getvalue(), media_type="image/webp", width=width, height=height, frames=frames, duration_ms=frames * frame_ms)


@dataclass(frozen=True)
class _PanAndZoom:
    """The camera over a still: zoomed in from 1 to `zoom`, panned toward `direction`, framed at `size`."""

    zoom: float
    direction: np.ndarray
    size: tuple[int, int]

    def view(self, rgb: np.ndarray, progress: float) -> np.ndarray:
        """The frame `progress` (0 to 1) of the way through."""
        height, width = rgb.shape[:2]
        size, direction = self.size, self.direction
        scale = 1 + (self.zoom - 1) * progress
        view_w, view_h = width / scale, height / scale
        centre_x = width / 2 + direction[0] * (width - view_w) / 2 * progress
        centre_y = height / 2 + direction[1] * (height - view_h) / 2 * progress
        matrix = np.array([[size[0] / view_w, 0, -(centre_x - view_w / 2) * size[0] / view_w],
                           [0, size[1] / view_h, -(centre_y - view_h / 2) * size[1] / view_h]], np.float32)
        return cv2.warpAffine(rgb, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


# ---- postprocess ---------------------------------------------------------------------


def postprocess(data: bytes, params: Mapping[str, Any], *, seed: int) -> StageOutput:
    rgb = decode(data)
    smoothed = cv2.bilateralFilter(rgb, 5, 20, 5)
    low, high = np.percentile(smoothed, (1, 99))
    stretched = (smoothed.astype(np.float32) - low) * (255.0 / max(high - low, 1.0))
    return encode_png(np.clip(stretched, 0, 255).astype(np.uint8))


class StageOperation(Protocol):
    """A local operation: the input's bytes and the stage's parameters, with the seed named."""

    def __call__(self, data: bytes, params: Mapping[str, Any], *, seed: int) -> StageOutput: ...
# The local providers' operations by name (`local: {operation: …}` in the registry).
OPERATIONS: dict[str, StageOperation] = {
    "crop_to_subject": crop_to_subject,
    "remove_background": remove_background,
    "stylize": stylize,
    "upscale": upscale,
    "animate": animate,
    "postprocess": postprocess,
}
