"""Tiers: each image pays only for the checks that can still change its verdict.

Every dimension declares its tier by cost (`Dimension.tier`): 1, the batched checks on
luma and colour; 2, face and person checks and moderation; 3, anything expensive (the face
embedding of identity; plugins, unless they say otherwise). A profile's checks and
forbidden conditions are judged in their dimension's tier; custom rules (`QualityRules`)
bound and forbid dimensions of any tier. A tier with nothing to measure in a call (its
dimensions unavailable or waived) is judged with the tier before it.

What does not rank is judged last (`_deferred`): from tier 2 on, a check of weight 0 or a
forbidden condition is judged in the last tier, unless a check that ranks in its own tier
shares its measure (faces counted beside the face's size); so moderation, which decides
only pass or fail, is measured after the face checks and, with `Enough`, in rank order.
From tier 2 on, a tier is measured one measure family at a time (`_families`: the face
checks, then the portrait checks), so an image is not measured further than its first
failure.

A tiered walk measures one step at a time and judges it before the next:

1. After each tier an image that fails one of the tier's checks (a bound, a forbidden
   condition, a required dimension that cannot be computed) is rejected and not measured
   further. Each dimension of a later tier says so: value None, not passed, reason "nsfw
   unmeasured: rejected at tier 1 by blank, sharpness". It is never counted as a pass.
2. Enough, not all (`Enough`). Tier 1 is measured for every image; the tiers after it
   best first: each round measures the next tier of the images whose ceilings (below)
   rank highest — as many as the job still needs — and an image's ceiling falls as its
   tiers are measured. Measuring stops once the job has K passing images (its earlier
   attempts' count too; in an order of different pictures, none alike a better one) and no
   image still waiting could outrank the K-th of them. Those
   left have no verdict (neither passed nor failed): "nsfw unmeasured: measuring stopped
   once the job had K passing candidates that this one could not outrank". A job whose
   best images fail measures the next ones.

The ceiling (how the bound is computed). An image's ranking score is the weighted mean of
log1p(headroom) over its measured dimensions (`core.ranking_score`). An image that passes
has every dimension measured and within its bounds, so its score is at most the same mean
with each term not yet measured at its largest: log1p of the most headroom a
value between the dimension's `lowest` and `highest` can have (`Bounds.most_headroom`:
for a minimum, the highest value; for a maximum, the lowest; for a range, the middle).
A weighted dimension with no such limit makes the ceiling infinite, and nothing is then
skipped. The ceiling is summed in the score's own order and widened by one part in a
billion, so rounding cannot lift a score above it; ties go to the lower index, as in
`select_best`. Every unmeasured image therefore ranks below K measured passing ones, and
the K best passing images are those that measuring every image would select.

Walking untiered (score_all) measures every dimension of every image in one step.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from services.common.quality.dimensions import TIERS, Bounds, Dimension
from services.common.quality.fingerprints import alike_any
from services.scorer.dimensions import built_in  # noqa: F401 — registers the built-in measures
from services.scorer.dimensions.core import (
    DimensionResult,
    ImageVerdict,
    Measured,
    judge,
    judge_forbidden,
    not_measured,
    ranking_score,
    skipped,
    unavailable,
    waived,
    weighted_mean,
)
from services.scorer.dimensions.measures import family_of

if TYPE_CHECKING:
    from services.common.quality.profiles import Profile

CEILING_MARGIN = 1e-9


@dataclass(frozen=True)
class PlannedDimension:
    """How one dimension is treated in one call: measured, or why not."""

    dimension: Dimension
    missing: str | None = None
    waived_for: str | None = None

    @property
    def measured(self) -> bool:
        return self.missing is None and self.waived_for is None


@dataclass(frozen=True, kw_only=True)
class Judgement:
    """One result of a verdict: a profile's check (with its ranking weight) or a forbidden
    condition (`weight` None), under `label` ('sharpness', 'forbid:faces>=1')."""

    label: str
    planned: PlannedDimension
    bounds: Bounds
    weight: float | None
    required: bool = False
    judged_in: int | None = None  # a later tier than the dimension's own (`_deferred`)

    @property
    def dimension(self) -> Dimension:
        return self.planned.dimension

    @property
    def tier(self) -> int:
        return self.judged_in or self.dimension.tier

    @property
    def ranks(self) -> bool:
        return bool(self.weight)

    def judged(self, values: Mapping[str, Measured]) -> DimensionResult:
        planned, forbidden = self.planned, self.weight is None
        if planned.missing is not None:
            return unavailable(planned.dimension, self.bounds, missing=planned.missing)
        if planned.waived_for is not None and not forbidden:
            return waived(planned.dimension, self.bounds, missing=planned.waived_for)
        if planned.waived_for is not None:
            # A forbidden condition on a dimension with nothing to measure cannot be violated.
            return DimensionResult(value=None, threshold=self.bounds.nearest(None), passed=True, reason=f"{planned.dimension.name} not measured")
        value = values[planned.dimension.name]
        if value is None:
            return not_measured(planned.dimension, self.bounds)
        if forbidden:
            return judge_forbidden(planned.dimension, value, bounds=self.bounds)
        return judge(planned.dimension, value, bounds=self.bounds)

    def excused(self, result: DimensionResult) -> bool:
        """An unavailable check that is not required does not count against an image."""
        return self.weight is not None and not result.available and not self.required

    def term(self, values: Mapping[str, Measured]) -> tuple[float, float] | None:
        """(weight, log1p(headroom)) of a measured value, as the ranking score adds it."""
        value = values.get(self.dimension.name)
        if self.weight is None or value is None or math.isnan(value):
            return None
        return self.weight, math.log1p(self.bounds.headroom(value, self.dimension.scale))

    def largest_term(self) -> tuple[float, float]:
        assert self.weight is not None, "only a judgement that ranks has a term"
        most = self.bounds.most_headroom(self.dimension.lowest, self.dimension.highest, scale=self.dimension.scale)
        return self.weight, math.log1p(most)


@dataclass(frozen=True, kw_only=True)
class Step:
    """Judgements (by label) of one tier, or of tiers judged together, and the dimensions
    measured for them."""

    tiers: frozenset[int]
    dimensions: tuple[Dimension, ...]
    labels: frozenset[str] = frozenset()
    stage: str | None = None  # what a step within tier 1 reads, where it is not the frames

    @property
    def name(self) -> str:
        return f"the {self.stage} check" if self.stage else f"tier {min(self.tiers)}"

    @property
    def reads_color(self) -> bool:
        return any(d.reads in ("pixels", "color") for d in self.dimensions)


@dataclass(kw_only=True)
class ImageProgress:
    """How far one image got: its measured values, the steps judged, and why it stopped
    early (None when every step was judged); its fingerprint, taken when it was decoded."""

    values: dict[str, Measured] = field(default_factory=dict)
    steps_done: int = 0
    stopped: str | None = None
    fingerprint: str | None = None


@dataclass(frozen=True)
class TierWalk:
    """A profile's judgements for one call, and the steps that measure them in order."""

    judgements: tuple[Judgement, ...]
    steps: tuple[Step, ...]

    @classmethod
    def of(cls, profile: "Profile", plan: Mapping[str, PlannedDimension], *, tiered: bool) -> "TierWalk":
        """One step per tier when `tiered`, else one for all; within tier 1, a clip's
        container, then its frames over time, then its frames one by one (`_stages`); from
        tier 2 on, one step per measure family within a tier (`_families`). A step with
        nothing to measure (its dimensions unavailable or waived) is judged with the step
        before it."""
        judgements = _judgements(profile, plan)
        if tiered:
            judgements = _deferred(judgements)
        steps: list[Step] = []
        for tiers in [frozenset({tier}) for tier in TIERS] if tiered else [frozenset(TIERS)]:
            members = [j for j in judgements if j.tier in tiers]
            parts = _families(members) if tiered and min(tiers) > 1 else _stages(members) if tiered else (
                [members] if members else [])
            for part in parts:
                measured = tuple(dict.fromkeys(j.dimension for j in part if j.planned.measured))
                labels = frozenset(j.label for j in part)
                if steps and not measured:
                    steps[-1] = replace(steps[-1], tiers=steps[-1].tiers | tiers, labels=steps[-1].labels | labels)
                else:
                    stage = STAGES.get(part[0].dimension.reads) if tiered and min(tiers) == 1 else None
                    steps.append(Step(tiers=tiers, dimensions=measured, labels=labels, stage=stage))
        return cls(judgements, tuple(steps))

    @classmethod
    def measuring(cls, dimensions: Sequence[Dimension]) -> "TierWalk":
        """A walk that measures `dimensions` in one step and judges nothing."""
        return cls((), (Step(tiers=frozenset(TIERS), dimensions=tuple(dimensions)),))

    @property
    def measured(self) -> tuple[Dimension, ...]:
        return tuple(dimension for step in self.steps for dimension in step.dimensions)

    @property
    def ordered_from(self) -> int:
        """The first step that `Enough` measures best first: every step after tier 1 (one step,
        or a clip's three), whose values rank the images; none for a walk of one step."""
        return max(min(1, len(self.steps)), sum(1 for step in self.steps if min(step.tiers) == 1))

    @property
    def reads_clips(self) -> bool:
        """The walk measures what only a video clip's file shows (a video profile)."""
        return any(d.reads == "container" for step in self.steps for d in step.dimensions)

    def judge_step(self, progress: ImageProgress, values: Mapping[str, Measured], *, position: int) -> bool:
        """Judge step `position` on the `values` it measured, added to the image's progress;
        False (and why) when it rejects the image."""
        progress.values |= values
        step = self.steps[position]
        failing = [j.label for j in self.judgements
                   if j.label in step.labels and _counts_against(j, j.judged(progress.values))]
        progress.steps_done = position + 1
        if failing:
            progress.stopped = f"rejected at {step.name} by {', '.join(failing)}"
        return not failing

    def verdict(self, progress: ImageProgress) -> ImageVerdict:
        reached = {label for step in self.steps[: progress.steps_done] for label in step.labels}
        why = progress.stopped or ""
        results = {j.label: j.judged(progress.values) if j.label in reached else skipped(j.dimension, j.bounds, why=why)
                   for j in self.judgements}
        ranked = [(j.dimension, j.bounds, j.weight, results[j.label]) for j in self.judgements if j.weight is not None]
        failed = tuple(j.label for j in self.judgements if _counts_against(j, results[j.label]))
        not_measured = tuple(label for label, result in results.items() if result.skipped)
        return ImageVerdict(dimensions=results, passed=not failed and not not_measured, score=ranking_score(ranked),
                            failed=failed, not_measured=not_measured, fingerprint=progress.fingerprint)

    def score(self, progress: ImageProgress) -> float:
        """The ranking score of what has been measured."""
        return weighted_mean([term for j in self.judgements if (term := j.term(progress.values)) is not None])

    def ceiling(self, progress: ImageProgress) -> float:
        """The highest ranking score the image can reach if it passes the steps it has not
        been measured in: each of their weighted dimensions at its largest term."""
        terms = []
        for judgement in self.judgements:
            term = judgement.term(progress.values)
            if (term is None and judgement.ranks and judgement.planned.measured
                    and judgement.dimension.name not in progress.values):
                term = judgement.largest_term()
            if term is not None:
                terms.append(term)
        highest = weighted_mean(terms)
        return highest + abs(highest) * CEILING_MARGIN


def _counts_against(judgement: Judgement, result: DimensionResult) -> bool:
    return not result.passed and not result.skipped and not judgement.excused(result)


def _judgements(profile: "Profile", plan: Mapping[str, PlannedDimension]) -> tuple[Judgement, ...]:
    judgements = [Judgement(label=c.dimension, planned=plan[c.dimension], bounds=c.bounds, weight=c.weight, required=c.dimension in profile.required)
                  for c in profile.checks]
    taken = {j.label for j in judgements}
    for condition in profile.forbidden:
        label = _unique(condition.label, taken)
        taken.add(label)
        judgements.append(Judgement(label=label, planned=plan[condition.dimension], bounds=condition.bounds, weight=None))
    return tuple(judgements)


def _deferred(judgements: tuple[Judgement, ...]) -> tuple[Judgement, ...]:
    """What does not rank is judged last. A check of weight 0 or a forbidden condition
    decides whether an image passes, never its place; from tier 2 on it is moved to the last
    tier, so that it is measured only on the images that reach the end (with `Enough`, in
    rank order: only until the job's best K are known). It stays in its tier where a check
    that ranks there is measured by the same measure family (faces counted beside the face's
    size): its cost is paid anyway, and it still rejects early and says why."""
    last = max((j.dimension.tier for j in judgements), default=1)
    ranked = {(j.dimension.tier, family_of(j.dimension)) for j in judgements if j.ranks and j.planned.measured}
    return tuple(
        replace(j, judged_in=last)
        if not j.ranks and 1 < j.dimension.tier < last and (j.dimension.tier, family_of(j.dimension)) not in ranked
        else j
        for j in judgements
    )


# Tier 1 of a video clip in three steps, cheapest first: a clip that fails its container
# check is never decoded, one that freezes or flickers never has its frames measured.
STAGES = {"container": "container", "sequence": "temporal"}


def _stages(judgements: Sequence[Judgement]) -> list[list[Judgement]]:
    """Tier 1's judgements by what they read: the container, the frames over time, the frames
    one by one; a profile for stills has only the last."""
    order = {"container": 0, "sequence": 1}
    staged: dict[int, list[Judgement]] = {}
    for judgement in judgements:
        staged.setdefault(order.get(judgement.dimension.reads, 2), []).append(judgement)
    return [staged[stage] for stage in sorted(staged)]


def _families(judgements: Sequence[Judgement]) -> list[list[Judgement]]:
    """A tier's judgements by measure family, those of a family that ranks first, otherwise
    in the profile's order: an image that fails the face checks never pays for the portrait
    checks or moderation, and what ranks is known before what only gates."""
    families: dict[object, list[Judgement]] = {}
    for judgement in judgements:
        families.setdefault(family_of(judgement.dimension), []).append(judgement)
    return sorted(families.values(), key=lambda family: not any(j.ranks and j.planned.measured for j in family))


def _unique(label: str, taken: set[str]) -> str:
    if label not in taken:
        return label
    return next(f"{label}#{n}" for n in range(2, len(taken) + 3) if f"{label}#{n}" not in taken)


Ranking = tuple[float, int]  # (score, the candidate's index in its job): higher first, then the lower index


def outranks(one: Ranking, other: Ranking) -> bool:
    return one[0] > other[0] or (one[0] == other[0] and one[1] < other[1])


@dataclass(frozen=True, kw_only=True)
class Enough:
    """When a job has enough: `images` (K) passing candidates. `indices` are the job's
    indices of the images scored now, in their order (ties go to the lower); `passed_before`
    the (score, index) of its candidates that passed in earlier attempts. A job that asks for
    different pictures (`distinct`: an order of a subject, or across styles) counts a passing
    image alike a better one (the selection's near-duplicates) as no pass, so that it measures
    on for a different one; `prints` are the fingerprints of its images by job index, those of
    `passed_before` among them (those scored now come with the call)."""

    images: int
    indices: tuple[int, ...]
    passed_before: tuple[Ranking, ...] = ()
    distinct: bool = False
    prints: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images < 1:
            raise ValueError(f"a job needs at least one image, not {self.images}")

    def of(self, positions: Sequence[int]) -> "Enough":
        """The same job, for the images at `positions` of this call only."""
        return replace(self, indices=tuple(self.indices[p] for p in positions))

    def counted(self, passing: Sequence[Ranking], *, prints: Mapping[int, str | None]) -> list[Ranking]:
        """The passing images that count, best first: all of them, or for a `distinct` job
        those the selection could take, none alike one better than it."""
        best_first = sorted(passing, key=lambda ranking: (-ranking[0], ranking[1]))
        if not self.distinct:
            return best_first
        counted: list[Ranking] = []
        seen: list[str] = []
        for ranking in best_first:
            fingerprint = prints.get(ranking[1]) or self.prints.get(ranking[1])
            if fingerprint is not None and alike_any(fingerprint, seen):
                continue
            counted.append(ranking)
            if fingerprint is not None:
                seen.append(fingerprint)
        return counted

    def wanted(self, passing: Sequence[Ranking], *, prints: Mapping[int, str | None]) -> int:
        """How many images to measure next: as many as still lack, at least one."""
        return max(1, self.images - len(self.counted(passing, prints=prints)))

    def settled(self, passing: Sequence[Ranking], waiting: Sequence[Ranking], *,
                prints: Mapping[int, str | None]) -> bool:
        """K count, and no waiting image's ceiling outranks the K-th best of them."""
        counted = self.counted(passing, prints=prints)
        if len(counted) < self.images:
            return False
        kth = counted[self.images - 1]
        return not any(outranks(ceiling, kth) for ceiling in waiting)

    @property
    def stop_reason(self) -> str:
        return (f"measuring stopped once the job had {self.images} passing candidate(s) that this one"
                " could not outrank")
