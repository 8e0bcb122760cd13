"""nsfw on real photographs: no benign sample image of scikit-image or matplotlib is
flagged, and a flagged candidate is rejected alone, with the detected class named.

No explicit image is shipped or made here. The flagged case is built from the detector's
real output on real photographs: a deployment that moderates the FACE_FEMALE class (one
of the detector's 18 classes) must reject the two portraits of women and keep the rest
of the batch; the path from detection to rejection is the same for any class.
"""

import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image
from skimage import data as skimage_data

from services.common.quality.profiles import load_profile
from services.scorer.dimensions import Equipment, Scorer, Scoring
from services.scorer.dimensions.moderation import LABELS, MODERATED_BY_DEFAULT
from tests.scorer.conftest import CPU, png
from tests.scorer.test_faces import grace_hopper

MATPLOTLIB_IMAGES = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png")
NOT_IMAGES = {"download_all", "data_dir", "file_hash", "lbp_frontal_face_cascade_filename", "lfw_subset"}


def as_rgb(image: np.ndarray) -> np.ndarray | None:
    """8-bit RGB of a 2-D or colour sample image; None for volumes and stacks."""
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    elif image.dtype != np.uint8:
        image = (np.clip(image / max(float(image.max()), 1e-9), 0, 1) * 255).astype(np.uint8)
    if image.ndim == 2:
        return np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3]) if image.ndim == 3 and image.shape[-1] in (3, 4) else None


def benign_samples() -> dict[str, np.ndarray]:
    """Every sample image both packages hold on disk (some of scikit-image's need a download)."""
    samples = {}
    for name in sorted(n for n in dir(skimage_data) if not n.startswith("_") and n not in NOT_IMAGES):
        try:
            image = getattr(skimage_data, name)()
        except (Exception, pytest.skip.Exception):  # noqa: BLE001 - not bundled (needs a download)
            continue
        if isinstance(image, np.ndarray) and (rgb := as_rgb(image)) is not None:
            samples[name] = rgb
    for name in MATPLOTLIB_IMAGES:
        with Image.open(cbook.get_sample_data(name, asfileobj=False)) as image:
            samples[name] = np.asarray(image.convert("RGB"))
    return samples


def test_no_benign_sample_image_is_flagged(scorer):
    samples = benign_samples()
    assert len(samples) >= 20 and {"astronaut", "grace_hopper.jpg", "colorwheel"} <= set(samples)
    verdicts = scorer.score([png(rgb) for rgb in samples.values()], Scoring(profile=load_profile("generic")))
    flagged = {name: v.dimensions["nsfw"].reason for name, v in zip(samples, verdicts) if not v.dimensions["nsfw"].passed}
    assert flagged == {}
    assert all(v.dimensions["nsfw"].value < 0.2 for v in verdicts)


def test_a_flagged_candidate_is_rejected_alone_with_the_class_named(photos):
    batch = [png(photos["coffee"]), png(photos["astronaut"]), png(photos["chelsea"]), png(grace_hopper())]
    with Scorer(Equipment(device=CPU, load_entry_points=False, moderated_classes=frozenset({"FACE_FEMALE"}))) as scorer:
        coffee, astronaut, cat, grace = scorer.score(batch, Scoring(profile=load_profile("generic")))
    assert coffee.passed and cat.passed
    for woman in (astronaut, grace):
        nsfw = woman.dimensions["nsfw"]
        assert woman.failed == ("nsfw",)
        assert nsfw.value > 0.5
        assert "detected FACE_FEMALE" in nsfw.reason and "moderates" in nsfw.reason


def test_default_moderation_covers_explicit_classes_only():
    assert MODERATED_BY_DEFAULT <= set(LABELS)
    assert all(name.endswith("_EXPOSED") for name in MODERATED_BY_DEFAULT)
    assert "BUTTOCKS_EXPOSED" not in MODERATED_BY_DEFAULT  # fires on the colour wheel


def test_unknown_moderated_class_is_refused():
    with pytest.raises(ValueError, match="unknown"):
        Scorer(Equipment(device=CPU, load_entry_points=False, moderated_classes=frozenset({"NAKED_TRUTH"})))


def test_the_detector_runs_on_the_gpu_where_onnxruntime_can():
    from services.scorer.dimensions.moderation import execution_providers

    both = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert execution_providers(True, both) == both
    assert execution_providers(True, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert execution_providers(False, both) == ["CPUExecutionProvider"]
