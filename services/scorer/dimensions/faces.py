"""Tier 2: faces, found with the Haar cascades that ship with OpenCV.

Detection runs per image on the CPU, on luma shrunk to at most 640 pixels a side, and
only when a profile names a face dimension. The largest face is the subject:

* faces — how many faces were found.
* face_size — the subject's box area as a share of the frame (0 without a face).
* face_position — how far the subject's centre is from the frame's centre: the larger of
  the horizontal and vertical offsets, 0 at the centre and 1 at an edge.
* eyes_open — eyes found (eye cascade) in the top 60 % of the subject's box; closed eyes
  are rarely found by the cascade, so two means both open.
* skin_tone — |log2(subject's mid-face luma / the reference photo's)|, in stops; passes
  unmeasured when no reference photo is given.

Haar boxes are tight (brows to mouth), so a head fills more of the frame than the box.
"""

import math
import threading
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from services.scorer.dimensions.batch import ImageBatch

FACE_CASCADE = "haarcascade_frontalface_default.xml"
EYE_CASCADE = "haarcascade_eye.xml"
DETECTION_SIDE = 640
# Faces smaller than this share of the shorter side are not searched: slow and not a subject.
SMALLEST_FACE_SHARE = 0.08
EYE_BAND = 0.6
# The part of the face box read for skin tone: cheeks and nose, not hair or background.
SKIN_BOX = (0.25, 0.3, 0.75, 0.8)


@dataclass(frozen=True)
class Face:
    x: int
    y: int
    width: int
    height: int

    @property
    def area(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class FaceFinding:
    """Faces of one image, largest first, with the subject's open eyes and skin luma."""

    faces: tuple[Face, ...]
    eyes: int
    skin_luma: float

    @property
    def subject(self) -> Face | None:
        return self.faces[0] if self.faces else None


# A cascade keeps scratch buffers while detecting, so each worker thread loads its own.
_per_thread = threading.local()


def _cascade(file_name: str) -> cv2.CascadeClassifier:
    cascades = _per_thread.__dict__.setdefault("cascades", {})
    if file_name not in cascades:
        classifier = cv2.CascadeClassifier(cv2.data.haarcascades + file_name)
        if classifier.empty():
            raise RuntimeError(f"OpenCV's Haar cascade {file_name} could not be loaded")
        cascades[file_name] = classifier
    return cascades[file_name]


def find_faces(luma: np.ndarray) -> FaceFinding:
    """Detect faces in one (H, W) uint8 luma image."""
    scale = min(1.0, DETECTION_SIDE / max(luma.shape))
    small = luma if scale == 1.0 else cv2.resize(luma, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    smallest = max(24, int(min(small.shape) * SMALLEST_FACE_SHARE))
    boxes = _cascade(FACE_CASCADE).detectMultiScale(
        small, scaleFactor=1.1, minNeighbors=5, minSize=(smallest, smallest)
    )
    found = sorted((tuple(int(v) for v in box) for box in boxes), key=lambda b: -b[2] * b[3])
    if not found:
        return FaceFinding(faces=(), eyes=0, skin_luma=math.nan)
    faces = tuple(Face(*(round(v / scale) for v in box)) for box in found)
    return FaceFinding(faces=faces, eyes=_count_eyes(small, found[0]), skin_luma=_skin_luma(luma, faces[0]))


def _count_eyes(luma: np.ndarray, box: tuple[int, int, int, int]) -> int:
    x, y, width, height = box
    band = luma[y : y + int(height * EYE_BAND), x : x + width]
    smallest = max(5, width // 10)
    eyes = _cascade(EYE_CASCADE).detectMultiScale(
        band, scaleFactor=1.1, minNeighbors=5, minSize=(smallest, smallest), maxSize=(width // 2, width // 2)
    )
    return len(eyes)


def _skin_luma(luma: np.ndarray, face: Face) -> float:
    left, top, right, bottom = SKIN_BOX
    patch = luma[
        face.y + int(face.height * top) : face.y + max(int(face.height * bottom), 1),
        face.x + int(face.width * left) : face.x + max(int(face.width * right), 1),
    ]
    return float(patch.mean()) if patch.size else math.nan


def batch_faces(batch: ImageBatch) -> list[FaceFinding]:
    luma = batch.luma_u8.cpu().numpy()
    return [find_faces(np.ascontiguousarray(image)) for image in luma]


def reference_face(reference: bytes) -> FaceFinding:
    luma = cv2.imdecode(np.frombuffer(reference, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if luma is None:
        raise ValueError("the reference photo could not be decoded")
    return find_faces(luma)


def _findings(batch: ImageBatch) -> list[FaceFinding]:
    return batch.memo("faces", batch_faces)


def _per_image(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def face_count(batch: ImageBatch) -> torch.Tensor:
    return _per_image([len(f.faces) for f in _findings(batch)])


def face_area_share(batch: ImageBatch) -> torch.Tensor:
    frame = batch.width * batch.height
    return _per_image([f.subject.area / frame if f.subject else 0.0 for f in _findings(batch)])


def face_offset(batch: ImageBatch) -> torch.Tensor:
    def offset(face: Face | None) -> float:
        if face is None:
            return math.nan
        across = abs((face.x + face.width / 2) / batch.width - 0.5)
        down = abs((face.y + face.height / 2) / batch.height - 0.5)
        return 2 * max(across, down)

    return _per_image([offset(f.subject) for f in _findings(batch)])


def open_eyes(batch: ImageBatch) -> torch.Tensor:
    return _per_image([f.eyes for f in _findings(batch)])


def skin_tone_stops(batch: ImageBatch) -> torch.Tensor:
    context = batch.context
    reference = context.memo("reference_face", lambda: reference_face(context.reference))
    return _per_image([_stops_apart(f.skin_luma, reference.skin_luma) for f in _findings(batch)])


def _stops_apart(luma: float, reference_luma: float) -> float:
    if math.isnan(luma) or math.isnan(reference_luma):
        return math.nan
    # One luma level as a floor keeps a black face from dividing by zero.
    return abs(math.log2(max(luma, 1.0) / max(reference_luma, 1.0)))
