"""Tier 2: how a subject is rendered — skin tone against the reference, lighting on the
face, and the background around the subject.

Colour is read in linear light (sRGB decoded) and compared in CIELAB (D65):

* skin_tone — the subject's cheeks and nose (the middle of the face box), white-balanced
  by grey edge (each channel scaled so the image's mean edge strengths agree, brightness
  kept, so a colour cast of the whole image is not read as a skin tone, nor is a coloured
  backdrop, which grey world would), as lightness L* and
  chroma C*. The value is in stops: the larger of |log2| of the skin's luminance ratio and
  of its chroma ratio to the reference face's. A stop is a doubling of light. For a job of
  a subject, to the skin of the subject's photos (`likeness`).
* lighting — stops of trouble on the subject's face: how far its skin luminance lies
  outside L* 35..90 (under- or overexposed), or how far apart the luminances of its left
  and right halves are (a harsh side shadow), whichever is worse. 0 is even, good light.
* background — clutter outside the subject: the share of pixels with a luma gradient over
  24 levels. With a face, everything but the subject's head and shoulders (the face box
  widened 1.5 face widths to each side, from half a face above it to the bottom); without,
  the frame's outer 12 %, where a product shot has its backdrop. 0 is a seamless backdrop.
"""

import math

import cv2
import numpy as np
import torch

from services.common.face_models import Face
from services.scorer.dimensions.batch import ImageBatch
from services.scorer.dimensions.faces import findings, per_image, reference_of, rgb_images

# Inside the face box: cheeks and nose, not hair, brows or background (left, top, right, bottom).
SKIN_BOX = (0.25, 0.35, 0.75, 0.8)
WELL_LIT_LIGHTNESS = (35.0, 90.0)
EDGE_LEVELS = 24.0
BORDER_SHARE = 0.12
# sRGB to CIE XYZ (D65), for linear RGB.
SRGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
D65_WHITE = SRGB_TO_XYZ.sum(axis=1)
_LINEAR = ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4
_LINEAR[:11] = np.arange(11) / 255.0 / 12.92
_LINEAR32 = _LINEAR.astype(np.float32)  # the same values, looked up without a float64 copy


def linear(rgb: np.ndarray) -> np.ndarray:
    """sRGB-encoded uint8 to linear light in [0, 1], float64."""
    linear_light: np.ndarray = _LINEAR[rgb]
    return linear_light


def grey_edge_gains(rgb: np.ndarray) -> np.ndarray:
    """Per-channel gains that make the image's mean linear edge strengths equal, keeping their
    mean (grey edge: the light's colour read from where colours change). Grey world, the means
    of the channels themselves, reads a coloured backdrop as a cast: a blue one turned every
    skin before it redder by over a stop of chroma; a flat backdrop has no edges to mislead."""
    light = _LINEAR32[rgb[::2, ::2]]
    edges = np.array([cv2.magnitude(cv2.Sobel(light[..., c], cv2.CV_32F, 1, 0), cv2.Sobel(light[..., c], cv2.CV_32F, 0, 1))
                      .mean() for c in range(3)])
    gains: np.ndarray = edges.mean() / np.maximum(edges, 1e-6)
    return gains


def lab_of(linear_rgb: np.ndarray) -> tuple[float, float]:
    """(L*, C*) of one linear RGB colour."""
    xyz = SRGB_TO_XYZ @ linear_rgb / D65_WHITE
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lightness = 116 * f[1] - 16
    a, b = 500 * (f[0] - f[1]), 200 * (f[1] - f[2])
    return float(lightness), float(math.hypot(a, b))


def luminance_of(lightness: float) -> float:
    """Relative luminance Y of a CIE lightness L*."""
    f = (lightness + 16) / 116
    return f**3 if f > 6 / 29 else 3 * (6 / 29) ** 2 * (f - 4 / 29)


def skin_patch(image: np.ndarray, face: Face) -> np.ndarray:
    left, top, right, bottom = SKIN_BOX
    return image[
        face.y + int(face.height * top) : face.y + max(int(face.height * bottom), 1),
        face.x + int(face.width * left) : face.x + max(int(face.width * right), 1),
    ]


def skin_colour(rgb: np.ndarray, face: Face | None) -> tuple[float, float] | None:
    """(L*, C*) of the face's skin, white-balanced; None without a face."""
    if face is None:
        return None
    patch = skin_patch(rgb, face)
    if not patch.size:
        return None
    mean = linear(patch).reshape(-1, 3).mean(axis=0) * grey_edge_gains(rgb)
    return lab_of(mean)


def stops_apart(colour: tuple[float, float] | None, reference: tuple[float, float] | None) -> float:
    if colour is None or reference is None:
        return math.nan
    # A floor of one L* and one C* unit keeps black or grey faces from dividing by zero.
    luminance = abs(math.log2(max(luminance_of(colour[0]), 1e-3) / max(luminance_of(reference[0]), 1e-3)))
    chroma = abs(math.log2(max(colour[1], 1.0) / max(reference[1], 1.0)))
    return max(luminance, chroma)


def skin_tone_stops(batch: ImageBatch) -> torch.Tensor:
    wanted = batch.context.memo("reference_skin", lambda: wanted_skin(batch))
    return per_image([
        stops_apart(skin_colour(rgb, finding.subject), wanted)
        for rgb, finding in zip(rgb_images(batch), findings(batch))
    ])


def wanted_skin(batch: ImageBatch) -> tuple[float, float] | None:
    """The skin candidates are compared with: the subject's (`likeness`), else the reference photo's face's."""
    if batch.context.subject is not None:
        return batch.context.subject.skin
    reference = reference_of(batch)
    return skin_colour(reference.rgb, reference.finding.subject)


def lighting_stops(batch: ImageBatch) -> torch.Tensor:
    luma = batch.luma_u8.cpu().numpy()
    return per_image([_lighting(image, f.subject) for image, f in zip(luma, findings(batch))])


def _lighting(luma: np.ndarray, face: Face | None) -> float:
    if face is None:
        return math.nan
    patch = linear(skin_patch(luma, face))
    if patch.shape[1] < 2:
        return math.nan
    half = patch.shape[1] // 2
    left, right = max(patch[:, :half].mean(), 1e-4), max(patch[:, half:].mean(), 1e-4)
    low, high = (luminance_of(bound) for bound in WELL_LIT_LIGHTNESS)
    level = patch.mean()
    exposure = math.log2(low / level) if level < low else math.log2(level / high) if level > high else 0.0
    return max(exposure, abs(math.log2(left / right)))


def background_clutter(batch: ImageBatch) -> torch.Tensor:
    luma = batch.luma_u8.cpu().numpy()
    return per_image([_clutter(image, f.subject) for image, f in zip(luma, findings(batch))])


def _clutter(luma: np.ndarray, face: Face | None) -> float:
    # In whole numbers (a 3×3 Sobel of bytes stays within ±1,020): a tenth of the time of
    # the same sums in floats, and the same edges.
    gradient = np.abs(cv2.Sobel(luma, cv2.CV_16S, 1, 0, ksize=3)) + np.abs(cv2.Sobel(luma, cv2.CV_16S, 0, 1, ksize=3))
    # A 3×3 Sobel weighs a step 4 times over its two axes' sum; back to luma levels.
    edges = gradient > 4 * EDGE_LEVELS
    backdrop = _backdrop_mask(luma.shape, face)
    counted = np.count_nonzero(backdrop)
    return np.count_nonzero(edges & backdrop) / counted if counted else math.nan


def _backdrop_mask(shape: tuple[int, ...], face: Face | None) -> np.ndarray:
    height, width = shape
    mask = np.zeros(shape, dtype=bool)
    if face is None:
        band_y, band_x = max(1, int(height * BORDER_SHARE)), max(1, int(width * BORDER_SHARE))
        mask[:band_y], mask[-band_y:], mask[:, :band_x], mask[:, -band_x:] = True, True, True, True
        return mask
    mask[:] = True
    left, right = max(0, int(face.x - 1.5 * face.width)), int(face.x + 2.5 * face.width)
    mask[max(0, int(face.y - 0.5 * face.height)) :, left:right] = False
    return mask


# Each measure under the name of the dimension it measures (`measures` registers them).
MEASURES = {"skin_tone": skin_tone_stops, "lighting": lighting_stops, "background": background_clutter}
