"""Scorer rules, without I/O: from verdicts to published scores, and from a job's scores
so far to what happens next.

After each attempt the job's candidates of every attempt count together. K selectable:
the best K are selected (`selection`: each style's share, no two near-duplicates in an
order of a subject or across styles). Fewer, and the router may generate more:
regeneration is requested for the shortfall, style by style. Fewer, and the router has
said the attempt was final: what passed is delivered (partially, each style's shortfall
filled from the others' best), or the job fails with the reasons its candidates were
rejected. When the router stopped because the job's deadline passed, a partial delivery
needs at least the job's `min_images` selectable (all K by default); with fewer the job
expires.
"""

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from services.common.contracts import (
    DEADLINE_EXCEEDED,
    CandidateRef,
    CandidatesChecked,
    CandidateScore,
    CandidatesGenerated,
    CandidatesScored,
    CandidatesStored,
    DimensionScore,
    RegenerationRequested,
    ScoringFailed,
)
from services.scorer.dimensions.core import DimensionResult, ImageVerdict
from services.scorer.selection import Selection, SelectionAsk, select

Outcome = CandidatesScored | RegenerationRequested | ScoringFailed
UNDECODABLE = "decodable"


def candidate_score(candidate: CandidateRef, attempt: int, *, verdict: ImageVerdict) -> CandidateScore:
    return CandidateScore(
        index=candidate.index, attempt=attempt, provider=candidate.provider, key=candidate.key, offset=candidate.offset,
        sha256=candidate.sha256, size_bytes=candidate.size_bytes, media_type=candidate.media_type,
        model=candidate.model, model_version=candidate.model_version,
        passed=verdict.passed, score=verdict.score, failed=list(verdict.failed),
        not_measured=list(verdict.not_measured), judged=verdict.judged, style=candidate.style,
        fingerprint=verdict.fingerprint,
        dimensions={name: DimensionScore(value=_measured(d.value), threshold=d.threshold, passed=d.passed,
                                         reason=d.reason)
                    for name, d in verdict.dimensions.items()},
    )


def _measured(value: float | None) -> float | None:
    """NaN (could not be measured on this image, e.g. no face) is published as None."""
    return None if value is None or math.isnan(value) else value


def undecodable_verdict(detail: str) -> ImageVerdict:
    """A candidate that is not an image: rejected, with the decoder's word as the reason."""
    result = DimensionResult(value=None, threshold=0.0, passed=False, reason=f"the candidate could not be decoded: {detail}")
    return ImageVerdict(dimensions={UNDECODABLE: result}, passed=False, score=0.0, failed=(UNDECODABLE,))


def rejection_summary(scores: Sequence[CandidateScore]) -> str:
    """'6 failed sharpness (sharpness 3.1 is below the minimum 20 (image looks blurred)), …':
    how many candidates each dimension rejected, most first, with one reason as example."""
    failures: Counter[str] = Counter()
    example: dict[str, str] = {}
    for score in scores:
        for name in score.failed:
            failures[name] += 1
            example.setdefault(name, score.dimensions[name].reason if name in score.dimensions else name)
    return ", ".join(f"{count} failed {name} ({example[name]})" for name, count in failures.most_common())


def decide(event: CandidatesGenerated, job_scores: Sequence[CandidateScore],
           *, fresh: Sequence[CandidateScore]) -> Outcome:
    """What follows this attempt, given every score of the job (this attempt's included);
    the outcome carries the `fresh` scores, those no CandidatesChecked published."""
    selection = select(SelectionAsk.of(event.job, event.images), job_scores, fill=event.final)
    selectable = len(selection.chosen)
    common = {"job_id": event.job_id, "tenant_id": event.tenant_id, "attempt": event.attempt}
    outputs = outputs_of(event)
    if event.final and event.stop_reason == DEADLINE_EXCEEDED and selectable < min(event.images, enough(event)):
        return ScoringFailed(**common, failure_code=DEADLINE_EXCEEDED, scores=list(fresh),
                             reason=f"the deadline passed with {selectable} {outputs} to deliver; the job needed"
                                    f" at least {enough(event)}")
    if (event.final and selectable) or not selection.short:
        chosen = [job_scores[i] for i in selection.chosen]
        return CandidatesScored(**common, images=event.images, scores=list(fresh),
                                selected=[score.index for score in chosen], selected_scores=chosen,
                                template=event.job.template if event.job else None,
                                output_format=event.job.output_format if event.job else None)
    if not event.final:
        return regeneration(event, AttemptScores(job_scores, fresh), selection=selection)
    return failed(event, job_scores, fresh=fresh)


def outputs_of(event: CandidatesGenerated) -> str:
    """What a job's outputs are called in its reasons: clips for a video job, else images."""
    return "clips" if event.job is not None and event.job.video is not None else "images"


@dataclass(frozen=True)
class AttemptScores:
    """Every score of a job after an attempt (`job`), and those no CandidatesChecked published (`fresh`)."""

    job: Sequence[CandidateScore]
    fresh: Sequence[CandidateScore]


def regeneration(event: CandidatesGenerated, scores: AttemptScores, *, selection: Selection) -> RegenerationRequested:
    """More candidates for what the selection misses, style by style where the job has styles;
    the reason says what passed, what each style misses and why this attempt's were rejected."""
    job_scores, fresh = scores.job, scores.fresh
    passed = sum(score.passed for score in job_scores)
    needed = sum(selection.short.values())
    reason = f"{passed} of {event.images} {outputs_of(event)} pass after attempt {event.attempt}"
    if event.images - needed < passed:
        reason += f", {event.images - needed} of them selectable (near-duplicates, or styles already full)"
    if by_style := selection.needed_by_style():
        reason += "; styles short: " + ", ".join(f"{style} {missing}" for style, missing in by_style.items())
    this_attempt = {s.index: s for s in job_scores if s.attempt == event.attempt} | {s.index: s for s in fresh}
    if rejected := rejection_summary(list(this_attempt.values())):
        reason += f"; this attempt: {rejected}"
    return RegenerationRequested(job_id=event.job_id, tenant_id=event.tenant_id, attempt=event.attempt,
                                 images=event.images, passed=passed, needed=needed, reason=reason,
                                 scores=list(fresh), needed_by_style=by_style)


@dataclass(frozen=True)
class ChunkScores:
    """A chunk's scores as stored: those it added (a candidate scored before keeps its
    score), and how many candidates of the job, over every attempt, are scored and pass."""

    added: Sequence[CandidateScore]
    scored: int
    passing: int


@dataclass(frozen=True, kw_only=True)
class Passing:
    """A candidate of the job that passed, as the selection reads it (`selection.Selectable`)."""

    index: int
    score: float
    style: str | None = None
    fingerprint: str | None = None
    passed: bool = True

    @classmethod
    def of(cls, score: CandidateScore) -> "Passing":
        return cls(index=score.index, score=score.score, style=score.style, fingerprint=score.fingerprint)


@dataclass(frozen=True)
class ScoredSoFar:
    """What a chunk or an attempt's rest is scored against, every attempt and chunk
    counted: the indices of the job's candidates scored so far, and those that pass."""

    indices: frozenset[int]
    passed: tuple[Passing, ...]

    def fresh(self, candidates: Sequence[CandidateRef]) -> list[CandidateRef]:
        """The candidates the job has no score for yet."""
        return [c for c in candidates if c.index not in self.indices]


def checked(event: CandidatesStored, tally: ChunkScores, *, measured: "HasSeconds") -> CandidatesChecked:
    """Where the job stands after a chunk: counts over every attempt, and an ETA from the
    router's estimate for the rest of generation and the time this chunk took to score."""
    candidates = event.candidates_before + event.planned
    per_candidate_s = measured.seconds / len(event.candidates) if event.candidates else 0.0
    eta = None if event.eta_s is None else event.eta_s + max(0, candidates - tally.scored) * per_candidate_s
    return CandidatesChecked(job_id=event.job_id, tenant_id=event.tenant_id, attempt=event.attempt,
                             images=event.images, scores=list(tally.added), candidates=candidates,
                             generated=event.candidates_before + event.stored, scored=tally.scored,
                             passing=tally.passing, eta_s=None if eta is None else round(eta, 1))


class HasSeconds(Protocol):
    @property
    def seconds(self) -> float: ...


def enough(event: CandidatesGenerated) -> int:
    """How many passing images make a delivery at the deadline: the job's min_images, else K."""
    return event.job.min_images if event.job and event.job.min_images else event.images


def failed(event: CandidatesGenerated, job_scores: Sequence[CandidateScore],
           *, fresh: Sequence[CandidateScore]) -> ScoringFailed:
    if job_scores:
        code = "no_candidate_passed"
        reason = f"no candidate passed: {rejection_summary(job_scores)}"
    else:
        code, reason = "no_candidates", "no candidate was generated"
    if event.stop_reason:
        reason += f"; generation stopped: {event.stop_reason}"
    return ScoringFailed(job_id=event.job_id, tenant_id=event.tenant_id, attempt=event.attempt,
                         failure_code=code, reason=reason, scores=list(fresh))


def unscorable(event: CandidatesGenerated, code: str, *, reason: str) -> ScoringFailed:
    """The job cannot be scored at all (invalid rules, a capability this scorer lacks)."""
    return ScoringFailed(job_id=event.job_id, tenant_id=event.tenant_id, attempt=event.attempt,
                         failure_code=code, reason=reason, scores=[])
