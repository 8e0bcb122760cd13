"""Moderation: `nsfw`, NudeNet's detector (`320n.onnx`, a YOLOv8n trained on 18 classes
of body parts) run by onnxruntime on every image, batched.

The model file ships inside the `nudenet` wheel and is read from there; nudenet's own
code is not imported (its wheel carries AGPL-3.0 licence files). Each image is padded to
a square at its top-left, shrunk to 320², and the highest score of a moderated class over
all anchors is the image's value. Only that image fails, and its reason names the class.

The detector runs where the other dimensions do: on a CUDA scorer on the GPU, when
onnxruntime has its CUDA execution provider (the onnxruntime-gpu build), once for all the
candidates of one size; on the CPU one image per worker thread, since one run for several
images measured no faster there (19.7 against 17.3 ms an image, eight at once).

Moderated by default: exposed genitalia, anus and female breasts. `BUTTOCKS_EXPOSED` is
left out because it fires on benign images: 0.83 on scikit-image's colour wheel, 0.32 on
its coffee cup. A deployment widens or narrows the set (`Equipment(moderated_classes=…)`).
"""

import importlib.util
import threading
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import torch

from services.scorer.dimensions.batch import ImageBatch
from services.scorer.dimensions.faces import per_image, rgb_images

try:
    import onnxruntime  # type: ignore[import-untyped]  # ships no type information
except ImportError:
    onnxruntime = None

MODEL_FILE = "320n.onnx"
INPUT_SIDE = 320
LABELS = (
    "FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED", "BELLY_COVERED",
    "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE", "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED", "ANUS_COVERED", "FEMALE_BREAST_COVERED", "BUTTOCKS_COVERED",
)
MODERATED_BY_DEFAULT = frozenset(
    {"FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "ANUS_EXPOSED", "FEMALE_BREAST_EXPOSED"}
)
# NudeNet's own floor for a detection; weaker scores are not named in reasons.
NAMED_FROM = 0.2


def model_path() -> Path | None:
    spec = importlib.util.find_spec("nudenet")
    if onnxruntime is None or spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    return path if path.is_file() else None


def unknown_classes(classes: frozenset[str]) -> list[str]:
    return sorted(classes - set(LABELS))


_load_lock = threading.Lock()


def execution_providers(on_gpu: bool, available: list[str]) -> list[str]:
    """CUDA first when the scorer is on the GPU and onnxruntime has it, else the CPU."""
    if on_gpu and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


@cache
def _session(on_gpu: bool = False) -> "onnxruntime.InferenceSession":
    # One session for every worker thread (run is thread-safe); images, not operators,
    # are spread over the cores, as for the other dimensions.
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    providers = execution_providers(on_gpu, onnxruntime.get_available_providers())
    with _load_lock:
        return onnxruntime.InferenceSession(str(model_path()), options, providers=providers)


def model_input(rgb: np.ndarray) -> np.ndarray:
    """(3, 320, 320) float32 in [0, 1]: padded square at the top-left, as NudeNet does."""
    height, width = rgb.shape[:2]
    side = max(height, width)
    square = np.zeros((side, side, 3), dtype=np.uint8)
    square[:height, :width] = rgb
    small = cv2.resize(square, (INPUT_SIDE, INPUT_SIDE), interpolation=cv2.INTER_AREA)
    return small.transpose(2, 0, 1).astype(np.float32) / 255


def class_scores(rgbs: np.ndarray, on_gpu: bool = False) -> np.ndarray:
    """(B, 18) highest score of each class over all anchors, one batched run."""
    session = _session(on_gpu)
    inputs = np.stack([model_input(rgb) for rgb in rgbs])
    output = session.run(None, {session.get_inputs()[0].name: inputs})[0]  # (B, 4 + 18, anchors)
    scores: np.ndarray = output[:, 4:, :].max(axis=2)
    return scores


def nsfw_score(batch: ImageBatch) -> torch.Tensor:
    moderated = sorted(batch.context.moderated_classes)
    columns = [LABELS.index(name) for name in moderated]
    scores = class_scores(rgb_images(batch), on_gpu=batch.planes.device.type == "cuda")[:, columns]
    for position, image_scores in enumerate(scores):
        strongest = int(image_scores.argmax())
        if image_scores[strongest] >= NAMED_FROM:
            batch.context.note("nsfw", f"detected {moderated[strongest]} ({image_scores[strongest]:.2f})",
                               index=batch.indices[position])
    return per_image([float(s.max()) for s in scores])


# Each measure under the name of the dimension it measures (`measures` registers them).
MEASURES = {"nsfw": nsfw_score}
