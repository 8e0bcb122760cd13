"""Scorer rules, without I/O: from verdicts to published scores and a selection."""

from collections.abc import Sequence

from services.common.contracts import CandidateRef, CandidateScore, DimensionScore
from services.scorer.dimensions import ImageVerdict


def candidate_scores(candidates: Sequence[CandidateRef], verdicts: Sequence[ImageVerdict]) -> list[CandidateScore]:
    return [
        CandidateScore(
            index=c.index, key=c.key, sha256=c.sha256, size_bytes=c.size_bytes, media_type=c.media_type,
            passed=v.passed, score=v.score,
            dimensions={name: DimensionScore(value=d.value, threshold=d.threshold, passed=d.passed, reason=d.reason)
                        for name, d in v.dimensions.items()},
        )
        for c, v in zip(candidates, verdicts, strict=True)
    ]


def failure_reason(scores: Sequence[CandidateScore]) -> str:
    """Why nothing can ship: how often each dimension failed."""
    failed: dict[str, int] = {}
    for score in scores:
        for name, dimension in score.dimensions.items():
            failed[name] = failed.get(name, 0) + (not dimension.passed)
    detail = ", ".join(f"{name} failed on {n}" for name, n in sorted(failed.items()) if n)
    return f"none of the {len(scores)} candidates passed every dimension ({detail})"
