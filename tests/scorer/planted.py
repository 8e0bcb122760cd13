"""A subject made of real photographs, and candidates with planted defects.

The subject is the astronaut (Eileen Collins, scikit-image): six photos of her, edited as a
customer's selfies differ (mirrored, zoomed, turned, warmer, softer). Clean candidates are
other edits of her (turned, shifted, zoomed), each a different picture (fingerprints 16 or more
bits apart). Another person is Grace Hopper (matplotlib's sample). Defects: two faces (the
subject twice, the subject beside Grace Hopper), closed eyes (painted over with her skin and a
lid line), a drifted identity (her face bulged until its distance from the subject's centroid
passes 0.6), a near-duplicate (a candidate encoded again as JPEG). In glasses (drawn on her
photos and candidates) her eyes are hidden from the eye detector.

A product subject is scikit-image's coffee cup: four photos of it; the cup pasted on plain
backdrops is found, the cat and the rocket are not.
"""

import base64
import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image
from skimage import data as skimage_data

from services.common import face_models
from services.scorer.dimensions.faces import find_faces
from tests.scorer.conftest import png
from tests.scorer.test_faces import grace_hopper

ASTRONAUT_FACE_CENTRE = (223, 127)


def turned(pixels: np.ndarray, degrees: float, scale: float = 1.0) -> np.ndarray:
    matrix = cv2.getRotationMatrix2D(ASTRONAUT_FACE_CENTRE, degrees, scale)
    return cv2.warpAffine(pixels, matrix, (pixels.shape[1], pixels.shape[0]), borderMode=cv2.BORDER_REFLECT)


def shifted(pixels: np.ndarray, dx: int, dy: int) -> np.ndarray:
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(pixels, matrix, (pixels.shape[1], pixels.shape[0]), borderMode=cv2.BORDER_REFLECT)


def zoomed(pixels: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    top, bottom, left, right = box
    return cv2.resize(pixels[top:bottom, left:right], (512, 512), interpolation=cv2.INTER_CUBIC)


def astronaut() -> np.ndarray:
    return skimage_data.astronaut()


def subject_photos() -> list[bytes]:
    """Six photos of the astronaut, as PNG."""
    face = astronaut()
    softer = cv2.resize(cv2.resize(face, (256, 256), interpolation=cv2.INTER_AREA), (512, 512),
                        interpolation=cv2.INTER_CUBIC)
    warmer = np.clip(face * np.array([1.08, 1.0, 0.9]) + 5, 0, 255).astype(np.uint8)
    edits = [face, np.ascontiguousarray(face[:, ::-1]), zoomed(face, (20, 340, 60, 380)), turned(face, 6), warmer,
             softer]
    return [png(edit) for edit in edits]


def clean_candidates() -> list[np.ndarray]:
    """Eight different pictures of the astronaut, each passing subject-headshot."""
    face = astronaut()
    return [turned(face, -5, 1.15), shifted(face, 40, 30), zoomed(face, (0, 400, 20, 420)), turned(face, 12, 0.9),
            turned(face, -8), shifted(face, -30, 10), zoomed(face, (30, 480, 0, 450)), turned(face, 3, 1.3)]


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Two portraits in one frame, each 512 high."""
    def fitted(pixels: np.ndarray) -> np.ndarray:
        height, width = pixels.shape[:2]
        return np.asarray(Image.fromarray(pixels).resize((round(width * 512 / height), 512)))

    return np.concatenate([fitted(left), fitted(right)], axis=1)


def closed_eyes(pixels: np.ndarray) -> np.ndarray:
    """The portrait with its eyes painted over: skin from its cheeks, and a dark lid line."""
    luma = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    face = find_faces(luma).single
    assert face is not None, "a portrait of one face"
    band = luma[face.y: face.y + int(face.height * 0.6), face.x: face.x + face.width]
    eyes = face_models._cascade(face_models.EYE_CASCADE).detectMultiScale(
        np.ascontiguousarray(band), 1.1, 5, minSize=(8, 8), maxSize=(face.width // 2, face.width // 2))
    assert len(eyes) == 2, "two open eyes to close"
    cheek = pixels[face.y + int(face.height * 0.55): face.y + int(face.height * 0.7),
                   face.x + int(face.width * 0.35): face.x + int(face.width * 0.65)]
    skin = tuple(int(v) for v in cheek.reshape(-1, 3).mean(axis=0))
    painted = pixels.copy()
    for x, y, width, height in eyes:
        centre = (face.x + x + width // 2, face.y + y + height // 2)
        cv2.ellipse(painted, centre, (width // 2, height // 3), 0, 0, 360, skin, -1)
        cv2.ellipse(painted, centre, (width // 2 - 1, height // 6), 0, 0, 180, (60, 40, 35), 2)
    return painted


def in_glasses(pixels: np.ndarray) -> np.ndarray:
    """The portrait in dark round glasses, drawn around its eyes (dlib's five landmarks):
    her face still, but OpenCV's eye cascade no longer finds her eyes behind the frames."""
    face = find_faces(cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)).single
    assert face is not None, "a portrait of one face"
    marks = face_models.face_landmarks(pixels, face)
    left, right = sorted((marks[0:2].mean(axis=0), marks[2:4].mean(axis=0)), key=lambda point: point[0])
    span = float(np.linalg.norm(right - left))
    rim = (round(span * 0.42), round(span * 0.3))
    frame, dark = max(3, round(span / 8)), (20, 20, 20)
    worn = pixels.copy()
    for eye in (left, right):
        cv2.ellipse(worn, (round(eye[0]), round(eye[1])), rim, 0, 0, 360, dark, frame, cv2.LINE_AA)
    bridge = ((round(left[0]) + rim[0], round(left[1])), (round(right[0]) - rim[0], round(right[1])))
    temples = [((round(left[0]) - rim[0], round(left[1])), (face.x, round(left[1]))),
               ((round(right[0]) + rim[0], round(right[1])), (face.x + face.width, round(right[1])))]
    for start, end in [bridge, *temples]:
        cv2.line(worn, start, end, dark, frame, cv2.LINE_AA)
    return worn


def bulged(pixels: np.ndarray, strength: float) -> np.ndarray:
    """The face's middle pushed outwards (`strength` 0 to about 0.45 keeps it a face)."""
    height, width = pixels.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy, radius = 223, 135, 60
    dx, dy = x - cx, y - cy
    r = np.sqrt(dx**2 + dy**2) / radius
    pull = np.where(r < 1, (1 - r**2) ** 2 * strength, 0).astype(np.float32)
    return cv2.remap(pixels, cx + dx * (1 - pull), cy + dy * (1 - pull), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT)


def jpeg_again(data: bytes, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    with Image.open(io.BytesIO(data)) as image:
        image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def centroid_of(photos: list[bytes]) -> np.ndarray:
    """The mean face embedding of the photos, as ingest computes a person's centroid."""
    embeddings = []
    for photo in photos:
        rgb = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR_RGB)
        face = find_faces(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)).single
        assert face is not None
        embeddings.append(face_models.face_embedding(rgb, face))
    return np.mean(embeddings, axis=0)


def centroid_text(centroid: np.ndarray) -> str:
    """A centroid as it is sealed: base64 of float32 little-endian."""
    return base64.b64encode(centroid.astype("<f4").tobytes()).decode()


@dataclass(frozen=True)
class Defects:
    """The planted defects, each as PNG, by name."""

    another_person: bytes
    subject_twice: bytes
    subject_and_another: bytes
    closed_eyes: bytes
    drifted: bytes


def defects(drift: float) -> Defects:
    face, grace = astronaut(), grace_hopper()
    close = zoomed(face, (20, 340, 60, 380))  # two in a frame: faces large enough to be found at 640 pixels
    return Defects(png(grace), png(side_by_side(close, close[:, ::-1])), png(side_by_side(close, grace)),
                   png(closed_eyes(face)), png(bulged(face, drift)))


# The cup, its saucer and the coffee, without most of the table.
CUP = (20, 380, 90, 500)


def coffee() -> np.ndarray:
    return skimage_data.coffee()


def product_photos() -> list[bytes]:
    cup = coffee()
    brighter = np.clip(cup * 1.15, 0, 255).astype(np.uint8)
    return [png(cup), png(cup[40:360, 100:520]), png(brighter), png(cv2.resize(cup, (300, 200)))]


def on_backdrop(colour: tuple[int, int, int], scale: float) -> np.ndarray:
    """The cup pasted on a plain backdrop of 512 pixels square."""
    top, bottom, left, right = CUP
    cup = cv2.resize(coffee()[top:bottom, left:right], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((512, 512, 3), colour, np.uint8)
    y, x = (512 - cup.shape[0]) // 2, (512 - cup.shape[1]) // 2
    canvas[y: y + cup.shape[0], x: x + cup.shape[1]] = cup
    return canvas
