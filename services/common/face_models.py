"""The face models, loaded from installed packages; nothing is downloaded. One
implementation for every service that looks for faces: the scorer's face dimensions and
the router's crop stage find the same faces and fail the same way.

* Detector: dlib's HOG frontal-face detector (built into dlib). It finds portraits that
  Haar misses and gives fewer false faces; dlib's CNN detector (`mmod_human_face_detector`)
  finds more turned heads but takes 3-6 s per 512² image on a CPU core, 50× the HOG's.
  Without dlib, OpenCV's Haar cascade stands in and every face result says so.
* Landmarks: the 5-point model of `face-recognition-models` (CC0), enough to align a face
  for the embedding. Its 68-point model was trained on data licensed for non-commercial
  use only and is not loaded.
* Embedding: dlib's ResNet face descriptor (128 numbers; two photos of one person lie
  under 0.6 apart in Euclidean distance, dlib's own threshold, 99.38 % on LFW), its
  weights run by torch (`face_resnet`, six times sooner than dlib's own code, which
  stands in where torch is not installed).

dlib's objects keep scratch state while they run, so each worker thread has its own: the
HOG detector a copy of one built once a process (building it from dlib's serialized weights
decomposes each of its filters, 230 ms a thread on a core here; a copy takes 1 ms).
"""

import importlib.util
import math
import pickle
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import cv2
import numpy as np

from services.common import face_resnet

try:
    import dlib
except ImportError:  # faces are still found, with Haar, and the scorer has no identity
    dlib = None

LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
EMBEDDING_FILE = "dlib_face_recognition_resnet_model_v1.dat"
FACE_CASCADE = "haarcascade_frontalface_default.xml"
EYE_CASCADE = "haarcascade_eye.xml"
# Eyes are looked for in a face at most this wide (its eyes some 20 pixels, the eye cascade's
# own size): on 96 portrait candidates (faces 87 to 216 pixels wide) 5.5 ms a face instead of
# 10.5, every eyes_open verdict the same.
EYE_SEARCH_WIDTH = 96
# HOG detections score about 1 to 2 on real faces; false ones on clutter stay under 0.2.
MIN_HOG_SCORE = 0.3

_per_thread = threading.local()
_built: dict[str, bytes] = {}  # a model built once a process, pickled for each thread's copy
_built_lock = threading.Lock()
T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Face:
    x: int
    y: int
    width: int
    height: int

    @property
    def area(self) -> int:
        return self.width * self.height

    def scaled(self, factor: float) -> "Face":
        return Face(x=round(self.x * factor), y=round(self.y * factor), width=round(self.width * factor),
                    height=round(self.height * factor))


def models_dir() -> Path | None:
    """The models folder of `face-recognition-models`, found without importing it (its
    `__init__` needs pkg_resources, which recent setuptools no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    return folder if (folder / EMBEDDING_FILE).is_file() and (folder / LANDMARKS_FILE).is_file() else None


def detector_name() -> str:
    return "dlib HOG" if dlib is not None else "OpenCV Haar cascade"


def embedding_available() -> bool:
    return dlib is not None and models_dir() is not None


def _loaded(key: str, load: Callable[[], T]) -> T:
    models: dict[str, Any] = _per_thread.__dict__.setdefault("models", {})
    if key not in models:
        models[key] = load()
    return cast(T, models[key])


def _hog_copy() -> Any:  # a dlib.fhog_object_detector
    with _built_lock:
        if "hog" not in _built:
            _built["hog"] = pickle.dumps(dlib.get_frontal_face_detector())
    return pickle.loads(_built["hog"])  # bytes this process made just above


def _cascade(file_name: str) -> cv2.CascadeClassifier:
    def load() -> cv2.CascadeClassifier:
        haar_dir = getattr(getattr(cv2, "data", None), "haarcascades", None)
        classifier = cv2.CascadeClassifier(haar_dir + file_name) if haar_dir else None
        if classifier is None or classifier.empty():
            raise RuntimeError(f"OpenCV's Haar cascade {file_name} could not be loaded")
        return classifier

    return _loaded(file_name, load)


def detect_faces(luma: np.ndarray, smallest: int) -> list[Face]:
    """Faces in one (H, W) uint8 luma image, largest first."""
    if dlib is None:
        boxes = _cascade(FACE_CASCADE).detectMultiScale(luma, scaleFactor=1.1, minNeighbors=5,
                                                        minSize=(smallest, smallest))
        found = [Face(x=int(x), y=int(y), width=int(width), height=int(height)) for x, y, width, height in boxes]
    else:
        rects, scores, _ = _loaded("hog", _hog_copy).run(luma, 0, 0.0)
        found = [_clipped(rect, luma.shape) for rect, score in zip(rects, scores) if score >= MIN_HOG_SCORE]
        found = [face for face in found if face.width >= smallest]
    return sorted(found, key=lambda face: -face.area)


def _clipped(rect: Any, shape: tuple[int, ...]) -> Face:  # a dlib.rectangle
    left, top = max(rect.left(), 0), max(rect.top(), 0)
    right, bottom = min(rect.right(), shape[1] - 1), min(rect.bottom(), shape[0] - 1)
    return Face(x=left, y=top, width=right - left + 1, height=bottom - top + 1)


def count_eyes(luma: np.ndarray, face: Face, *, band: float) -> float:
    """Eyes the Haar eye cascade finds in the top `band` of the face; NaN without the cascade."""
    try:
        cascade = _cascade(EYE_CASCADE)
    except RuntimeError:
        return math.nan
    region = luma[face.y : face.y + int(face.height * band), face.x : face.x + face.width]
    width = face.width
    if width > EYE_SEARCH_WIDTH:  # the cascade's work grows with the face's area, not its eyes' count
        region = cv2.resize(region, None, fx=EYE_SEARCH_WIDTH / width, fy=EYE_SEARCH_WIDTH / width,
                            interpolation=cv2.INTER_AREA)
        width = region.shape[1]
    smallest = max(5, width // 10)
    eyes = cascade.detectMultiScale(np.ascontiguousarray(region), scaleFactor=1.1, minNeighbors=5,
                                    minSize=(smallest, smallest), maxSize=(width // 2, width // 2))
    return float(len(eyes))


def face_embedding(rgb: np.ndarray, face: Face) -> np.ndarray:
    """The 128-number descriptor of `face` in an (H, W, 3) uint8 RGB image, aligned on its
    five landmarks."""
    return face_embeddings([(rgb, face)])[0]


def face_embeddings(faces: Sequence[tuple[np.ndarray, Face]]) -> list[np.ndarray]:
    """The descriptors of faces, each in its (H, W, 3) uint8 RGB image, in one call:
    each face aligned on its five landmarks into dlib's 150-pixel chip, the chips through
    dlib's ResNet run by torch (`face_resnet`), or by dlib itself where torch is missing."""
    if not faces:
        return []
    folder = models_dir()
    if folder is None:
        raise RuntimeError("no face models: face embeddings need dlib's landmark and embedding files")
    predictor = _loaded("landmarks", lambda: dlib.shape_predictor(str(folder / LANDMARKS_FILE)))
    images = [np.ascontiguousarray(rgb) for rgb, _ in faces]
    shapes = [predictor(image, _rectangle(face)) for image, (_, face) in zip(images, faces, strict=True)]
    network = face_resnet.loaded(folder / EMBEDDING_FILE)
    if network is None:
        encoder = _loaded("embedding", lambda: dlib.face_recognition_model_v1(str(folder / EMBEDDING_FILE)))
        return [np.asarray(encoder.compute_face_descriptor(image, shape))
                for image, shape in zip(images, shapes, strict=True)]
    chips = [dlib.get_face_chip(image, shape, size=face_resnet.CHIP_SIDE, padding=0.25)
             for image, shape in zip(images, shapes, strict=True)]
    return list(network.descriptors(np.stack(chips)))


def _rectangle(face: Face) -> Any:  # a dlib.rectangle
    return dlib.rectangle(face.x, face.y, face.x + face.width - 1, face.y + face.height - 1)


def face_landmarks(rgb: np.ndarray, face: Face) -> np.ndarray:
    """The five landmarks of `face` in an (H, W, 3) uint8 RGB image, as (5, 2) pixel
    coordinates: the outer and inner corner of one eye, of the other, and the base of the
    nose (the order of the 5-point model)."""
    folder = models_dir()
    if folder is None:
        raise RuntimeError("no face models: face landmarks need dlib's landmark file")
    predictor = _loaded("landmarks", lambda: dlib.shape_predictor(str(folder / LANDMARKS_FILE)))
    shape = predictor(np.ascontiguousarray(rgb), _rectangle(face))
    return np.array([(point.x, point.y) for point in shape.parts()], dtype=np.float64)
