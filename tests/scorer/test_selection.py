"""The selection across styles, without I/O: each style's share of K, the best within it,
never two near-duplicates, what each style misses, and the fill of a final partial delivery."""

import uuid
from datetime import UTC, datetime

import pytest

from services.common.contracts import (
    CandidateScore,
    CandidatesGenerated,
    CandidatesScored,
    JobSpec,
    RegenerationRequested,
    StyleSpec,
)
from services.common.quality.fingerprints import NEAR_DUPLICATE_BITS, distance
from services.scorer import domain
from services.scorer.selection import SelectionAsk, lots, select

STYLES = ("studio", "window", "outdoor")


def fingerprint(n: int) -> str:
    """Fingerprints far apart (n's bits spread over 64: each pair differs in many bits)."""
    return f"{(n * 0x9E3779B97F4A7C15) & (2**64 - 1):016x}"


def near(of: str, bits: int) -> str:
    return f"{int(of, 16) ^ ((1 << bits) - 1):016x}"


def scored(index, score, *, style=None, passed=True, print_=None, attempt=1):
    return CandidateScore(index=index, attempt=attempt, key=f"k/{index}", sha256="0" * 64, size_bytes=1,
                          media_type="image/png", passed=passed, score=score, dimensions={},
                          failed=[] if passed else ["identity"], style=style,
                          fingerprint=print_ if print_ is not None else fingerprint(index))


def test_the_test_fingerprints_are_far_apart_and_near_ones_near():
    prints = [fingerprint(n) for n in range(40)]
    assert min(distance(a, b) for i, a in enumerate(prints) for b in prints[i + 1:]) > NEAR_DUPLICATE_BITS
    assert distance(prints[0], near(prints[0], NEAR_DUPLICATE_BITS)) == NEAR_DUPLICATE_BITS


@pytest.mark.parametrize(("images", "styles", "shares"), [
    (60, 6, [10] * 6), (10, 4, [3, 3, 2, 2]), (7, 3, [3, 2, 2]), (2, 3, [1, 1, 0]), (5, 1, [5])])
def test_k_is_split_over_the_styles_as_evenly_as_possible_the_remainder_to_the_first(images, styles, shares):
    order = SelectionAsk(images, tuple(f"s{i}" for i in range(styles)), distinct=True)
    assert list(order.shares().values()) == shares and sum(shares) == images


def test_each_style_keeps_its_share_with_its_own_best():
    order = SelectionAsk(6, STYLES, distinct=True)
    # The studio style has the six best candidates of the job; it still ships two.
    candidates = [scored(i, 10 - i, style="studio") for i in range(6)]
    candidates += [scored(10 + i, 3 - i * 0.1, style=style) for i, style in enumerate(["window"] * 3 + ["outdoor"] * 3)]
    selection = select(order, candidates)
    chosen = [candidates[p] for p in selection.chosen]
    assert [(c.style, c.index) for c in chosen] == [("studio", 0), ("studio", 1), ("window", 10), ("window", 11),
                                                   ("outdoor", 13), ("outdoor", 14)]
    assert selection.short == {} and selection.needed_by_style() is None


def test_no_two_near_duplicates_are_selected_even_across_styles():
    order = SelectionAsk(4, ("studio", "window"), distinct=True)
    best = fingerprint(1)
    candidates = [scored(1, 9.0, style="studio", print_=best),
                  scored(2, 8.0, style="studio", print_=near(best, 3)),   # the same picture encoded again
                  scored(3, 7.0, style="window", print_=near(best, NEAR_DUPLICATE_BITS)),
                  scored(4, 6.0, style="window", print_=near(best, NEAR_DUPLICATE_BITS + 1)),
                  scored(5, 5.0, style="studio"), scored(6, 4.0, style="window")]
    chosen = [candidates[p].index for p in select(order, candidates).chosen]
    assert chosen == [1, 4, 5, 6]


def test_a_style_short_of_its_share_says_what_it_misses():
    order = SelectionAsk(6, STYLES, distinct=True)
    candidates = [scored(0, 5.0, style="studio"), scored(1, 4.0, style="studio"), scored(2, 3.0, style="window"),
                  scored(3, 9.0, style="outdoor", passed=False), scored(4, 8.0, style="studio")]
    selection = select(order, candidates)
    assert selection.needed_by_style() == {"window": 1, "outdoor": 2}
    assert len(selection.chosen) == 3, "the studio's third best waits: its share is full"


def test_at_the_end_a_short_style_is_filled_from_the_best_of_the_others():
    order = SelectionAsk(6, STYLES, distinct=True)
    candidates = [scored(i, 10.0 - i, style="studio") for i in range(5)] + [scored(9, 1.0, style="window")]
    selection = select(order, candidates, fill=True)
    chosen = [candidates[p].index for p in selection.chosen]
    assert chosen == [0, 1, 2, 3, 4, 9], "best first, every distinct passing candidate"
    assert selection.short == {"window": 1, "outdoor": 2}, "what the styles missed before the fill"


def test_a_candidate_that_names_no_style_is_in_the_one_its_index_falls_in():
    order = SelectionAsk(3, STYLES, distinct=True)
    assert [order.style_of(scored(i, 1.0)) for i in range(4)] == ["studio", "window", "outdoor", "studio"]
    assert order.style_of(scored(0, 1.0, style="elsewhere")) is None


def test_a_plain_job_keeps_its_best_k_near_duplicates_and_all():
    """A job of neither a subject nor styles: a template that restyles one photo makes
    candidates alike by design, and its best K ship as before."""
    same = fingerprint(7)
    candidates = [scored(i, 5.0 - i, print_=same) for i in range(4)]
    assert [candidates[p].index for p in select(SelectionAsk(3), candidates).chosen] == [0, 1, 2]


def test_lots_split_a_batch_by_style_with_what_each_selected_so_far():
    order = SelectionAsk(4, ("studio", "window"), distinct=True)
    batch = [scored(10 + i, 0.0, style=style) for i, style in enumerate(["window", "studio", "window"])]
    passing = [scored(1, 3.0, style="studio"), scored(2, 2.0, style="studio"), scored(3, 1.0, style="studio")]
    by_style = {lot.style: lot for lot in lots(order, batch, passing=passing)}
    assert by_style["window"].positions == [0, 2] and by_style["window"].selected == ()
    assert by_style["studio"].positions == [1] and by_style["studio"].share == 2
    assert by_style["studio"].selected == ((3.0, 1), (2.0, 2)), "the third is not selected: the share is full"


def attempt(scores, *, images, final=False, styles=STYLES, number=1):
    job_id = uuid.uuid4()
    spec = JobSpec(job_id=job_id, tenant_id="t", template="generic", prompt="a portrait", images=images,
                   candidates=len(scores), seed=1, submitted_at=datetime.now(UTC),
                   styles=[StyleSpec(name=name) for name in styles] if styles else None)
    return CandidatesGenerated(job_id=job_id, tenant_id="t", attempt=number, images=images, started_at=datetime.now(UTC),
                               candidates=[], cost_micro_usd=0, final=final, job=spec)


def test_a_style_short_asks_the_router_for_that_style():
    scores = [scored(0, 5.0, style="studio"), scored(1, 4.0, style="studio"), scored(2, 3.0, style="window"),
              scored(3, 2.0, style="window", print_=near(fingerprint(2), 2)),
              scored(4, 1.0, style="outdoor", passed=False)]
    outcome = domain.decide(attempt(scores, images=6), scores, fresh=scores)
    assert isinstance(outcome, RegenerationRequested)
    assert outcome.needed_by_style == {"window": 1, "outdoor": 2} and outcome.needed == 3 and outcome.passed == 4
    assert "styles short: window 1, outdoor 2" in outcome.reason
    assert "3 of them selectable" in outcome.reason and "1 failed identity" in outcome.reason


def test_every_style_full_selects_and_a_final_attempt_fills_what_stays_short():
    full = [scored(i, 9.0 - i, style=STYLES[i % 3]) for i in range(6)]
    scored_ = domain.decide(attempt(full, images=6), full, fresh=full)
    assert isinstance(scored_, CandidatesScored) and sorted(scored_.selected) == list(range(6))
    assert [s.fingerprint for s in scored_.selected_scores] == [fingerprint(i) for i in scored_.selected]

    short = [scored(i, 9.0 - i, style="studio") for i in range(4)] + [scored(8, 1.0, style="window")]
    partial = domain.decide(attempt(short, images=6, final=True), short, fresh=short)
    assert isinstance(partial, CandidatesScored) and partial.selected == [0, 1, 2, 3, 8]


def test_a_job_without_styles_asks_for_no_style():
    scores = [scored(0, 1.0), scored(1, 1.0, passed=False)]
    outcome = domain.decide(attempt(scores, images=2, styles=None), scores, fresh=scores)
    assert isinstance(outcome, RegenerationRequested) and outcome.needed_by_style is None and outcome.needed == 1
