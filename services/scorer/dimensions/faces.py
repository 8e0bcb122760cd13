"""Tier 2: faces, found with dlib's HOG detector (`services.common.face_models`), OpenCV's
Haar cascade only when dlib cannot be loaded — and then every face result says so.

Detection runs per image on the CPU, on luma shrunk to at most 640 pixels a side, and
only when a profile names a face dimension. The largest face is the subject:

* faces — how many faces were found.
* face_size — the subject's box area as a share of the frame (0 without a face).
* face_position — how far the subject's centre is from the frame's centre: the larger of
  the horizontal and vertical offsets, 0 at the centre and 1 at an edge.
* eyes_open — eyes found (Haar eye cascade) in the top 60 % of the subject's box; closed
  eyes are rarely found by the cascade, so two means both open.
* identity — Euclidean distance between the face embeddings of the image's face and the
  reference photo's (dlib's ResNet, aligned on five landmarks); under 0.6 is one person.
  For a job of a subject, the subject's centroid stands for the reference (`likeness`).
  Unmeasurable (so failed, never passed) when either image does not show exactly one
  face; unavailable when the embedding model is not installed; waived without a reference.

Face boxes are tight (brows to chin), so a head fills more of the frame than the box.
"""

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from services.common import face_models
from services.common.face_models import Face
from services.scorer.dimensions.batch import ImageBatch

DETECTION_SIDE = 640
# Faces smaller than this share of the shorter side are not subjects.
SMALLEST_FACE_SHARE = 0.08
EYE_BAND = 0.6
FACE_DIMENSIONS = ("faces", "face_size", "face_position", "eyes_open", "identity", "skin_tone", "lighting",
                   "face_consistency")


@dataclass(frozen=True)
class FaceFinding:
    """Faces of one image in full-size pixels, largest first, and the subject's open eyes."""

    faces: tuple[Face, ...]
    eyes: float

    @property
    def subject(self) -> Face | None:
        return self.faces[0] if self.faces else None

    @property
    def single(self) -> Face | None:
        return self.faces[0] if len(self.faces) == 1 else None


def find_faces(luma: np.ndarray) -> FaceFinding:
    """Detect faces in one (H, W) uint8 luma image."""
    scale = min(1.0, DETECTION_SIDE / max(luma.shape))
    small = luma if scale == 1.0 else cv2.resize(luma, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    small = np.ascontiguousarray(small)
    found = face_models.detect_faces(small, max(24, int(min(small.shape) * SMALLEST_FACE_SHARE)))
    if not found:
        return FaceFinding(faces=(), eyes=0.0)
    eyes = face_models.count_eyes(small, found[0], band=EYE_BAND)
    return FaceFinding(faces=tuple(face.scaled(1 / scale) for face in found), eyes=eyes)


def batch_faces(batch: ImageBatch) -> list[FaceFinding]:
    if getattr(face_models, "dlib", None) is None:  # read now: tests take dlib away
        for name in FACE_DIMENSIONS:
            batch.context.note(name, "faces found by OpenCV's Haar cascade: dlib is not installed")
    luma = batch.luma_u8.cpu().numpy()
    return [find_faces(np.ascontiguousarray(image)) for image in luma]


def findings(batch: ImageBatch) -> list[FaceFinding]:
    return batch.memo("faces", batch_faces)


@dataclass(frozen=True)
class ReferencePortrait:
    """The reference photo, decoded, and its faces; read-only, as it serves many calls."""

    rgb: np.ndarray
    finding: FaceFinding


# A job's attempts, and a template's jobs, score against the same reference photo: decoding
# it, finding its face and computing its embedding took 140 ms of every headshot call.
REFERENCES_KEPT = 8


@functools.lru_cache(maxsize=REFERENCES_KEPT)
def reference_portrait(reference: bytes) -> ReferencePortrait:
    rgb = cv2.imdecode(np.frombuffer(reference, dtype=np.uint8), cv2.IMREAD_COLOR_RGB)
    if rgb is None:
        raise ValueError("the reference photo could not be decoded")
    rgb.flags.writeable = False
    return ReferencePortrait(rgb, find_faces(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)))


@functools.lru_cache(maxsize=REFERENCES_KEPT)
def reference_embedding(reference: bytes) -> np.ndarray | None:
    """The embedding of the reference photo's face; None unless it shows exactly one."""
    portrait = reference_portrait(reference)
    if portrait.finding.single is None:
        return None
    embedding = face_models.face_embedding(portrait.rgb, portrait.finding.single)
    embedding.flags.writeable = False
    return embedding


def reference_of(batch: ImageBatch) -> ReferencePortrait:
    context = batch.context  # one worker computes what the call's others then read
    return context.memo("reference_portrait", lambda: reference_portrait(context.reference))


def rgb_images(batch: ImageBatch) -> np.ndarray:
    """(B, H, W, 3) uint8 RGB of a batch decoded in colour."""
    if batch.planes.shape[-1] != 4:
        raise RuntimeError("colour was not decoded for this batch")
    return batch.planes[..., :3].cpu().numpy()


def per_image(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def face_count(batch: ImageBatch) -> torch.Tensor:
    return per_image([len(f.faces) for f in findings(batch)])


def face_area_share(batch: ImageBatch) -> torch.Tensor:
    frame = batch.width * batch.height
    return per_image([f.subject.area / frame if f.subject else 0.0 for f in findings(batch)])


def face_offset(batch: ImageBatch) -> torch.Tensor:
    def offset(face: Face | None) -> float:
        if face is None:
            return math.nan
        across = abs((face.x + face.width / 2) / batch.width - 0.5)
        down = abs((face.y + face.height / 2) / batch.height - 0.5)
        return 2 * max(across, down)

    return per_image([offset(f.subject) for f in findings(batch)])


def open_eyes(batch: ImageBatch) -> torch.Tensor:
    return per_image([f.eyes for f in findings(batch)])


def face_embeddings(batch: ImageBatch) -> list[np.ndarray | None]:
    """Each image's embedding of its one face; None where it does not show exactly one."""
    def embedded(batch: ImageBatch) -> list[np.ndarray | None]:
        single = [(rgb, finding.single) for rgb, finding in zip(rgb_images(batch), findings(batch))
                  if finding.single is not None]
        embeddings = iter(face_models.face_embeddings(single))
        return [None if finding.single is None else next(embeddings) for finding in findings(batch)]

    return batch.memo("face_embeddings", embedded)


def identity_distance(batch: ImageBatch) -> torch.Tensor:
    context = batch.context
    if context.subject is not None:  # a job of a subject: its centroid, over all its photos (`likeness`)
        wanted = context.subject.centroid
    else:
        wanted = context.memo("reference_embedding", lambda: reference_embedding(context.reference))
    if wanted is None and batch.clip and context.subject is None:
        # A clip from a still without one face (a landscape) has no person to stay: not measured.
        context.not_measured("identity", "the reference photo shows no single face: the clip is not held to one",
                             index=batch.indices[0])
        return per_image([math.nan] * batch.size)
    if wanted is None:
        return per_image([math.nan] * batch.size)
    return per_image([math.nan if embedding is None else _distance(embedding, wanted)
                      for embedding in face_embeddings(batch)])


def face_drift(batch: ImageBatch) -> torch.Tensor:
    """Each frame's face against the clip's first face (the first frame showing exactly one):
    a face that turns into another person's drifts past dlib's 0.6. Frames without one face
    are not measured; a clip with fewer than two such frames has nothing to compare and is not
    measured (never a pass on 0); a still reads 0."""
    embeddings = face_embeddings(batch) if batch.clip else []
    first = next((embedding for embedding in embeddings if embedding is not None), None)
    shown = sum(embedding is not None for embedding in embeddings)
    if batch.clip and shown < 2:
        why = "no single face in the sampled frames" if first is None else \
            f"one face in only 1 of {batch.size} sampled frames: nothing to compare it with"
        batch.context.not_measured("face_consistency", why, index=batch.indices[0])
        return per_image([math.nan] * batch.size)
    if first is None:
        return per_image([0.0] * batch.size)
    batch.context.note("face_consistency", f"one face in {shown} of {batch.size} sampled frames", index=batch.indices[0])
    return per_image([math.nan if embedding is None else _distance(embedding, first) for embedding in embeddings])


def _distance(embedding: np.ndarray, wanted: np.ndarray) -> float:
    return float(np.linalg.norm(embedding - wanted))


# Each measure under the name of the dimension it measures (`measures` registers them).
MEASURES = {
    "faces": face_count,
    "face_size": face_area_share,
    "face_position": face_offset,
    "eyes_open": open_eyes,
    "identity": identity_distance,
    "face_consistency": face_drift,
}
