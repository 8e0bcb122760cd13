"""The Scorer: judge a batch of encoded images against a profile.

For one call the Scorer plans each dimension of the profile — measured, unavailable
(a capability or input it requires is missing) or waived (an optional input is missing,
e.g. no requested size) — decodes each image once (colour only when a measured dimension
reads it), measures every planned dimension per batch, and judges each image. A clip is
measured frame by frame, and each dimension combines its frames' values (`over_frames`). An image
passes when every dimension passes, except that a dimension which is unavailable and not
required is reported but excused; forbidden conditions must hold too.
"""

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING

import torch

from services.scorer.dimensions.batch import (
    ImageBatch,
    ScoringContext,
    CUDA_BATCH_IMAGES,
    CUDA_BATCH_PIXELS,
    decode_ahead,
    decode_frames,
    decode_planes,
    group_by_size,
    is_clip,
    pick_device,
    stack_batch,
)
from services.scorer.dimensions import face_models, moderation
from services.scorer.dimensions.clip import PromptAligner
from services.scorer.dimensions.core import (
    Dimension,
    DimensionResult,
    ImageVerdict,
    judge,
    judge_forbidden,
    ranking_score,
    registered,
    unavailable,
    waived,
)
from services.scorer.dimensions.plugins import discover_plugins

if TYPE_CHECKING:
    from services.scorer.profiles import Profile


@dataclass(frozen=True)
class PlannedDimension:
    """How one dimension is treated in one call: measured, or why not."""

    dimension: Dimension
    missing: str | None = None
    waived_for: str | None = None

    @property
    def measured(self) -> bool:
        return self.missing is None and self.waived_for is None


class Scorer:
    """Scores encoded images on one device (CUDA when present); reusable across calls.

    `clip_model_dir` is a local folder written by `save_pretrained` holding a CLIP model
    and its tokenizer; without it prompt_alignment is unavailable. Installed plugins
    (entry points of `genline.scorer.dimensions`) are registered unless
    `load_entry_points` is False.

    The face models (dlib and face-recognition-models) and the moderation model (NudeNet's
    detector) come from installed packages; without them identity and nsfw are reported
    unavailable. `moderated_classes` are the detector's classes that `nsfw` scores.

    `threads` (the CPU count by default) work in parallel. On CUDA they decode while the
    main thread measures batches of up to 128 images of one size, each batch copied to the
    device once from pinned memory. On the CPU each thread decodes and measures one image
    at a time, so the image stays in cache between the passes of the dimensions; torch's
    intra-op parallelism is then set to one thread, process-wide (torch.set_num_threads).
    """

    def __init__(
        self,
        device: torch.device | None = None,
        clip_model_dir: str | None = None,
        *,
        threads: int | None = None,
        load_entry_points: bool = True,
        moderated_classes: frozenset[str] = moderation.MODERATED_BY_DEFAULT,
    ) -> None:
        self.device = torch.device(device) if device is not None else pick_device()
        if load_entry_points:
            discover_plugins()
        self.clip = PromptAligner.load(clip_model_dir, self.device) if clip_model_dir else None
        unknown = moderation.unknown_classes(frozenset(moderated_classes))
        if unknown or not moderated_classes:
            raise ValueError(f"moderated classes must be some of {moderation.LABELS}; unknown: {unknown}")
        self.moderated_classes = frozenset(moderated_classes)
        self.capabilities = frozenset(
            ({"clip_model"} if self.clip else set())
            | ({"face_model"} if face_models.embedding_available() else set())
            | ({"moderation_model"} if moderation.model_path() else set())
        )
        self.threads = threads or os.cpu_count() or 1
        if self.device.type == "cpu":
            # Images, not operations, are spread over the cores: intra-op threads would
            # spin against the image workers (measured 20× slower on two cores).
            torch.set_num_threads(1)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="scorer")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "Scorer":
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def missing_capabilities(self, profile: "Profile") -> list[str]:
        """Dimensions the profile must compute (required, forbidden) that this scorer cannot."""
        return profile.missing_capabilities(self.capabilities)

    def score(
        self,
        images: Sequence[bytes],
        profile: "Profile",
        *,
        prompt: str | None = None,
        reference: bytes | None = None,
        requested_size: tuple[int, int] | None = None,
    ) -> list[ImageVerdict]:
        """One verdict per image, in input order. `requested_size` is (width, height).

        Raises ValueError naming the index of an image that cannot be decoded, or when the
        reference photo cannot be decoded.
        """
        context = ScoringContext(self.device, prompt, reference, _checked_size(requested_size), self.clip,
                                 self.moderated_classes)
        plan = self._plan(profile, context)
        measured = [entry.dimension for entry in plan.values() if entry.measured]
        values = self._measure(images, measured, context)
        return [_noted(_verdict(profile, plan, image_values), context, index)
                for index, image_values in enumerate(values)]

    def _plan(self, profile: "Profile", context: ScoringContext) -> dict[str, PlannedDimension]:
        present = set(self.capabilities)
        present |= {"prompt"} if context.prompt else set()
        present |= {"reference"} if context.reference is not None else set()
        present |= {"requested_size"} if context.requested_size is not None else set()
        names = [*profile.dimension_names, *(f.dimension for f in profile.forbidden)]
        return {name: _planned(registered(name), present) for name in dict.fromkeys(names)}

    def _measure(
        self, images: Sequence[bytes], dimensions: list[Dimension], context: ScoringContext
    ) -> list[dict[str, float]]:
        color = any(d.reads in ("pixels", "color") for d in dimensions)
        if self.device.type == "cpu":
            return self._measure_each(images, dimensions, context, color)
        return self._measure_batched(images, dimensions, context, color)

    def _measure_each(
        self, images: Sequence[bytes], dimensions: list[Dimension], context: ScoringContext, color: bool
    ) -> list[dict[str, float]]:
        """Each worker decodes and measures one image at a time (the CPU path)."""
        return list(self._pool.map(partial(_measure_one, dimensions, context, color), range(len(images)), images))

    def _measure_batched(
        self, images: Sequence[bytes], dimensions: list[Dimension], context: ScoringContext, color: bool
    ) -> list[dict[str, float]]:
        """Stills decoded ahead and stacked by size, each clip a batch of its frames (CUDA)."""
        values: list[dict[str, float]] = [{} for _ in images]
        stills = []
        for index, data in enumerate(images):
            if is_clip(data):  # a clip is a batch of its own frames
                values[index] = _measure_one(dimensions, context, color, index, data)
            else:
                stills.append((index, data))
        decoded = decode_ahead(stills, color, self._pool, window=4 * self.threads)
        for members in group_by_size(decoded, CUDA_BATCH_PIXELS, CUDA_BATCH_IMAGES):
            batch = stack_batch(members, context)
            rows = measure_batch(batch, dimensions)
            for position, index in enumerate(batch.indices):
                values[index] = {d.name: row[position] for d, row in zip(dimensions, rows)}
        return values


def _measure_one(
    dimensions: list[Dimension], context: ScoringContext, color: bool, index: int, data: bytes
) -> dict[str, float]:
    """Decode and measure one image in a worker thread, while it is still in cache; a clip's
    frames are measured together and each dimension's values combined over them."""
    clip = is_clip(data)
    planes = decode_frames(index, data, color) if clip else decode_planes(index, data, color)[None]
    batch = ImageBatch(indices=(index,) * len(planes), planes=torch.from_numpy(planes).to(context.device),
                       context=context, clip=clip)
    rows = measure_batch(batch, dimensions)
    return {dimension.name: over_frames(dimension, row) for dimension, row in zip(dimensions, rows)}


def over_frames(dimension: Dimension, values: list[float]) -> float:
    """One value of a clip from its frames' (a still image has one): their mean, or the
    worst frame where the dimension says so (the blurriest, the most flagged)."""
    if dimension.over_frames == "min":
        return min(values)
    if dimension.over_frames == "max":
        return max(values)
    return sum(values) / len(values)


def measure_batch(batch: ImageBatch, dimensions: list[Dimension]) -> list[list[float]]:
    """One row per dimension, one value per image, copied to the host once."""
    if not dimensions:
        return []
    with torch.inference_mode():
        columns = [_measured(dimension, batch) for dimension in dimensions]
        rows = torch.stack([column.to(batch.planes.device) for column in columns])
    return rows.cpu().tolist()


def _measured(dimension: Dimension, batch: ImageBatch) -> torch.Tensor:
    source = batch.pixels if dimension.reads == "pixels" else batch
    values = torch.as_tensor(dimension.measure(source)).detach().reshape(-1).to(torch.float64)
    if values.numel() != batch.size:
        raise ValueError(
            f"dimension {dimension.name!r} gave {values.numel()} values for a batch of {batch.size}"
        )
    return values


def _planned(dimension: Dimension, present: set[str]) -> PlannedDimension:
    # Waived first: with nothing to compare to (no reference), a missing model is moot.
    skipped = sorted(dimension.waived_without - present)
    if skipped:
        return PlannedDimension(dimension, waived_for=skipped[0])
    missing = sorted(dimension.requires - present)
    return PlannedDimension(dimension, missing[0] if missing else None)


def _noted(verdict: ImageVerdict, context: ScoringContext, index: int) -> ImageVerdict:
    """The verdict with what the dimensions noted (how they measured, what they found)
    added to their reasons."""
    noted = {}
    for name, result in verdict.dimensions.items():
        notes = context.notes_for(name, index)
        noted[name] = replace(result, reason=f"{result.reason}; {'; '.join(notes)}") if notes else result
    return replace(verdict, dimensions=noted)


def _checked_size(requested_size: tuple[int, int] | None) -> tuple[int, int] | None:
    if requested_size is None:
        return None
    width, height = requested_size
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise ValueError(f"requested_size must be two positive integers (width, height), got {requested_size!r}")
    return width, height


def _judged(entry: PlannedDimension, bounds, values: dict[str, float], forbidden: bool) -> DimensionResult:
    if entry.missing is not None:
        return unavailable(entry.dimension, bounds, entry.missing)
    if entry.waived_for is not None and not forbidden:
        return waived(entry.dimension, bounds, entry.waived_for)
    if entry.waived_for is not None:
        # A forbidden condition on a dimension with nothing to measure cannot be violated.
        return DimensionResult(None, bounds.nearest(None), True, f"{entry.dimension.name} not measured")
    value = values[entry.dimension.name]
    return judge_forbidden(entry.dimension, value, bounds) if forbidden else judge(entry.dimension, value, bounds)


def _verdict(profile: "Profile", plan: dict[str, PlannedDimension], values: dict[str, float]) -> ImageVerdict:
    results: dict[str, DimensionResult] = {}
    ranked = []
    for check in profile.checks:
        entry = plan[check.dimension]
        result = _judged(entry, check.bounds, values, forbidden=False)
        results[check.dimension] = result
        ranked.append((entry.dimension, check.bounds, check.weight, result))
    excused = {
        name for name, result in results.items() if not result.available and name not in profile.required
    }
    for condition in profile.forbidden:
        label = _unique(condition.label, results)
        results[label] = _judged(plan[condition.dimension], condition.bounds, values, forbidden=True)
    failed = tuple(name for name, result in results.items() if not result.passed and name not in excused)
    return ImageVerdict(dimensions=results, passed=not failed, score=ranking_score(ranked), failed=failed)


def _unique(label: str, taken: dict[str, DimensionResult]) -> str:
    if label not in taken:
        return label
    return next(f"{label}#{n}" for n in range(2, len(taken) + 3) if f"{label}#{n}" not in taken)
