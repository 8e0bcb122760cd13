"""Quality dimensions: batched measurements over images, each judged against bounds.

A `Dimension` maps a batch of images to one value per image — plugins get the RGB batch
(B, 3, H, W) float32 in [0, 1], built-ins the `ImageBatch` it comes from, which also holds
luma and shared intermediate results — and has default `Bounds` that profiles override.
`DIMENSIONS` is the registry. Declaring dimensions, profiles and rules is the shared
vocabulary in `services.common.quality`; this package measures and judges. Built in
(declared in `services.common.quality.builtin`):

* Tier 1 (`tier1`): sharpness, noise, blockiness, banding, exposure, clipping, blank,
  size, aspect; and prompt_alignment (`clip`) with a CLIP model from a local folder.
  Clips (`motion`): frames, frame_sharpness (the blurriest frame), flicker (the largest
  frame-to-frame brightness jump). Every dimension measures a clip on each of its frames.
  Video clips (`video`, with PyAV): the container against the job's video block
  (container, duration, frame_rate, clip_aspect, resolution), then every frame over time
  (frozen, black_frames, scene_cuts, temporal_flicker, movement by optical flow), then the
  other dimensions on sampled frames; face_consistency (`faces`) compares their faces.
* Tier 2: faces, face_size, face_position, eyes_open, identity (`faces`, with dlib's
  models from `services.common.face_models`); skin_tone, lighting, background
  (`portrait`); and moderation (`moderation`): nsfw, NudeNet's detector on onnxruntime,
  in every profile. Against a subject (`likeness`): identity and skin_tone compare with the
  subject's centroid and photos, second_person (with the face checks) and product_match.
* Tier 3: plugins through entry points (`services.common.quality.plugins`), and anything
  declared expensive. `QualityRules` (`services.common.quality.rules`) bound and forbid
  dimensions of every tier.

`tiers` walks a profile's dimensions tier by tier, so that an image rejected by a cheap
check is not measured by the expensive ones.

`Scorer` (`engine`) judges encoded images against a profile
(`services.common.quality.profiles.Profile`), built with its `Equipment` and called with a
`Scoring` (`scoring`); `select_best` picks the best passing ones. Declaring, judging and
checking rules need no torch: the names that measure (`Scorer`, `ImageBatch`,
`PromptAligner`, …) are imported on first use.

Its modules besides those named above:
    built_in.py       the built-in dimensions' measures, registered under their dimensions' names
                      when the scorer imports them
    core.py           what judging a dimension yields
    subject.py        what a job's subject gives the scorer to compare its candidates with
    workers.py        the scorer's worker threads, which take their callers' images in turns
"""

import importlib
from typing import TYPE_CHECKING, Any

from services.common.quality import builtin
from services.common.quality.dimensions import DIMENSIONS, Bounds, Dimension, register_dimension
from services.common.quality.plugins import ENTRY_POINT_GROUP, PluginError, discover_plugins, load_plugins
from services.common.quality.rules import ForbiddenCondition, QualityRules, Threshold
from services.scorer.dimensions.core import DimensionResult, ImageVerdict, select_best

if TYPE_CHECKING:  # what the checker reads of the names imported on first use (as services.common.bus does)
    from services.scorer.dimensions.batch import ImageBatch as ImageBatch
    from services.scorer.dimensions.batch import ScoringContext as ScoringContext
    from services.scorer.dimensions.batch import UndecodableImage as UndecodableImage
    from services.scorer.dimensions.batch import pick_device as pick_device
    from services.scorer.dimensions.clip import ClipModelError as ClipModelError
    from services.scorer.dimensions.clip import PromptAligner as PromptAligner
    from services.scorer.dimensions.engine import Scorer as Scorer
    from services.scorer.dimensions.scoring import Equipment as Equipment
    from services.scorer.dimensions.scoring import Scoring as Scoring

TIER_ONE = tuple(d.name for d in builtin.BUILT_IN if d.tier == 1)
TIER_TWO = tuple(d.name for d in builtin.BUILT_IN if d.tier == 2)

# Names that need torch (and OpenCV or transformers), by the module that defines them.
_MEASURING = {
    "ClipModelError": "clip",
    "PromptAligner": "clip",
    "ImageBatch": "batch",
    "ScoringContext": "batch",
    "UndecodableImage": "batch",
    "pick_device": "batch",
    "Scorer": "engine",
    "Equipment": "scoring",
    "Scoring": "scoring",
}


def __getattr__(name: str) -> Any:
    if name in _MEASURING:
        return getattr(importlib.import_module(f"{__name__}.{_MEASURING[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DIMENSIONS",
    "ENTRY_POINT_GROUP",
    "TIER_ONE",
    "TIER_TWO",
    "Bounds",
    "ClipModelError",
    "Dimension",
    "DimensionResult",
    "Equipment",
    "ForbiddenCondition",
    "ImageBatch",
    "ImageVerdict",
    "PluginError",
    "PromptAligner",
    "QualityRules",
    "Scorer",
    "Scoring",
    "ScoringContext",
    "Threshold",
    "UndecodableImage",
    "discover_plugins",
    "load_plugins",
    "pick_device",
    "register_dimension",
    "select_best",
]
