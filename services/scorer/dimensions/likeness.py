"""Against a subject: what a job's candidates are compared with when the job is of a person or
a product of the tenant's own photos (`JobSpec.subject`), made once per job from its opened
photos and centroid (`services.scorer.subjects` opens them), and the dimensions only a
subject gives.

* identity (`faces`) — the candidate's one face against the subject's centroid: the mean
  face embedding of all its photos, not one of them; under 0.6 is the subject's person.
* skin_tone (`portrait`) — against the subject's skin: the median lightness and chroma of
  the skin of its photos that show one face, each white-balanced as a candidate is.
* eyes_open, faces — as for any portrait: two open eyes, exactly one face; but a person in
  whose own photos the eye detector finds two open eyes in fewer than half (glasses hide
  eyes from OpenCV's eye cascade) is not held to them: every candidate of theirs would fail,
  so eyes_open passes unmeasured for them, saying why (`Likeness.eyes_waiver`), and closed
  eyes are then not caught for that subject.
* second_person — what "no second person's identity bleeding in" measures here: with two
  or more faces in the frame, how many of them are another person's (their embedding 0.6 or
  more from the subject's centroid). A frame of one face reads 0, since identity judges that
  face: a stranger alone fails identity. The subject beside a stranger reads 1, the subject
  twice 0 (and `faces` rejects both).
* product_match — the subject found, for a product: ORB features of the candidate matched
  with those of each of the subject's photos (Lowe's ratio test), counted where one
  perspective agrees (a RANSAC homography), the best photo's count, up to 100. A faithful
  rendering of the product (its label, its edges) matches dozens of features; an unrelated
  picture 4 to 8 by chance. A mirrored or heavily restyled product does not match: the check
  is for product photography that shows the product as it is.
"""

import math
from dataclasses import replace

import cv2
import numpy as np
import torch

from services.common import face_models
from services.common.quality.dimensions import Dimension
from services.scorer.dimensions.batch import ImageBatch
from services.scorer.dimensions.faces import find_faces, findings, per_image, rgb_images
from services.scorer.dimensions.portrait import skin_colour
from services.scorer.dimensions.subject import Likeness, OpenedSubject, ProductView

# dlib's threshold: two faces under this distance are one person's.
ONE_PERSON = 0.6
PRODUCT_SIDE = 512
ORB_FEATURES = 500
LOWE_RATIO = 0.75
REPROJECTION_PX = 6.0
MOST_MATCHES = 100
EMBEDDING_SIZE = 128
# A subject's photos are screened and judged at the size they are used at: trainers work on
# copies of 512 to 1024 pixels (fal's multiresolution training), and candidates are made about
# that size. A phone stores 12 megapixels where its lens and noise reduction resolve far fewer,
# so at its own size a sharp photo reads as blurred to a per-pixel measure (the variance of the
# Laplacian falls with every enlargement: a 384-pixel portrait's 915 is 50 at 1024 pixels).
WORKING_SIDE = 1024


# How identity and skin tone fail against a subject rather than against a reference photo.
SUBJECT_HINTS = {
    "identity": ("the face is not the subject's person",
                 "the image does not show exactly one face, or the subject has none (a product)"),
    "skin_tone": ("the skin's lightness or colour differs from the subject's photos",
                  "no face was found in the image, or in the subject's photos"),
}


def judged_against_subject(dimension: Dimension) -> Dimension:
    """The dimension as its reasons read against a subject."""
    hints = SUBJECT_HINTS.get(dimension.name)
    if hints is None:
        return dimension
    return replace(dimension, failure_hint=hints[0], unmeasurable_hint=hints[1])


def likeness_of(subject: OpenedSubject) -> Likeness:
    """Decode the subject's photos once, as their screening saw them (`subject_photo`): a
    person's skin (and its centroid, when the job did not carry one), a product's features.
    ValueError names a photo that does not decode."""
    decoded = [subject_photo(index, data) for index, data in enumerate(subject.photos)]
    if subject.kind == "product":
        views = tuple(product_view(luma) for _, luma in decoded)
        return Likeness(subject_id=subject.subject_id, kind="product", photos=len(decoded), views=views)
    findings = [(rgb, find_faces(luma)) for rgb, luma in decoded]
    faced = [(rgb, finding.single) for rgb, finding in findings if finding.single is not None]
    eyes = [finding.eyes for _, finding in findings if finding.single is not None]
    eyes_seen = None if any(math.isnan(found) for found in eyes) else sum(found >= 2 for found in eyes)
    colours = [colour for rgb, face in faced if (colour := skin_colour(rgb, face)) is not None]
    skin = (float(np.median([c[0] for c in colours])), float(np.median([c[1] for c in colours]))) if colours else None
    centroid = subject.centroid
    if centroid is None and faced and face_models.embedding_available():
        centroid = np.mean(face_models.face_embeddings(faced), axis=0)
    if centroid is not None:
        centroid = np.asarray(centroid, dtype=np.float64)
        centroid.flags.writeable = False
    return Likeness(subject_id=subject.subject_id, kind="person", photos=len(decoded), centroid=centroid, skin=skin,
                    faced=len(faced), eyes_seen=eyes_seen)


def centroid_from(clear: bytes) -> np.ndarray:
    """A centroid as sealed: float32 little-endian, 128 of them (its base64 decoded)."""
    values = np.frombuffer(clear, dtype="<f4")
    if values.size != EMBEDDING_SIZE:
        raise ValueError(f"a centroid holds {EMBEDDING_SIZE} numbers, this one {values.size}")
    return values.astype(np.float64)


def working_copy(photo: bytes) -> bytes:
    """A subject's photo at the size it is used at: itself when it is at most WORKING_SIDE
    pixels on its longer side, else scaled down to that (averaging the pixels each one
    covers), as a PNG. Bytes that do not decode are given back, for their reader to refuse."""
    rgb = cv2.imdecode(np.frombuffer(photo, dtype=np.uint8), cv2.IMREAD_COLOR)
    if rgb is None or max(rgb.shape[:2]) <= WORKING_SIDE:
        return photo
    scale = WORKING_SIDE / max(rgb.shape[:2])
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    return bytes(cv2.imencode(".png", cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))[1])


def subject_photo(index: int, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """A subject's photo as it is screened and judged: its working copy in RGB, and its luma
    decoded as a candidate's is (the decoder's own grey, not one converted from RGB: the two
    differ by a level here and there, enough to tip a borderline second face in or out)."""
    working = np.frombuffer(working_copy(data), dtype=np.uint8)
    rgb = cv2.imdecode(working, cv2.IMREAD_COLOR_RGB)
    luma = cv2.imdecode(working, cv2.IMREAD_GRAYSCALE)
    if rgb is None or luma is None:
        raise ValueError(f"photo {index} of the subject could not be decoded")
    return rgb, luma


def product_view(luma: np.ndarray) -> ProductView:
    """ORB's features of one (H, W) uint8 luma image, shrunk to at most PRODUCT_SIDE a side."""
    scale = min(1.0, PRODUCT_SIDE / max(luma.shape))
    small = luma if scale == 1.0 else cv2.resize(luma, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    keypoints, descriptors = cv2.ORB.create(nfeatures=ORB_FEATURES).detectAndCompute(np.ascontiguousarray(small), None)
    points = np.array([k.pt for k in keypoints], dtype=np.float32).reshape(-1, 2)
    return ProductView(points, descriptors if descriptors is not None else np.zeros((0, 32), np.uint8))


def matched_features(view: ProductView, photo: ProductView) -> int:
    """Features of `view` matched in `photo` where one perspective (a homography) agrees."""
    if len(view.descriptors) < 2 or len(photo.descriptors) < 2:
        return 0
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(view.descriptors, photo.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < LOWE_RATIO * p[1].distance]
    if len(good) < 4:  # a homography needs four
        return len(good)
    source = view.points[[m.queryIdx for m in good]]
    target = photo.points[[m.trainIdx for m in good]]
    _, inliers = cv2.findHomography(source, target, cv2.RANSAC, REPROJECTION_PX)
    return int(inliers.sum()) if inliers is not None else 0


def product_found(luma: np.ndarray, likeness: Likeness) -> float:
    """The most features of any of the subject's photos found in the image, up to MOST_MATCHES."""
    view = product_view(luma)
    best = 0
    for photo in likeness.views:
        best = max(best, matched_features(view, photo))
        if best >= MOST_MATCHES:
            break
    return float(min(best, MOST_MATCHES))


def product_match(batch: ImageBatch) -> torch.Tensor:
    likeness = batch.context.subject
    if likeness is None or likeness.kind != "product":
        return per_image([math.nan] * batch.size)
    return per_image([product_found(np.ascontiguousarray(luma), likeness) for luma in batch.luma_u8.cpu().numpy()])


def second_person(batch: ImageBatch) -> torch.Tensor:
    likeness = batch.context.subject
    centroid = likeness.centroid if likeness is not None else None
    values = []
    for rgb, finding in zip(rgb_images(batch), findings(batch)):
        if len(finding.faces) < 2:
            values.append(0.0)
        elif centroid is None:
            values.append(math.nan)
        else:
            embeddings = face_models.face_embeddings([(rgb, face) for face in finding.faces])
            distances = [np.linalg.norm(embedding - centroid) for embedding in embeddings]
            values.append(float(sum(distance >= ONE_PERSON for distance in distances)))
    return per_image(values)


# Measured with the face checks (one family: the faces they share), and on their own.
FACE_MEASURES = {"second_person": second_person}
MEASURES = {"product_match": product_match}
