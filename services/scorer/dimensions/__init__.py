"""Quality dimensions: batched measurements over images, each judged against bounds.

A `Dimension` maps a batch of images to one value per image — plugins get the RGB batch
(B, 3, H, W) float32 in [0, 1], built-ins the `ImageBatch` it comes from, which also holds
luma and shared intermediate results — and has default `Bounds` that profiles override.
`DIMENSIONS` is the registry. Built in:

* Tier 1 (`tier1`): sharpness, noise, blockiness, exposure, clipping, blank, size,
  aspect; and prompt_alignment (`clip`) with a CLIP model from a local folder.
* Tier 2 (`faces`): faces, face_size, face_position, eyes_open, skin_tone.
* Tier 3: `QualityRules` (`rules`) and plugins through entry points (`plugins`).

`Scorer` (`engine`) judges encoded images against a `services.scorer.profiles.Profile`;
`select_best` picks the best passing ones.
"""

from collections.abc import Sequence

import torch

from services.scorer.dimensions import faces, tier1
from services.scorer.dimensions.batch import ImageBatch, ScoringContext, UndecodableImage, pick_device
from services.scorer.dimensions.clip import ClipModelError, PromptAligner
from services.scorer.dimensions.core import (
    DIMENSIONS,
    Bounds,
    Dimension,
    DimensionResult,
    ImageVerdict,
    register_dimension,
    select_best,
)
from services.scorer.dimensions.engine import Scorer
from services.scorer.dimensions.plugins import ENTRY_POINT_GROUP, PluginError, discover_plugins, load_plugins
from services.scorer.dimensions.rules import ForbiddenCondition, QualityRules, Threshold

TIER_ONE = tuple(d.name for d in tier1.TIER_ONE) + ("prompt_alignment",)
TIER_TWO = tuple(d.name for d in faces.TIER_TWO)
DEFAULT_DIMENSIONS = ("sharpness", "blank")

__all__ = [
    "DEFAULT_DIMENSIONS",
    "DIMENSIONS",
    "ENTRY_POINT_GROUP",
    "TIER_ONE",
    "TIER_TWO",
    "Bounds",
    "ClipModelError",
    "Dimension",
    "DimensionResult",
    "ForbiddenCondition",
    "ImageBatch",
    "ImageVerdict",
    "PluginError",
    "PromptAligner",
    "QualityRules",
    "Scorer",
    "ScoringContext",
    "Threshold",
    "UndecodableImage",
    "discover_plugins",
    "load_plugins",
    "pick_device",
    "register_dimension",
    "score_images",
    "select_best",
]


def score_images(
    images: Sequence[bytes],
    dimension_names: Sequence[str] = DEFAULT_DIMENSIONS,
    device: torch.device | None = None,
) -> list[ImageVerdict]:
    """Judge images on the named dimensions with their default bounds.

    The service's first entry point, kept until it scores through `Scorer` and a profile.
    """
    # profiles imports this package, so it can only be imported once this one is loaded.
    from services.scorer.profiles import profile_of_dimensions

    if isinstance(dimension_names, str) or not dimension_names:
        raise ValueError("dimension_names must be a non-empty sequence of dimension names")
    profile = profile_of_dimensions(tuple(dimension_names))
    with Scorer(device, load_entry_points=False) as scorer:
        return scorer.score(images, profile)
