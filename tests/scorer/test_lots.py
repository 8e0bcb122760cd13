"""A batch's styles are scored side by side (`handlers.score_lots`), each with its own scoring,
and their verdicts come back by position as if each had been scored alone."""

import asyncio
import threading
from dataclasses import replace

from services.common.quality.profiles import load_profile
from services.scorer.dimensions import ImageVerdict, Scorer, Scoring
from services.scorer.handlers import score_lots
from services.scorer.selection import Lot
from tests.scorer.conftest import png


class MeetingScorer:
    """The real scorer, but each call waits until every lot's call has started: lots scored
    one after another never meet, and the first one's wait breaks."""

    def __init__(self, scorer: Scorer, lots: int) -> None:
        self.scorer = scorer
        self.met = threading.Barrier(lots, timeout=30)

    def score(self, images: list[bytes], scoring: Scoring) -> list[ImageVerdict]:
        self.met.wait()
        return self.scorer.score(images, scoring)


def test_the_styles_of_a_batch_are_scored_side_by_side_each_with_its_own_scoring(scorer, photos):
    images = [png(photos[name]) for name in ("astronaut", "coffee", "chelsea", "rocket", "camera")]
    styled = [Lot(style="studio", positions=[0, 2], share=1, selected=()),
              Lot(style="window", positions=[1, 3], share=1, selected=()),
              Lot(style="outdoor", positions=[4], share=1, selected=())]
    generic = Scoring(profile=load_profile("generic"))
    scorings = [generic, replace(generic, profile=load_profile("product")), generic]

    verdicts = asyncio.run(score_lots(MeetingScorer(scorer, len(styled)), images, styled=styled, scorings=scorings))

    assert sorted(verdicts) == [0, 1, 2, 3, 4]
    for lot, scoring in zip(styled, scorings, strict=True):
        alone = scorer.score([images[p] for p in lot.positions], scoring)
        assert [verdicts[p].score for p in lot.positions] == [verdict.score for verdict in alone]
        assert [set(verdicts[p].dimensions) for p in lot.positions] == [set(v.dimensions) for v in alone]
    assert "background" in verdicts[1].dimensions and "background" not in verdicts[0].dimensions, \
        "the window lot was scored by its own (product) profile"
