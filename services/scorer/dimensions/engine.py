"""The Scorer: judge a batch of encoded images against a profile.

For one call the Scorer plans each dimension of the profile — measured, unavailable
(a capability or input it requires is missing) or waived (an optional input is missing,
e.g. no requested size) — decodes each image (colour only when a measured dimension reads
it, and in a tiered walk on the CPU only once the image reaches a step that reads it),
measures the planned dimensions, and judges each image. A clip is measured frame by frame,
and each dimension combines its frames' values (`over_frames`). A video clip (and every
candidate of a profile that reads clips) is read by `video`: its container first, its frames
decoded only when a step needs them, the frame dimensions on its sampled frames. An image passes when every dimension passes, except that a dimension which is unavailable and not
required is reported but excused; forbidden conditions must hold too.

By default every dimension of every image is measured. A tiered call (`tiers`) measures
tier by tier and stops measuring an image at the first tier it fails; with `Enough` it
measures the tiers after the first best first, only until the job's best K are known. An
image's decoded planes and what its dimensions share (luma statistics, faces, the face
embedding) serve every tier it reaches. Each image's fingerprint is taken from its luma as
it is decoded (a video clip has none). Against a subject (`likeness`), identity and skin tone
read their reasons for the subject and say what they compared with.
"""

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from PIL import Image

from services.common import face_models
from services.common.quality.dimensions import Dimension, registered
from services.common.quality.fingerprints import fingerprint_of
from services.common.quality.plugins import discover_plugins
from services.common.turns import Turn
from services.common.video import looks_like_video
from services.scorer.dimensions import moderation
from services.scorer.dimensions.batch import (
    CUDA_BATCH_IMAGES,
    CUDA_BATCH_PIXELS,
    ImageBatch,
    Readahead,
    ScoringContext,
    group_by_size,
    in_color,
    is_clip,
    joined,
    pick_device,
    stack_batch,
)
from services.scorer.dimensions.clip import PromptAligner
from services.scorer.dimensions.core import ImageVerdict, Measured
from services.scorer.dimensions.likeness import judged_against_subject
from services.scorer.dimensions.measures import check_every_dimension_measured, image_values, measure_batch, over_frames
from services.scorer.dimensions.scoring import Equipment, Scoring
from services.scorer.dimensions.tiers import Enough, ImageProgress, PlannedDimension, Step, TierWalk
from services.scorer.dimensions.video import CLIP_READS, ClipReading, tell_worst_frames
from services.scorer.dimensions.workers import TakingTurns

Walked = ImageBatch | ClipReading  # what an image kept between the steps of its walk is

if TYPE_CHECKING:
    from services.common.quality.profiles import Profile


@dataclass(frozen=True, kw_only=True)
class Leg:
    """The first `steps` steps of a call's walk, which every image is taken through as far as
    it passes them, in the call's `context`; colour is decoded when a step reads it (`color`)."""

    walk: TierWalk
    context: ScoringContext
    color: bool
    steps: int
    turn: Turn | None = None

    @property
    def more_after(self) -> bool:
        """Steps remain after this leg (measured best first): an image that passes it is kept."""
        return self.steps < len(self.walk.steps)


@dataclass(frozen=True)
class Trail:
    """Where a call's images stand after its first leg: each image's progress, in input
    order, and the images kept, decoded, for the steps after it, by input index."""

    walk: TierWalk
    progress: list[ImageProgress]
    kept: dict[int, Walked]


class Scorer:
    """Scores encoded images on one device (CUDA when present); reusable across calls.
    What it measures with, its `Equipment`, is chosen once.

    The face models (dlib and face-recognition-models) and the moderation model (NudeNet's
    detector) come from installed packages; without them identity and nsfw are reported
    unavailable.

    Its `threads` work in parallel. On CUDA they decode while the main thread measures
    batches of up to 128 images of one size, each batch copied to the device once from
    pinned memory. On the CPU each thread decodes and measures one image at a time, so the
    image stays in cache between the passes of the dimensions; torch's and OpenCV's intra-op
    parallelism is then set to one thread, process-wide (torch.set_num_threads, cv2.setNumThreads).
    A call with `enough` keeps the decoded planes of the images that pass Tier 1, and what
    their dimensions shared, while the later tiers measure them best first, a chunk at a time.
    """

    def __init__(self, equipment: Equipment = Equipment()) -> None:
        self.device = torch.device(equipment.device) if equipment.device is not None else pick_device()
        if equipment.load_entry_points:
            discover_plugins()
        check_every_dimension_measured()
        self.clip = PromptAligner.load(equipment.clip_model_dir, self.device) if equipment.clip_model_dir else None
        moderated_classes = frozenset(equipment.moderated_classes)
        unknown = moderation.unknown_classes(moderated_classes)
        if unknown or not moderated_classes:
            raise ValueError(f"moderated classes must be some of {moderation.LABELS}; unknown: {unknown}")
        self.moderated_classes = moderated_classes
        self.video_sampling = equipment.video_sampling
        self.capabilities = frozenset(
            ({"clip_model"} if self.clip else set())
            | ({"face_model"} if face_models.embedding_available() else set())
            | ({"moderation_model"} if moderation.model_path() else set())
        )
        self.threads = equipment.threads or os.cpu_count() or 1
        if self.device.type == "cpu":
            # Images, not operations, are spread over the cores: intra-op threads would
            # spin against the image workers (measured 20× slower on two cores). OpenCV's
            # pool too: at one thread 96 portraits of a subject score in 8 % less time.
            torch.set_num_threads(1)
            cv2.setNumThreads(1)
        self._pool = TakingTurns(self.threads, name="scorer", gives_way=True, spare_lane=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "Scorer":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def missing_capabilities(self, profile: "Profile") -> list[str]:
        """Dimensions the profile must compute (required, forbidden) that this scorer cannot."""
        return profile.missing_capabilities(self.capabilities)

    def score(self, images: Sequence[bytes], scoring: Scoring) -> list[ImageVerdict]:
        """One verdict per image, in input order, judged and measured as `scoring` asks.

        Raises ValueError naming the index of an image that cannot be decoded, or when the
        reference photo cannot be decoded.
        """
        enough = scoring.enough
        if enough is not None and (not scoring.tiered or len(enough.indices) != len(images)):
            raise ValueError("enough needs a tiered call and one job index per image")
        context = self._context(scoring)
        walk = TierWalk.of(scoring.profile, self._plan(scoring.profile, context), tiered=scoring.tiered)
        leg = Leg(walk=walk, context=context, color=any(step.reads_color for step in walk.steps),
                  steps=walk.ordered_from if enough is not None else len(walk.steps), turn=scoring.turn)
        trail = self._walk(images, leg)
        if enough is not None and leg.more_after:
            self._measure_in_order(images, trail, enough=enough, turn=scoring.turn)
        return [_noted(walk.verdict(p), context, index=index) for index, p in enumerate(trail.progress)]

    def walk_of(self, scoring: Scoring) -> TierWalk:
        """The tiered walk a call with these inputs takes (tiered, whatever `scoring` says):
        its judgements and its steps."""
        return TierWalk.of(scoring.profile, self._plan(scoring.profile, self._context(scoring)), tiered=True)

    def _context(self, scoring: Scoring) -> ScoringContext:
        context = ScoringContext(device=self.device, prompt=scoring.prompt, reference=scoring.reference, requested_size=_checked_size(scoring.requested_size),
                                 clip=self.clip, moderated_classes=self.moderated_classes, requested_clip=scoring.requested_clip, video_sampling=self.video_sampling,
                                 subject=scoring.subject)
        for dimension, text in (scoring.subject.notes() if scoring.subject is not None else {}).items():
            context.note(dimension, text)
        return context

    def _plan(self, profile: "Profile", context: ScoringContext) -> dict[str, PlannedDimension]:
        present = set(self.capabilities)
        present |= {"prompt"} if context.prompt else set()
        # A subject stands where a reference photo would: identity and skin tone compare with it.
        present |= {"reference"} if context.reference is not None or context.subject is not None else set()
        present |= {"subject"} if context.subject is not None else set()
        present |= {"requested_size"} if context.requested_size is not None else set()
        present |= {"requested_clip"} if context.requested_clip is not None else set()
        present |= {"requested_fps"} if context.requested_clip is not None and context.requested_clip.fps else set()
        names = [*profile.dimension_names, *(f.dimension for f in profile.forbidden)]
        declared = {name: registered(name) for name in dict.fromkeys(names)}
        if context.subject is not None:  # reasons that say the subject, not a reference photo
            declared = {name: judged_against_subject(dimension) for name, dimension in declared.items()}
        planned = {name: _planned(dimension, present) for name, dimension in declared.items()}
        waiver = context.subject.eyes_waiver if context.subject is not None else None
        if waiver is not None and "eyes_open" in planned:  # eyes the detector cannot see in the subject's own photos
            planned["eyes_open"] = PlannedDimension(planned["eyes_open"].dimension, waived_for=waiver)
        return planned

    def _walk(self, images: Sequence[bytes], leg: Leg) -> Trail:
        """Each image through the leg, as far as it passes its steps; the images that passed
        them all while more steps remain are kept, decoded."""
        walked = self._walk_each(images, leg) if self.device.type == "cpu" else self._walk_batched(images, leg)
        trail = Trail(leg.walk, [], {})
        for index, (image_progress, batch) in enumerate(walked):
            trail.progress.append(image_progress)
            if batch is not None:
                trail.kept[index] = batch
        return trail

    def _walk_each(self, images: Sequence[bytes], leg: Leg) -> list[tuple[ImageProgress, Walked | None]]:
        """Each worker decodes one image at a time and takes it through the leg (the CPU path)."""
        return list(self._pool.map(lambda index, data: _walk_one(leg, index, data=data), range(len(images)), images,
                                   turn=leg.turn))

    def _walk_batched(self, images: Sequence[bytes], leg: Leg) -> list[tuple[ImageProgress, Walked | None]]:
        """Stills decoded ahead and stacked by size, each clip a batch of its frames (CUDA);
        each step measures only the images of a batch that passed the steps before."""
        walk = leg.walk
        walked: list[tuple[ImageProgress, Walked | None]] = [(ImageProgress(), None) for _ in images]
        stills = []
        for index, data in enumerate(images):
            if is_clip(data) or read_as_clip(walk, data):  # a clip is a batch of its own frames
                walked[index] = _walk_one(leg, index, data=data)
            else:
                stills.append((index, data))
        decoded = Readahead(self._pool, window=4 * self.threads).decoded(stills, leg.color)
        for members in group_by_size(decoded, CUDA_BATCH_PIXELS, max_images=CUDA_BATCH_IMAGES):
            prints = self._pool.map(lambda member: fingerprint_of_luma(member[1][..., -1]), members)
            stacked = stack_batch(members, leg.context)
            progress = {index: ImageProgress(fingerprint=fingerprint)
                        for index, fingerprint in zip(stacked.indices, prints, strict=True)}
            batch: ImageBatch | None = stacked
            for position in range(leg.steps):
                assert batch is not None  # the loop breaks once no image is left
                values = image_values(batch, walk.steps[position].dimensions)
                batch = batch.select([i for i in batch.indices if walk.judge_step(progress[i], values[i], position=position)])
                if batch is None:
                    break
            kept = set(batch.indices) if batch is not None and leg.more_after else set()
            for index in progress:
                walked[index] = (progress[index], _kept(batch, index) if index in kept else None)
        return walked

    def _measure_in_order(self, images: Sequence[bytes], trail: Trail, *, enough: Enough, turn: Turn | None) -> None:
        """The steps after the first, best first (`tiers`): each round measures the next step
        of as many images as the job still lacks, those whose ceilings rank highest, until
        the job's best K are known; those left unmeasured are told why."""
        walk, progress = trail.walk, trail.progress

        def ceiling(index: int) -> tuple[float, int]:
            return walk.ceiling(progress[index]), enough.indices[index]

        waiting = dict(trail.kept)
        ceilings = {i: ceiling(i) for i in waiting}
        passing = list(enough.passed_before)
        prints = {enough.indices[i]: image.fingerprint for i, image in enumerate(progress)}
        while waiting and not enough.settled(passing, list(ceilings.values()), prints=prints):
            ranked = sorted(waiting, key=lambda i: (-ceilings[i][0], -walk.score(progress[i]), enough.indices[i]))
            chunk = ranked[: enough.wanted(passing, prints=prints)]
            measured = self._measure_kept([(waiting[i], images[i], walk.steps[progress[i].steps_done]) for i in chunk],
                                          walk.steps[-1], turn=turn)
            for index in chunk:
                batch, values = measured[index]
                position = progress[index].steps_done
                passed = walk.judge_step(progress[index], values, position=position)
                if passed and position + 1 < len(walk.steps):
                    waiting[index], ceilings[index] = batch, ceiling(index)
                    continue
                del waiting[index], ceilings[index]
                if passed:
                    passing.append((walk.score(progress[index]), enough.indices[index]))
        for index in waiting:
            progress[index].stopped = enough.stop_reason

    def _measure_kept(
        self, kept: list[tuple[Walked, bytes, Step]], last: Step, *, turn: Turn | None
    ) -> dict[int, tuple[Walked, dict[str, Measured]]]:
        """Each kept image's next step (with its encoded bytes, to add colour where the step
        reads it), and the image as measured, what its dimensions shared kept for its next
        step: on the CPU one image per worker; on CUDA the stills at the `last` step stacked
        by size (one model run for all of them), the others one by one."""
        def one(batch: Walked, data: bytes, *, step: Step) -> tuple[Walked, dict[int, dict[str, Measured]]]:
            if isinstance(batch, ClipReading):
                return batch, {batch.index: clip_values(batch, step.dimensions)}
            batch = _for_step(step, batch, data=data)
            return batch, image_values(batch, step.dimensions)

        if self.device.type == "cpu":
            found = list(self._pool.map(lambda item: one(item[0], item[1], step=item[2]), kept, turn=turn))
        else:
            stacked: list[ImageBatch] = []
            found = []
            for batch, data, step in kept:
                if step is last and isinstance(batch, ImageBatch) and not batch.clip:
                    stacked.append(_for_step(last, batch, data=data))
                else:
                    found.append(one(batch, data, step=step))
            found += [(group, image_values(group, last.dimensions)) for group in joined(stacked)]
        return {index: (batch, values) for batch, by_index in found for index, values in by_index.items()}


def read_as_clip(walk: TierWalk, data: bytes) -> bool:
    """A video file is read as a clip; so is anything a video profile scores, so that a still
    or a broken file fails its container check rather than pass as an image."""
    return looks_like_video(data) or walk.reads_clips


def _walk_one(leg: Leg, index: int, *, data: bytes) -> tuple[ImageProgress, Walked | None]:
    """Decode image `index` and take it through the leg in a worker thread, while it is in
    cache; its batch (planes and what its dimensions shared) is kept when it passed."""
    walk = leg.walk
    if read_as_clip(walk, data):
        return _walk_clip(leg, index, data=data)
    batch = leg.context.decoded(index, data, color=leg.color and (walk.steps[0].reads_color or is_clip(data)))
    progress = ImageProgress(fingerprint=fingerprint_of_luma(batch.luma_u8[0].cpu().numpy()))
    for position in range(leg.steps):
        batch = _for_step(walk.steps[position], batch, data=data)
        if not walk.judge_step(progress, image_values(batch, walk.steps[position].dimensions)[index], position=position):
            return progress, None
    return progress, batch.kept() if leg.more_after else None


def fingerprint_of_luma(luma: np.ndarray) -> str:
    """The fingerprint of a decoded still (a clip's first frame), from its (H, W) luma."""
    return fingerprint_of(Image.fromarray(np.ascontiguousarray(luma)))


def _walk_clip(leg: Leg, index: int, *, data: bytes) -> tuple[ImageProgress, ClipReading | None]:
    """A video clip through the leg: its container read first, its frames decoded only once a
    step needs them (`video`); its reading kept as `_walk_one` keeps a batch."""
    reading = ClipReading(index, data, context=leg.context)
    progress = ImageProgress()
    for position in range(leg.steps):
        if not leg.walk.judge_step(progress, clip_values(reading, leg.walk.steps[position].dimensions), position=position):
            return progress, None
    return progress, reading if leg.more_after else None


def clip_values(reading: ClipReading, dimensions: Sequence[Dimension]) -> dict[str, Measured]:
    """A clip's value of each dimension: the container and temporal ones from its reading,
    the others from its sampled frames (NaN, unmeasurable, when it does not decode; None where
    the dimension does not apply to this clip, as its measure noted)."""
    values: dict[str, Measured] = {d.name: reading.value_of(d) for d in dimensions if d.reads in CLIP_READS}
    on_frames = [d for d in dimensions if d.reads not in CLIP_READS]
    if not on_frames:
        return values
    sampled = reading.sampled()
    if sampled is None:
        return values | {d.name: math.nan for d in on_frames}
    rows = measure_batch(sampled, on_frames)
    tell_worst_frames(reading, on_frames, rows=rows)
    unmeasured = reading.context.unmeasured
    return values | {d.name: None if unmeasured(d.name, reading.index) else over_frames(d, row)
                     for d, row in zip(on_frames, rows, strict=True)}


def _for_step(step: Step, batch: ImageBatch, *, data: bytes) -> ImageBatch:
    """The batch with colour where the step reads it and the still was decoded in luma alone."""
    return in_color(batch, data) if step.reads_color and not batch.clip else batch


def _planned(dimension: Dimension, present: set[str]) -> PlannedDimension:
    # Waived first: with nothing to compare to (no reference), a missing model is moot.
    skipped = sorted(dimension.waived_without - present)
    if skipped:
        return PlannedDimension(dimension, waived_for=skipped[0])
    missing = sorted(dimension.requires - present)
    return PlannedDimension(dimension, missing[0] if missing else None)


def _kept(batch: ImageBatch | None, index: int) -> ImageBatch:
    """The image's own batch, kept for the steps measured in order (it passed the others)."""
    selected = batch.select([index]) if batch is not None else None
    assert selected is not None, "a kept image is in its batch"
    return selected.kept()


def _noted(verdict: ImageVerdict, context: ScoringContext, *, index: int) -> ImageVerdict:
    """The verdict with what the dimensions noted (how they measured, what they found)
    added to their reasons."""
    noted = {}
    for name, result in verdict.dimensions.items():
        notes = [] if result.skipped else context.notes_for(name, index)
        noted[name] = replace(result, reason=f"{result.reason}; {'; '.join(notes)}") if notes else result
    return replace(verdict, dimensions=noted)


def _checked_size(requested_size: tuple[int, int] | None) -> tuple[int, int] | None:
    if requested_size is None:
        return None
    width, height = requested_size
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise ValueError(f"requested_size must be two positive integers (width, height), got {requested_size!r}")
    return width, height
