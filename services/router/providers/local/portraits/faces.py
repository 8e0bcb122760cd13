"""A subject's faces as the local portrait model holds them: one square crop per photo around
the face (hair and neck included), with where its eyes and nose are, and the local model's
"weights" made of them.

A crop is found with dlib's detector and landmarks (`services.common.face_models`), so it is
the face the scorer will look for: the portrait model pastes crops into scenes and never
draws a face of its own. The local trainer and the reference mode make the same crops: the
trainer once, kept as its weights; the reference mode from the photos at each call (kept in
this process while the photo set is in use).

The local weights are a ZIP: `manifest.json` (format `genline-local-faces`, version 1, the
trigger word, the donor face a planted defect borrows, each crop's file with its eyes and
nose in crop pixels, and a product's cut-outs) and one JPEG per crop (`crops/<n>.jpg`,
256×256) or one PNG per cut-out (`products/<n>.png`). Small (about 15 kB a photo) and in
clear: they are the subject's faces, deleted with the subject.

A donor is another real person's face shipped with the router (`donors/`, public-domain
portraits, see donors/README.md): a defect that needs another person borrows the donor
farthest from the subject, so "another person" is someone else whoever the subject is.
"""

import io
import json
import zipfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

FORMAT = "genline-local-faces"
VERSION = 1
SIDE = 256
# A crop spans this many face widths, its centre this far (in face widths) above the face's.
SPAN = 2.2
LIFT = 0.12
DETECTION_SIDE = 640
DONORS = Path(__file__).parent / "donors"


class NoFace(ValueError):
    """A photo in which no face is found: it cannot be painted from."""


Point = tuple[float, float]


@dataclass(frozen=True)
class FaceCrop:
    """One face, `SIDE` pixels square, with its eye centres and the base of its nose."""

    image: Image.Image = field(compare=False)
    eyes: tuple[Point, Point]
    nose: Point

    @property
    def eye_distance(self) -> float:
        (lx, ly), (rx, ry) = self.eyes
        return float(np.hypot(rx - lx, ry - ly))

    @property
    def anchors(self) -> np.ndarray:
        """Both eyes and the nose, as three points an affine map can be fitted on."""
        return np.array([*self.eyes, self.nose], dtype=np.float32)

    def jpeg(self) -> bytes:
        buffer = io.BytesIO()
        self.image.save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()


@dataclass(frozen=True, kw_only=True)
class LocalWeights:
    """What the local trainer makes of a subject: a person's face crops and the donor its defects
    borrow, or a product's cut-outs (RGBA, background transparent: products.py)."""

    trigger_word: str
    crops: tuple[FaceCrop, ...]
    donor: str
    products: tuple[Image.Image, ...] = field(default=(), compare=False)

    def pack(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            entries = []
            for n, crop in enumerate(self.crops):
                archive.writestr(f"crops/{n}.jpg", crop.jpeg())
                entries.append({"file": f"crops/{n}.jpg", "eyes": [list(p) for p in crop.eyes],
                                "nose": list(crop.nose)})
            for n, cutout in enumerate(self.products):
                archive.writestr(f"products/{n}.png", _png(cutout))
            manifest = {"format": FORMAT, "version": VERSION, "trigger_word": self.trigger_word,
                        "donor": self.donor, "crops": entries,
                        "products": [f"products/{n}.png" for n in range(len(self.products))]}
            archive.writestr("manifest.json", json.dumps(manifest))
        return buffer.getvalue()

    @classmethod
    def unpack(cls, data: bytes) -> "LocalWeights":
        """The weights of a ZIP `pack` made; ValueError for anything else."""
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                manifest = json.loads(archive.read("manifest.json"))
                if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
                    raise ValueError(f"not {FORMAT} version {VERSION} weights")
                crops = tuple(_crop(archive.read(entry["file"]), entry) for entry in manifest["crops"])
                products = tuple(Image.open(io.BytesIO(archive.read(name))).convert("RGBA")
                                 for name in manifest.get("products", []))
        except (zipfile.BadZipFile, KeyError, TypeError) as error:
            raise ValueError(f"not local weights: {error}") from None
        if not crops and not products:
            raise ValueError("local weights without a face or a product")
        return cls(trigger_word=str(manifest["trigger_word"]), crops=crops, donor=str(manifest["donor"]), products=products)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _crop(jpeg: bytes, entry: dict[str, Any]) -> FaceCrop:
    image = Image.open(io.BytesIO(jpeg)).convert("RGB")
    (lx, ly), (rx, ry) = entry["eyes"]
    return FaceCrop(image, ((float(lx), float(ly)), (float(rx), float(ry))), (float(entry["nose"][0]),
                                                                              float(entry["nose"][1])))


@dataclass(frozen=True)
class FaceReading:
    """A photo's face crop and its embedding (dlib's 128 numbers)."""

    crop: FaceCrop
    embedding: np.ndarray = field(compare=False)


def measured(photo: bytes) -> FaceReading:
    """The largest face of a photo, cropped, with its embedding; NoFace when it shows none."""
    from services.common import face_models  # dlib loads where faces are cropped, not on import

    rgb = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(photo))).convert("RGB"))
    scale = min(1.0, DETECTION_SIDE / max(rgb.shape[:2]))
    small = rgb if scale == 1.0 else np.asarray(Image.fromarray(rgb).resize(
        (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), Image.Resampling.BILINEAR))
    luma = np.ascontiguousarray(np.asarray(Image.fromarray(small).convert("L")))
    found = face_models.detect_faces(luma, max(24, min(luma.shape) // 12))
    if not found:
        raise NoFace("no face found in the photo")
    face = found[0].scaled(1 / scale)
    marks = face_models.face_landmarks(rgb, face)
    embedding = face_models.face_embedding(rgb, face)
    return FaceReading(cropped(rgb, FaceBox(x=face.x, y=face.y, width=face.width, marks=marks)), embedding)


@dataclass(frozen=True, kw_only=True)
class FaceBox:
    """A face in a photo: its box's left, top and width, and its five landmarks."""

    x: int
    y: int
    width: int
    marks: np.ndarray = field(compare=False)


def cropped(rgb: np.ndarray, face: FaceBox) -> FaceCrop:
    """The square around `face`, `SPAN` face widths a side, its eyes levelled, resized to
    `SIDE`; the image's edge is continued by reflection where the square runs past it."""
    import cv2  # with the face models: only where faces are cropped

    marks = face.marks
    first, second = marks[0:2].mean(axis=0), marks[2:4].mean(axis=0)
    left_eye, right_eye = (first, second) if first[0] <= second[0] else (second, first)
    angle = float(np.degrees(np.arctan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0])))
    centre = (face.x + face.width / 2, face.y + face.width / 2 - LIFT * face.width)
    matrix = cv2.getRotationMatrix2D(centre, angle, SIDE / (SPAN * face.width))
    matrix[:, 2] += np.array([SIDE / 2 - centre[0], SIDE / 2 - centre[1]])
    image = cv2.warpAffine(np.ascontiguousarray(rgb), matrix, (SIDE, SIDE), flags=cv2.INTER_AREA,
                           borderMode=cv2.BORDER_REFLECT)

    def moved(point: np.ndarray) -> Point:
        x, y = matrix @ np.array([point[0], point[1], 1.0])
        return float(x), float(y)

    return FaceCrop(Image.fromarray(image), (moved(left_eye), moved(right_eye)), moved(marks[4]))


@dataclass(frozen=True, kw_only=True)
class Donor:
    name: str
    crop: FaceCrop
    embedding: np.ndarray = field(compare=False)
    stranger: bool = True  # painted for an order of no subject (donors/README.md)


@cache
def donors() -> tuple[Donor, ...]:
    """The donor faces shipped with the router (donors/donors.json)."""
    listed = json.loads((DONORS / "donors.json").read_text())
    return tuple(Donor(name=name, crop=_crop((DONORS / entry["file"]).read_bytes(), entry),
                       embedding=np.array(entry["embedding"], dtype=np.float64), stranger=entry.get("stranger", True))
                 for name, entry in sorted(listed.items()))


def donor(name: str) -> Donor:
    found = {d.name: d for d in donors()}
    if name not in found:
        raise ValueError(f"no donor face {name!r}; known: {', '.join(sorted(found))}")
    return found[name]


@cache
def strangers() -> LocalWeights:
    """The faces painted for an order of no subject: the donors' not marked `"stranger": false`
    in donors.json (donors/README.md says why)."""
    chosen = [d for d in donors() if d.stranger]
    return LocalWeights(trigger_word="", crops=tuple(d.crop for d in chosen), donor=chosen[0].name)


def farthest_donor(embeddings: list[np.ndarray]) -> str:
    """The donor whose face is farthest from the subject's mean face."""
    centroid = np.mean(embeddings, axis=0)
    return max(donors(), key=lambda d: float(np.linalg.norm(d.embedding - centroid))).name


def weights_from_photos(photos: list[bytes], trigger_word: str) -> LocalWeights:
    """The local weights of a subject's photos: a crop of each photo that shows a face."""
    found = []
    for photo in photos:
        try:
            found.append(measured(photo))
        except NoFace:
            continue
    if not found:
        raise NoFace("no photo of the subject shows a face")
    return LocalWeights(trigger_word=trigger_word, crops=tuple(m.crop for m in found), donor=farthest_donor([m.embedding for m in found]))


class WeightsCache:
    """Weights made from photos, kept while a photo set is in use (the reference mode paints
    every call from the photos: their crops are made once per process)."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._kept: dict[str, LocalWeights] = {}

    def get(self, photo_set: str) -> LocalWeights | None:
        return self._kept.get(photo_set)

    def put(self, photo_set: str, weights: LocalWeights) -> None:
        self._kept.pop(photo_set, None)
        self._kept[photo_set] = weights
        while len(self._kept) > self.size:
            self._kept.pop(next(iter(self._kept)))
