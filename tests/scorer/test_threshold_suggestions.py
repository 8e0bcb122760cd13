"""Threshold suggestions from judged images: pure arithmetic, no scoring."""

import pytest

from services.common.quality.calibration import Judged
from services.scorer.calibration import calibrate


def judged(bad: bool, **values: float) -> Judged:
    return Judged(profile="generic", bad=bad, dimensions={name: (value, True) for name, value in values.items()},
                  threshold={"sharpness": 20.0, "noise": 10.0, "faces": 1.0, "nsfw": 0.5})


def test_a_min_threshold_is_suggested_between_the_bad_and_the_good():
    rows = calibrate([judged(False, sharpness=300), judged(False, sharpness=250),
                      judged(True, sharpness=60), judged(True, sharpness=40)])
    [row] = rows
    assert row.bad == 2 and row.bad_passed == 2 and row.pass_rate == 1.0
    assert row.separation == 0.0
    assert row.suggested_threshold == pytest.approx(155) and row.suggested_separation == 1.0


def test_a_max_threshold_and_no_suggestion_when_nothing_separates_better():
    [noise] = calibrate([judged(False, noise=2), judged(True, noise=14)])
    assert noise.separation == 1.0 and noise.suggested_threshold is None
    # People liked the noisier image: loosening so that it passes is the best a bound can do.
    [upside_down] = calibrate([judged(False, noise=12), judged(True, noise=3)])
    assert upside_down.separation == -1.0
    assert upside_down.suggested_threshold == 12 and upside_down.suggested_separation == 0.0


def test_ranges_policy_and_unmeasured_values_get_no_suggestion():
    images = [Judged(profile="headshot", bad=bad, dimensions={"faces": (count, count == 1), "nsfw": (score, True),
                                       "sharpness": (None, False)}, threshold={"faces": 1.0, "nsfw": 0.5, "sharpness": 20})
              for bad, count, score in ((False, 1, 0.01), (True, 2, 0.3))]
    rows = {row.dimension: row for row in calibrate(images)}
    assert all(row.suggested_threshold is None for row in rows.values())
    assert rows["faces"].pass_rate == 0.5 and rows["faces"].bad_passed == 0
