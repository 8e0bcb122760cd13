"""The defects the local portrait model plants, each a change of the faces it pastes, so the
scorer has something real to refuse (tests/router/test_portraits.py measures each):

* another_person — the donor's face (faces.donors: someone else) instead of the subject's;
* two_faces — the subject twice, side by side;
* closed_eyes — lids painted over both eyes, in the skin's colour, with a lash line;
* drift — the donor's eyes, nose and mouth under the subject's hair and skin: a face like the
  subject's that is another person's by its features (the identity distance lands over 0.6).
"""

from dataclasses import replace
from typing import Literal, get_args

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from services.router.providers.local.portraits.faces import SIDE, FaceCrop

PortraitDefect = Literal["another_person", "two_faces", "closed_eyes", "drift"]
PORTRAIT_DEFECTS: tuple[str, ...] = get_args(PortraitDefect)


def closed_eyes(crop: FaceCrop) -> FaceCrop:
    """Both eyes shut: an ellipse of the skin under each eye over it, and a dark arc for the lashes."""
    image = crop.image.copy()
    pixels = np.asarray(crop.image)
    draw = ImageDraw.Draw(image)
    span = crop.eye_distance
    for x, y in crop.eyes:
        skin = pixels[min(SIDE - 1, int(y + 0.38 * span)), min(SIDE - 1, max(0, int(x)))]
        width, height = 0.3 * span, 0.17 * span
        draw.ellipse([x - width, y - height, x + width, y + height], fill=tuple(int(c) for c in skin))
        draw.arc([x - 0.9 * width, y - 0.6 * height, x + 0.9 * width, y + 0.9 * height], 20, 160,
                 fill=(50, 35, 30), width=max(2, int(span * 0.05)))
    return replace(crop, image=image)


def drifted(crop: FaceCrop, donor: FaceCrop) -> FaceCrop:
    """The donor's inner face (eyes, nose, mouth), aligned on the subject's eyes and nose and
    brought to its skin's colours, in place of the subject's."""
    matrix = cv2.getAffineTransform(donor.anchors, crop.anchors)
    aligned = cv2.warpAffine(np.asarray(donor.image), matrix, (SIDE, SIDE), borderMode=cv2.BORDER_REFLECT)
    span = crop.eye_distance
    (lx, ly), (rx, ry) = crop.eyes
    cx, cy = (lx + rx) / 2, (ly + ry) / 2 + 0.45 * span
    mask = Image.new("L", (SIDE, SIDE), 0)
    ImageDraw.Draw(mask).ellipse([cx - 1.15 * span, cy - 1.1 * span, cx + 1.15 * span, cy + 1.4 * span], fill=255)
    inside = np.asarray(mask) > 128
    base = np.asarray(crop.image, dtype=np.float32)
    moved = aligned.astype(np.float32)
    for channel in range(3):
        theirs, ours = moved[..., channel][inside], base[..., channel][inside]
        moved[..., channel] = (moved[..., channel] - theirs.mean()) / (theirs.std() + 1e-3) * ours.std() + ours.mean()
    donor_face = Image.fromarray(np.clip(moved, 0, 255).astype(np.uint8))
    feathered = mask.filter(ImageFilter.GaussianBlur(span * 0.15))
    return replace(crop, image=Image.composite(donor_face, crop.image, feathered))
