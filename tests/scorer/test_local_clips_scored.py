"""The router's local clip maker and the scorer's video profile, held against each other: every
defect the local provider plants in a real MP4 (services/router/providers/local/clip_maker.py) is
caught by the scorer with a reason, and its clean clips pass, from a prompt and from a still.
A face that changes halfway is a face's defect: the painter paints no faces, so it is planted
in a clip made from one portrait whose centre becomes another's."""

import numpy as np
import pytest

from services.common.contracts import VideoSpec
from services.common.quality.profiles import load_profile
from services.router.providers.local.clip_maker import CLIP_DEFECTS, ClipMaker, ClipShape, ClipTake
from services.scorer.dimensions import Scoring
from tests.scorer.test_faces import grace_hopper
from tests.scorer.test_video import clip_request_of

ASKED = VideoSpec(duration_s=2, aspect_ratio="16:9", resolution="480p", fps=12)


@pytest.fixture(scope="module")
def profile():
    return load_profile("video")


@pytest.fixture(scope="module")
def maker() -> ClipMaker:
    width, height = ASKED.size()
    return ClipMaker(ClipShape(width=width, height=height, duration_s=ASKED.duration_s, fps=ASKED.fps or 24))


def verdict_of(scorer, profile, data: bytes, **inputs):
    [verdict] = scorer.score([data], Scoring(profile=profile, requested_clip=clip_request_of(ASKED), tiered=True, **inputs))
    return verdict


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_local_providers_clean_clips_pass(scorer, profile, maker, seed):
    verdict = verdict_of(scorer, profile, maker.from_text("a harbour at dawn", ClipTake(seed)).data)

    assert verdict.passed, {name: verdict.dimensions[name].reason for name in verdict.failed}


@pytest.mark.parametrize("defect", [defect for defect in CLIP_DEFECTS if defect != "face_change"])
def test_every_defect_the_local_provider_plants_is_caught_with_a_reason(scorer, profile, maker, defect):
    verdict = verdict_of(scorer, profile, maker.from_text("a harbour at dawn", ClipTake(5, defect)).data)

    assert not verdict.passed and verdict.failed
    assert all(verdict.dimensions[name].reason for name in verdict.failed)


def test_a_clip_from_a_still_passes_clean_and_fails_frozen(scorer, profile, maker, photos):
    still = np.asarray(photos["astronaut"])

    clean = verdict_of(scorer, profile, maker.from_still(still, ClipTake(9)).data)
    frozen = verdict_of(scorer, profile, maker.from_still(still, ClipTake(9, "frozen")).data)

    assert clean.passed, {name: clean.dimensions[name].reason for name in clean.failed}
    assert "frozen" in frozen.failed


def test_a_portraits_clip_whose_face_changes_halfway_fails(scorer, profile, photos):
    square = VideoSpec(duration_s=2, aspect_ratio="1:1", resolution="480p", fps=12)
    width, height = square.size()
    maker = ClipMaker(ClipShape(width=width, height=height, duration_s=square.duration_s, fps=12))
    portrait = grace_hopper()[40:552]
    another = np.asarray(photos["astronaut"])[0:300, 60:360]  # her face, centred

    changed = maker.from_still(portrait, ClipTake(11, "face_change"), other=another).data
    [clean, verdict] = scorer.score([maker.from_still(portrait, ClipTake(11)).data, changed],
                                    Scoring(profile=profile, requested_clip=clip_request_of(square), tiered=True))

    assert clean.passed, {name: clean.dimensions[name].reason for name in clean.failed}
    assert not verdict.passed and {"identity", "face_consistency"} & set(verdict.failed), verdict.dimensions
