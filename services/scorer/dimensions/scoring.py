"""What a `Scorer` is built with (`Equipment`), and what one call asks of it (`Scoring`)."""

from dataclasses import dataclass

import torch

from services.common.quality.profiles import Profile
from services.common.turns import Turn
from services.scorer.dimensions import moderation
from services.scorer.dimensions.batch import ClipRequest, VideoSampling
from services.scorer.dimensions.subject import Likeness
from services.scorer.dimensions.tiers import Enough


@dataclass(frozen=True, kw_only=True)
class Equipment:
    """What a `Scorer` measures with.

    Its `device`, CUDA when present unless named. `clip_model_dir`, a local folder written by
    `save_pretrained` holding a CLIP model and its tokenizer; without it prompt_alignment is
    unavailable. `threads` work in parallel, the CPU count by default. Installed plugins
    (entry points of `genline.scorer.dimensions`) are registered unless `load_entry_points`
    is False. `video_sampling`: the frames of a clip the frame dimensions measure.
    `moderated_classes`: the moderation detector's classes that `nsfw` scores.
    """

    device: torch.device | str | None = None
    clip_model_dir: str | None = None
    threads: int | None = None
    load_entry_points: bool = True
    video_sampling: VideoSampling = VideoSampling()
    moderated_classes: frozenset[str] = moderation.MODERATED_BY_DEFAULT


@dataclass(frozen=True, kw_only=True)
class Scoring:
    """What one call judges its images against, and how far it measures.

    The `profile`, and what the job gives its dimensions to compare with, each where it has
    one: the `prompt` in clear (prompt_alignment), the `reference` photo whose person the
    images must show (identity), the `requested_size` as (width, height), what a video
    job asks its clips to be (`requested_clip`), and the `subject` the job is of (identity
    and skin tone then compare with it rather than with a reference photo: `likeness`).

    `tiered` stops measuring an image at the first tier it fails; `enough` (tiered only, one
    job index per image) measures the tiers after the first best first until the job's best
    K are known, and the images left unmeasured then have no verdict (`tiers`).

    `turn` (the job's tenant, by plan, then its own priority) is the place the call's images
    wait in for the scorer's workers, in fair turns with other tenants' (`workers`).
    """

    profile: Profile
    prompt: str | None = None
    reference: bytes | None = None
    requested_size: tuple[int, int] | None = None
    requested_clip: ClipRequest | None = None
    subject: Likeness | None = None
    tiered: bool = False
    enough: Enough | None = None
    turn: Turn | None = None
