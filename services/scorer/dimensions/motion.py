"""Clip dimensions: measured on a clip's frames, in order (a batch marked `clip`).

* frames: how many frames the image has (1 for a still).
* frame_sharpness: each frame's Laplacian variance, as `sharpness` measures it; a clip
  keeps its blurriest frame, so one smeared frame fails it where the mean would not.
* flicker: each frame's change of mean brightness from the frame before, in [0, 1]; a
  clip keeps its largest jump. A pan or a zoom over one still barely moves the mean,
  while frames that pulse light and dark do.

On a batch of stills (images side by side, not frames) flicker is 0: there is no sequence.
"""

import torch

from services.scorer.dimensions.batch import ImageBatch
from services.scorer.dimensions.tier1 import histogram_moments


def frame_count(batch: ImageBatch) -> torch.Tensor:
    return torch.full((batch.size,), float(batch.size if batch.clip else 1), dtype=torch.float64,
                      device=batch.planes.device)


def brightness_jump(batch: ImageBatch) -> torch.Tensor:
    mean = batch.memo("histogram_moments", histogram_moments)["mean"] / 255
    if not batch.clip or batch.size < 2:
        return torch.zeros_like(mean)
    return torch.cat([mean.new_zeros(1), mean.diff().abs()])


# Each measure under the name of the dimension it measures (`measures` registers them).
MEASURES = {"frames": frame_count, "flicker": brightness_jump}
