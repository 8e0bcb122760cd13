"""The built-in dimensions' measures, one module per family, registered under their
dimensions' names when the scorer imports them (`measures`)."""

from collections.abc import Callable, Mapping

import torch

from services.scorer.dimensions import clip, faces, likeness, moderation, motion, portrait, tier1, video
from services.scorer.dimensions.measures import register_measures

FAMILIES: dict[str, Mapping[str, Callable[..., torch.Tensor]]] = {
    "tier1": tier1.MEASURES,
    "faces": faces.MEASURES | likeness.FACE_MEASURES,
    "likeness": likeness.MEASURES,
    "portrait": portrait.MEASURES,
    "moderation": moderation.MEASURES,
    "clip": clip.MEASURES,
    "motion": motion.MEASURES,
    "video": video.MEASURES,
}

for _family, _measures in FAMILIES.items():
    register_measures(_family, _measures)
