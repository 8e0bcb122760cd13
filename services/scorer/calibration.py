"""Calibrating thresholds on images people have judged: good ones and bad ones.

A `Judged` image (`services.common.quality.calibration`) is what the scorer said about it
(each dimension's value and verdict) and whether people called it bad: a delivered image
its customer reported (refunded or given a retry token), or an operator's image filed
under `bad/`. Per profile and dimension,
`calibrate` reports how many images there were, how many were bad, the dimension's pass
rate, how many bad images it let through, and a threshold suggestion:

    separation(t) = share of good images passing at t − share of bad images passing at t

(Youden's J). Over the midpoints between the values seen, the threshold with the best
separation is suggested when it beats the threshold in force; ties go to the one closer
to it. Only one-sided dimensions get suggestions (a range, such as exactly one face, is
not a threshold), only when both good and bad images were measured, and never nsfw: what
is moderated is a policy, not a matter of taste. With few images a suggestion is a hint.
No torch is needed. Ingest asks for it on the scorer's internal API (`routes`).
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from services.common.quality.calibration import Judged
from services.common.quality.dimensions import DIMENSIONS

POLICY_DIMENSIONS = frozenset({"nsfw"})


@dataclass(frozen=True, kw_only=True)
class DimensionCalibration:
    profile: str
    dimension: str
    images: int
    bad: int
    pass_rate: float
    bad_passed: int
    threshold: float
    side: str | None
    separation: float | None
    suggested_threshold: float | None
    suggested_separation: float | None


def calibrate(images: Iterable[Judged]) -> list[DimensionCalibration]:
    """One row per profile and dimension, in the order first seen."""
    groups: dict[tuple[str, str], list[tuple[Judged, float | None, bool]]] = {}
    for image in images:
        for name, (value, passed) in image.dimensions.items():
            groups.setdefault((image.profile, name), []).append((image, value, passed))
    return [_row(profile, name, members=members) for (profile, name), members in groups.items()]


def _row(profile: str, name: str, *, members: list[tuple[Judged, float | None, bool]]) -> DimensionCalibration:
    threshold = members[0][0].threshold.get(name, math.nan)
    side = _side(name)
    good = [v for image, v, _ in members if not image.bad and v is not None and not math.isnan(v)]
    bad = [v for image, v, _ in members if image.bad and v is not None and not math.isnan(v)]
    now = suggested = best = None
    if side is not None and good and bad and math.isfinite(threshold):
        evidence = Evidence(good, bad, side)
        now = evidence.separation(threshold)
        suggested, best = evidence.best_threshold(threshold)
        if best <= now + 1e-9:
            suggested, best = None, None
    return DimensionCalibration(
        profile=profile, dimension=name, images=len(members), bad=sum(image.bad for image, _, _ in members),
        pass_rate=sum(passed for _, _, passed in members) / len(members),
        bad_passed=sum(passed for image, _, passed in members if image.bad), threshold=threshold, side=side,
        separation=now, suggested_threshold=suggested, suggested_separation=best,
    )


def _side(name: str) -> str | None:
    """'min' or 'max' for a one-sided dimension, None for a range or an unknown one."""
    dimension = DIMENSIONS.get(name)
    if dimension is None or name in POLICY_DIMENSIONS or (dimension.bounds.minimum is None) == (dimension.bounds.maximum is None):
        return None
    return "min" if dimension.bounds.minimum is not None else "max"


def _passes(value: float, side: str, *, threshold: float) -> bool:
    return value >= threshold if side == "min" else value <= threshold


@dataclass(frozen=True)
class Evidence:
    """A one-sided dimension's values on the images people called good and on those they
    called bad (both measured), and the side its threshold bounds, 'min' or 'max'."""

    good: Sequence[float]
    bad: Sequence[float]
    side: str

    def separation(self, threshold: float) -> float:
        good_share = sum(_passes(v, self.side, threshold=threshold) for v in self.good) / len(self.good)
        return good_share - sum(_passes(v, self.side, threshold=threshold) for v in self.bad) / len(self.bad)

    def best_threshold(self, now: float) -> tuple[float, float]:
        """The threshold that separates best and its separation; ties go to the one closer to `now`."""
        values = sorted(set(self.good) | set(self.bad))
        candidates = [values[0], *((a + b) / 2 for a, b in zip(values, values[1:])), values[-1]]
        scored = [(self.separation(t), -abs(t - now), t) for t in candidates]
        separation, _, threshold = max(scored)
        return threshold, separation


def render(rows: Sequence[DimensionCalibration]) -> str:
    """A table: one line per profile and dimension."""
    header = (f"{'profile':<10}{'dimension':<18}{'images':>7}{'bad':>5}{'pass rate':>10}{'bad passed':>11}"
              f"{'threshold':>11}{'separation':>11}  suggestion")
    lines = [header]
    for row in rows:
        separation = "-" if row.separation is None else f"{row.separation:.2f}"
        suggestion = ("-" if row.suggested_threshold is None else
                      f"{row.side} {row.suggested_threshold:.4g} (separation {row.suggested_separation:.2f})")
        lines.append(f"{row.profile:<10}{row.dimension:<18}{row.images:>7}{row.bad:>5}{row.pass_rate:>10.2f}"
                     f"{row.bad_passed:>11}{row.threshold:>11.4g}{separation:>11}  {suggestion}")
    return "\n".join(lines) + "\n"
