"""What a subject's photo shows, measured for ingest's screening (`POST /internal/v1/measurements`
with `subject=person|product`); judging it is ingest's.

* Every photo: its size and its perceptual fingerprint (`services.common.quality.fingerprints`),
  which finds a photo that repeats another. Its checks' values (the route's) and a person's
  faces are measured on its working copy (`likeness.working_copy`: at most 1,024 pixels a
  side, the size it is used at), with its luma decoded as a candidate's, as the scorer will
  see the photo when it judges the subject's candidates (`likeness.subject_photo`).
* A person: the faces found, with the detector the `faces` dimension uses, and the embedding
  of the face where exactly one is found (dlib's 128 numbers, aligned on five landmarks: the
  one the `identity` dimension compares), so ingest can hold every photo to one person; and
  the open eyes found in that face (`eyes_open`'s count), so the subject can say whether its
  candidates will be held to open eyes (`profiles.eyes_waiver`).
* A product: the foreground found by GrabCut seeded with the central box (the idea of the
  local background removal stage), its share of the frame and its box, and how far its
  colour stands from the background's (CIELAB ΔE of their medians): a product that fills
  the frame, or that cannot be told from its background, is not separated.
"""

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image

from services.common import face_models
from services.common.quality.fingerprints import fingerprint_of
from services.scorer.dimensions.faces import find_faces
from services.scorer.dimensions.likeness import subject_photo

GRABCUT_SIDE = 256
BORDER = 0.08


class UnreadablePhoto(ValueError):
    """The bytes are not an image OpenCV decodes."""


@dataclass(frozen=True)
class DecodedPhoto:
    """A photo decoded once, in RGB."""

    rgb: np.ndarray

    @classmethod
    def decoded(cls, data: bytes) -> "DecodedPhoto":
        rgb = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR_RGB)
        if rgb is None:
            raise UnreadablePhoto("the photo could not be decoded")
        return cls(rgb)

    def common(self) -> dict[str, Any]:
        height, width = self.rgb.shape[:2]
        return {"width": width, "height": height, "fingerprint": fingerprint_of(Image.fromarray(self.rgb))}

    def product(self) -> dict[str, Any]:
        return {"foreground": foreground(self.rgb)}


def person(working: bytes, *, width: int) -> dict[str, Any]:
    """A person's photo as the scorer will judge it (`likeness.subject_photo`: from its working
    copy, its luma decoded as a candidate's), so that screening and judging find the same faces;
    the faces' boxes in the photo's own pixels (`width` its own)."""
    rgb, luma = subject_photo(0, working)
    finding = find_faces(luma)
    to_photo = width / rgb.shape[1]
    faces = [{"x": round(f.x * to_photo), "y": round(f.y * to_photo), "width": round(f.width * to_photo),
              "height": round(f.height * to_photo)} for f in finding.faces]
    embedding = None
    if finding.single is not None and face_models.embedding_available():
        embedding = [float(v) for v in face_models.face_embedding(rgb, finding.single)]
    eyes = None if finding.single is None or math.isnan(finding.eyes) else finding.eyes
    return {"faces": faces, "embedding": embedding, "embedding_available": face_models.embedding_available(),
            "eyes": eyes}


def foreground(rgb: np.ndarray) -> dict[str, Any]:
    """The subject GrabCut separates from the border: its share of the frame, its box (in the
    photo's pixels) and the CIELAB distance between its median colour and the background's."""
    height, width = rgb.shape[:2]
    scale = min(1.0, GRABCUT_SIDE / max(width, height))
    small = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    small_h, small_w = small.shape[:2]
    rect = (int(small_w * BORDER), int(small_h * BORDER), int(small_w * (1 - 2 * BORDER)),
            int(small_h * (1 - 2 * BORDER)))
    mask = np.zeros((small_h, small_w), np.uint8)
    models = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), mask, rect, models[0], models[1], 3,
                    cv2.GC_INIT_WITH_RECT)
    except cv2.error:  # a flat photo gives GrabCut nothing to model
        return {"share": 0.0, "contrast": 0.0, "box": None}
    subject = cv2.medianBlur(np.where(np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)), 255, 0).astype(np.uint8), 5) > 0
    share = float(subject.mean())
    if not subject.any() or subject.all():
        return {"share": share, "contrast": 0.0, "box": None}
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float64)
    lab[..., 0] *= 100 / 255
    lab[..., 1:] -= 128
    contrast = float(np.linalg.norm(np.median(lab[subject], axis=0) - np.median(lab[~subject], axis=0)))
    rows, columns = np.nonzero(subject)
    box = [round(v / scale) for v in (columns.min(), rows.min(), columns.max() - columns.min() + 1,
                                      rows.max() - rows.min() + 1)]
    return {"share": share, "contrast": contrast if math.isfinite(contrast) else 0.0, "box": box}


def measured_subject(photo: bytes, kind: str, *, working: bytes | None = None) -> dict[str, Any]:
    """What ingest's screening reads of one photo of a subject of `kind` (person, product);
    `working`, its working copy where the caller made it already."""
    decoded = DecodedPhoto.decoded(photo)
    if kind != "person":
        return decoded.common() | decoded.product()
    return decoded.common() | person(working if working is not None else photo, width=decoded.rgb.shape[1])
